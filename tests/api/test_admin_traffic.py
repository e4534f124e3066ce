"""GET /admin/traffic and GET /admin/routes through real HTTP, after known requests.

The gateway runs in-process on a real port in front of a real OpenAI-compatible
upstream; requests go through the official SDK, the admin API is read with httpx.
"""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from gateway.pipeline.identify import ADMIN_KEY_ENV, hash_key
from tests.support.configs import ECHO_PROVIDER, openai_provider

ADMIN_KEY = "admin-traffic-key-0001"
CLIENT_KEY = "traffic-client-key-0001"
UPSTREAM_KEY = "sk-upstream-traffic-secret-0001"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def served(gateway, upstream, monkeypatch):
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    base, fake = upstream
    url = gateway(
        {
            # One try per target and a circuit that never opens, so every count below is exact.
            "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
            "routes": {
                "t-chat": {"targets": ["up/fail-500", "up/gpt-test"]},
                "t-plain": {"targets": ["up/gpt-test"]},
                "t-bad": {"targets": ["up/bad-request"]},
                "t-down": {"targets": ["up/fail-503"]},
                "t-split": {"strategy": "weighted", "targets": [
                    {"target": "up/gpt-test", "weight": 1}, {"target": "echo/echo-1", "weight": 1}]},
            },
            "keys": [{"name": "team-traffic", "sha256": hash_key(CLIENT_KEY)}],
        },
        {"up": openai_provider(base, ["fail-500", "fail-503", "gpt-test", "bad-request"], api_key=UPSTREAM_KEY),
         "echo": ECHO_PROVIDER},
    )
    return url, fake


def admin(url: str, path: str, key: str | None = ADMIN_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}{path}", headers=headers, timeout=10)


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)


def by(rows: list[dict], **match: str) -> dict:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


@pytest.mark.parametrize("path", ["/admin/traffic", "/admin/routes"])
def test_admin_data_needs_the_admin_key(served, path, monkeypatch):
    url, _ = served
    missing = admin(url, path, key=None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = admin(url, path, key="not-the-admin-key")
    assert wrong.status_code == 401
    client_key = admin(url, path, key=CLIENT_KEY)  # a client key is not an admin key
    assert client_key.status_code == 401
    assert admin(url, path, key=ADMIN_KEY).status_code == 200
    monkeypatch.delenv(ADMIN_KEY_ENV)
    disabled = admin(url, path, key=ADMIN_KEY)
    assert disabled.status_code == 403
    assert disabled.json()["error"]["code"] == "admin_disabled"


def test_traffic_counts_requests_errors_refusals_and_fallbacks_per_route(served):
    url, _ = served
    client = sdk(url)
    for _ in range(3):
        client.chat.completions.create(model="t-chat", messages=HELLO)  # fail-500, then gpt-test
    list(client.chat.completions.create(model="t-plain", messages=HELLO, stream=True))
    client.chat.completions.create(model="t-plain", messages=HELLO)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="t-bad", messages=HELLO)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="t-down", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-alias", messages=HELLO)
    admin(url, "/admin/routes")  # the admin API's own requests are not traffic

    report = admin(url, "/admin/traffic").json()
    assert report["object"] == "traffic"
    assert report["window_seconds"] == 300 and report["slot_seconds"] == 5
    assert report["pid"] == os.getpid()  # the in-process gateway: one worker, this one
    totals = report["totals"]
    assert totals["requests"] == 8
    assert totals["errors"] == 1  # t-down's 502
    assert totals["rejected"] == 2  # t-bad's 400 and the unknown alias's 404
    assert totals["fallbacks"] == 3
    assert totals["rps"] > 0
    assert 0 < totals["latency_ms"]["p50"] <= totals["latency_ms"]["p90"] <= totals["latency_ms"]["p99"]

    routes = report["routes"]
    chat = by(routes, route="t-chat")
    assert (chat["requests"], chat["errors"], chat["fallbacks"], chat["error_rate"]) == (3, 0, 3, 0.0)
    plain = by(routes, route="t-plain")
    assert (plain["requests"], plain["errors"], plain["fallbacks"]) == (2, 0, 0)
    assert by(routes, route="t-bad")["rejected"] == 1
    down = by(routes, route="t-down")
    assert (down["requests"], down["errors"], down["error_rate"]) == (1, 1, 1.0)
    assert by(routes, route="")["rejected"] == 1  # refused before any route was known
    assert {r["route"] for r in routes} == {"t-chat", "t-plain", "t-bad", "t-down", ""}

    # The per-slot series covers the whole window and adds up to the totals.
    assert len(report["series"]) == 60
    assert sum(p["requests"] for p in report["series"]) == 8
    assert sum(p["requests"] for p in chat["series"]) == 3
    times = [p["t"] for p in chat["series"]]
    assert times == sorted(times) and times[-1] - times[0] == 295


