"""No client secret, nor its digest, in any log line, metric, audit row or listing; the
database holds digests only. A real `gateway serve` with JSON logs, every key operation
of the admin API, requests with live, rotated-out and revoked keys; then grep everything."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import openai

from gateway.pipeline.identify import hash_key
from tests.support.admin import ADMIN, client
from tests.support.configs import write_config
from tests.support.servers import gateway_process

MESSAGES = [{"role": "user", "content": "hello"}]


def test_secrets_never_reach_logs_metrics_audit_or_listings(tmp_path):
    routes, providers = write_config(tmp_path, {
        "routes": {"echo": {"targets": ["echo/echo-1"], "cache": {"ttl": 60, "scope": "tenant"}}},
        "tenants": {"acme": {"budget": {"usd": 10, "per": "day"}}},
    }, {"echo": {"api": "echo", "models": {"echo-1": {}}}})
    database = tmp_path / "gateway.db"
    log = tmp_path / "gateway.log"
    env = {"DATABASE_URL": f"sqlite:///{database}", "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_LOG_FORMAT": "json"}
    secrets: list[str] = []
    seen: list[str] = []
    with gateway_process(routes, providers, "--no-watch", env=env, log=log) as (url, _):
        api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN}"})
        tenant = api.post("/admin/tenants", json={"name": "globex", "metadata": {"team": "search"}}).json()
        made = api.post("/admin/keys", json={"name": "acme-ci", "tenant": "acme", "metadata": {"owner": "ci"}}).json()
        rotated = api.post(f"/admin/keys/{made['id']}/rotate", json={"grace_seconds": 0}).json()
        secrets += [tenant["key"]["secret"], made["secret"], rotated["secret"]]
        for secret in (tenant["key"]["secret"], rotated["secret"]):
            client(url, secret).chat.completions.create(model="echo", messages=MESSAGES)
            seen.append(httpx.get(f"{url}/v1/usage", headers={"authorization": f"Bearer {secret}"}).text)
        api.delete(f"/admin/keys/{made['id']}")
        for secret in secrets[1:]:  # rotated out, then revoked: both refused, and logged by name
            try:
                client(url, secret).chat.completions.create(model="echo", messages=MESSAGES)
                raise AssertionError("a retired key was served")
            except openai.AuthenticationError:
                pass
        for path in ("/admin/keys", "/admin/tenants", f"/admin/tenants/{tenant['id']}/usage", "/admin/config",
                     "/admin/usage", "/admin/requests", f"/admin/keys/{made['id']}"):
            seen.append(api.get(path).text)
        seen.append(httpx.get(f"{url}/metrics").text)
        audit = ""
        for _ in range(40):  # refusals reach the audit within a poll or two
            audit = api.get("/admin/audit").text
            if audit.count("key.refused") >= 2:
                break
            time.sleep(0.1)
        seen.append(audit)
    logged = log.read_text()
    seen.append(logged)
    with sqlite3.connect(database) as connection:
        audit_rows = json.dumps(connection.execute("SELECT * FROM audit").fetchall())
        key_rows = connection.execute("SELECT digest, previous_digest, prefix, last4 FROM api_keys").fetchall()
        ledger = json.dumps(connection.execute("SELECT * FROM requests").fetchall())
    seen += [audit_rows, ledger]

    everything = "\n".join(seen)
    for secret in secrets:
        assert secret not in everything
        assert hash_key(secret) not in everything
        assert secret not in json.dumps(key_rows)  # only digests, a prefix and four characters
    assert {hash_key(secrets[2]), hash_key(secrets[1])} <= {d for row in key_rows for d in row[:2]}
    events = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    refused = {(e["key"], e["reason"]) for e in events if e.get("event") == "key_refused"}
    assert refused == {("acme-ci", "revoked")}  # both retired secrets name the key (a revoke outranks a rotation)
    assert audit.count("key.refused") >= 1 and "acme-ci" in audit
