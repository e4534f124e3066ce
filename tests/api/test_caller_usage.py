"""GET /v1/usage: a client key sees its own usage, limits and budget left, and its
tenant's totals; never another key's or tenant's. A client key gets nowhere on the
admin paths, whatever tenant id it names."""

from __future__ import annotations

import httpx
import pytest

from tests.support.admin import ADMIN, admin, client, created

MESSAGES = [{"role": "user", "content": "hello"}]
PRICED = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


def test_a_key_sees_its_own_figures_and_nobody_elses(gateway, upstream, store_home):
    from tests.support.configs import openai_provider

    base, _ = upstream
    url = gateway({"routes": {"paid": {"targets": ["up/gpt-x"]}}, "store": store_home},
                  {"up": openai_provider(base, {"gpt-x": PRICED})})
    with admin(url) as api:
        acme = created(api.post("/admin/tenants", json={"name": "acme", "budget": {"usd": 100, "per": "month"},
                                                        "limits": {"rpm": 60}}))
        mate = created(api.post("/admin/keys", json={"name": "acme-mate", "tenant": "acme",
                                                     "budget": {"usd": 50, "per": "day"}}))
        rival = created(api.post("/admin/tenants", json={"name": "rival"}))
    mine, theirs = acme["key"]["secret"], rival["key"]["secret"]
    client(url, mine).chat.completions.create(model="paid", messages=MESSAGES)
    client(url, mate["secret"]).chat.completions.create(model="paid", messages=MESSAGES)
    for _ in range(3):
        client(url, theirs).chat.completions.create(model="paid", messages=MESSAGES)

    seen = httpx.get(f"{url}/v1/usage", headers={"authorization": f"Bearer {mine}"})
    assert seen.status_code == 200
    body = seen.json()
    assert body["key"]["name"] == "acme-key" and body["key"]["usage"]["day"]["requests"] == 1
    assert body["key"]["usage"]["day"]["cost_usd"] == 18
    assert body["tenant"]["name"] == "acme" and body["tenant"]["usage"]["month"]["requests"] == 2
    assert body["tenant"]["budget"] == {"usd": 100, "per": "month", "spent_usd": 36, "remaining_usd": 64}
    assert body["tenant"]["limits"] == {"rpm": 60}
    assert "keys" not in body["tenant"]  # the tenant's totals, not its other keys one by one
    text = seen.text
    assert "acme-mate" not in text and "rival" not in text and mate["id"] not in text

    mates = httpx.get(f"{url}/v1/usage", headers={"x-api-key": mate["secret"]}).json()
    assert mates["key"]["budget"] == {"usd": 50, "per": "day", "spent_usd": 18, "remaining_usd": 32}

    assert httpx.get(f"{url}/v1/usage").status_code == 401
    assert httpx.get(f"{url}/v1/usage", headers={"authorization": "Bearer not-a-key"}).json()["error"]["code"] \
        == "invalid_api_key"
    as_client = {"authorization": f"Bearer {mine}"}
    for path in (f"/admin/tenants/{rival['id']}", f"/admin/tenants/{rival['id']}/usage",
                 f"/admin/tenants/{acme['id']}/usage", "/admin/tenants", "/admin/keys",
                 f"/admin/keys/{rival['key']['id']}", "/admin/audit"):
        assert httpx.get(f"{url}{path}", headers=as_client).status_code == 401, path
    assert httpx.delete(f"{url}/admin/keys/{rival['key']['id']}", headers=as_client).status_code == 401
    assert httpx.post(f"{url}/admin/keys", json={"name": "sneaky"}, headers=as_client).status_code == 401
