"""Many tenants share a gateway: the ledger is read with the admin key only, and no client
key or provider key reaches a ledger row, an admin answer or a log line (rows name keys)."""

from __future__ import annotations

import json

import httpx
import openai

from gateway.pipeline.identify import hash_key
from tests.support.configs import openai_provider, write_config
from tests.support.ledger import ledger_rows
from tests.support.servers import gateway_process

CLIENT_KEY = "client-secret-key-ledger-4242-abcdef"
PROVIDER_KEY = "sk-proj-LEDGERLEAK0123456789abcdef"
ADMIN = "admin-secret-for-ledger-secrets"
MESSAGES = [{"role": "user", "content": "hello"}]


def test_the_ledger_needs_the_admin_key_and_never_holds_a_secret(tmp_path, upstream):
    base, _ = upstream
    routes, providers = write_config(tmp_path, {
        "routes": {"good": {"targets": ["up/gpt-test"]}},
        "keys": [{"name": "tenant-one", "sha256": hash_key(CLIENT_KEY)}],
    }, {"up": openai_provider(base, {"gpt-test": {"input_per_1m": 1.0}}, api_key=PROVIDER_KEY)})
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "gateway.observe.log"
    env = {"DATABASE_URL": database_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_LOG_FORMAT": "json"}
    with gateway_process(routes, providers, "--no-watch", env=env, log=log) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
        client.chat.completions.create(model="good", messages=MESSAGES)
        list(client.chat.completions.create(model="good", messages=MESSAGES, stream=True))
        for path in ("/admin/requests", "/admin/usage"):
            assert httpx.get(f"{url}{path}").status_code == 401
            client_auth = {"authorization": f"Bearer {CLIENT_KEY}"}
            assert httpx.get(f"{url}{path}", headers=client_auth).status_code == 401
        admin = {"authorization": f"Bearer {ADMIN}"}
        listed = httpx.get(f"{url}/admin/requests", headers=admin)
        usage = httpx.get(f"{url}/admin/usage", params={"group_by": "key,provider"}, headers=admin)
        usage_csv = httpx.get(f"{url}/admin/usage", params={"format": "csv", "group_by": "key"}, headers=admin)
        listed_csv = httpx.get(f"{url}/admin/requests", headers={**admin, "accept": "text/csv"})
        assert [row["key_name"] for row in listed.json()["data"]] == ["tenant-one", "tenant-one"]
        assert "tenant-one" in usage_csv.text and "tenant-one" in listed_csv.text

    rows = ledger_rows(database_url)  # written on the graceful stop (SIGTERM) at the latest
    assert len(rows) == 2 and {r["key_name"] for r in rows} == {"tenant-one"}
    everything = "\n".join([json.dumps(rows, default=str), listed.text, usage.text, usage_csv.text, listed_csv.text,
                            log.read_text()])
    for secret in (CLIENT_KEY, PROVIDER_KEY, hash_key(CLIENT_KEY)):
        assert secret not in everything
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "database_ready" for line in logged)