def test_targets_show_calls_error_rate_and_share_of_their_route(served):
    url, _ = served
    client = sdk(url)
    for _ in range(4):
        client.chat.completions.create(model="t-chat", messages=HELLO)
    for _ in range(20):
        client.chat.completions.create(model="t-split", messages=HELLO)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="t-bad", messages=HELLO)

    targets = admin(url, "/admin/traffic").json()["targets"]
    failing = by(targets, route="t-chat", target="up/fail-500")
    assert (failing["calls"], failing["failures"], failing["answered"], failing["error_rate"]) == (4, 4, 0, 1.0)
    assert failing["share"] == 0.0
    answering = by(targets, route="t-chat", target="up/gpt-test")
    assert (answering["calls"], answering["failures"], answering["error_rate"], answering["share"]) == (4, 0, 0.0, 1.0)
    assert answering["latency_ms"]["p50"] > 0
    # A bad request is the client's fault, never a failure of the target that refused it.
    assert all(t["failures"] == 0 for t in targets if t["route"] == "t-bad")
    # The weighted route splits its answers between both targets; the shares add up to one.
    split = [by(targets, route="t-split", target=t) for t in ("up/gpt-test", "echo/echo-1")]
    assert sum(s["answered"] for s in split) == 20
    assert all(s["answered"] > 0 for s in split)
    assert sum(s["share"] for s in split) == pytest.approx(1.0, abs=1e-3)


def test_routes_list_aliases_targets_in_order_with_live_state(served):
    url, _ = served
    client = sdk(url)
    client.chat.completions.create(model="t-chat", messages=HELLO)

    response = admin(url, "/admin/routes")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "routes"
    assert body["version"] == response.headers["x-gateway-config"]
    assert body["loaded_at"] > 0 and len(body["sources"]) == 2
    assert [r["alias"] for r in body["routes"]] == ["t-chat", "t-plain", "t-bad", "t-down", "t-split"]
    chat = body["routes"][0]
    assert (chat["strategy"], chat["kind"]) == ("fallback", "chat")
    assert [t["target"] for t in chat["targets"]] == ["up/fail-500", "up/gpt-test"]
    first, second = chat["targets"]
    assert first["circuit"] == {"state": "closed", "retry_in": 0.0}
    assert (first["calls"], first["error_rate"], first["share"]) == (1, 1.0, 0.0)
    assert (second["calls"], second["error_rate"], second["share"]) == (1, 0.0, 1.0)
    assert second["latency_avg_ms"] > 0 and second["latency_ms"]["p50"] > 0
    split = body["routes"][4]
    assert split["strategy"] == "weighted"
    assert [(t["target"], t["weight"]) for t in split["targets"]] == [("up/gpt-test", 1.0), ("echo/echo-1", 1.0)]
    untouched = body["routes"][3]["targets"][0]
    assert (untouched["calls"], untouched["error_rate"], untouched["share"], untouched["latency_avg_ms"]) == (0, None, None, None)


def test_routes_show_an_open_circuit_and_when_it_will_probe(gateway, upstream, monkeypatch):
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    base, _ = upstream
    url = gateway(
        {"defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 2, "cooldown": 60}},
         "routes": {"r": {"targets": ["up/fail-500", "up/gpt-test"]}}},
        {"up": openai_provider(base, ["fail-500", "gpt-test"])},
    )
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="r", messages=HELLO)
    failing, answering = admin(url, "/admin/routes").json()["routes"][0]["targets"]
    assert failing["circuit"]["state"] == "open"
    assert 50 < failing["circuit"]["retry_in"] <= 60
    assert failing["calls"] == 2  # the third request skipped it
    assert answering["circuit"]["state"] == "closed"
    assert admin(url, "/admin/traffic").json()["totals"]["fallbacks"] == 2


def test_admin_output_never_holds_a_secret(served):
    url, _ = served
    sdk(url).chat.completions.create(model="t-chat", messages=HELLO)
    for path in ("/admin/traffic", "/admin/routes"):
        text = admin(url, path).text
        for secret in (ADMIN_KEY, CLIENT_KEY, hash_key(CLIENT_KEY), UPSTREAM_KEY):
            assert secret not in text, (path, secret)


def test_window_narrows_the_totals_and_is_validated(served):
    url, _ = served
    sdk(url).chat.completions.create(model="t-plain", messages=HELLO)
    narrow = admin(url, "/admin/traffic?window=10").json()
    assert narrow["window_seconds"] == 10
    assert narrow["totals"]["requests"] == 1
    assert admin(url, "/admin/traffic?window=100000").status_code == 400
    bad = admin(url, "/admin/traffic?window=soon")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "window"
    assert admin(url, "/admin/routes?window=0").status_code == 400
    assert admin(url, "/admin/routes?window=60").json()["window_seconds"] == 60


def test_the_page_loads_without_a_key_and_holds_no_data(served):
    url, _ = served
    page = httpx.get(f"{url}/ui", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "t-chat" not in page.text and "up/gpt-test" not in page.text
    assert '<script src="/ui/app.js"' in page.text
    script = httpx.get(f"{url}/ui/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/admin/traffic" in script.text
    assert httpx.get(f"{url}/ui/app.css", timeout=10).headers["content-type"].startswith("text/css")
    missing = httpx.get(f"{url}/ui/../../gateway/auth.py", timeout=10)
    assert missing.status_code == 404
    assert httpx.get(f"{url}/ui/secrets.txt", timeout=10).json()["error"]["code"] == "not_found"
