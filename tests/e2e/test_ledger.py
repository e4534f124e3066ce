"""The request ledger on a real database, SQLite and PostgreSQL alike: one row per admitted
request written off the request path, nothing lost on a graceful stop, budgets that
survive a restart, one ledger for a fleet, and usage read back from it."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.ledger import ledger_rows
from tests.support.servers import serve_app

KEY_A = "sk-ledger-test-key-aaaa-0001"
KEY_B = "sk-ledger-test-key-bbbb-0002"
ADMIN = "admin-secret-for-ledger-tests"
MESSAGES = [{"role": "user", "content": "hello"}]
DOLLAR_A_TOKEN = {"input_per_1m": 1_000_000, "output_per_1m": 1_000_000}  # the upstream's answer: $18


@pytest.fixture(autouse=True)
def admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


def routes(database_url: str, budget: float | None = None, **database: object) -> dict:
    key_a: dict = {"name": "team-a", "sha256": hashlib.sha256(KEY_A.encode()).hexdigest()}
    if budget is not None:
        key_a["budget"] = {"usd": budget, "per": "day"}
    return {
        "routes": {"paid": {"targets": ["up/gpt-x"]}, "echo": {"targets": ["echo/echo-1"]},
                   "cached": {"targets": ["up/gpt-x"], "cache": {"ttl": 60}}},
        "keys": [key_a, {"name": "team-b", "sha256": hashlib.sha256(KEY_B.encode()).hexdigest()}],
        "database": {"url": database_url, "flush_interval": 0.2, **database},
    }


def providers(base: str) -> dict:
    return {"up": openai_provider(base, {"gpt-x": DOLLAR_A_TOKEN}), "echo": ECHO_PROVIDER}


def app(tmp_path: Path, name: str, routes_: dict, providers_: dict):  # type: ignore[no-untyped-def]
    routes_path, providers_path = write_config(tmp_path / name, routes_, providers_)
    return create_app(str(routes_path), str(providers_path))


def client(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def admin(url: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)


def test_every_admitted_request_is_one_row_after_a_graceful_stop(tmp_path, upstream, database_url):
    base, _ = upstream
    with serve_app(app(tmp_path, "one", routes(database_url), providers(base))) as url:
        for _ in range(20):
            client(url).chat.completions.create(model="paid", messages=MESSAGES)
        for _ in range(5):
            stream = client(url, KEY_B).chat.completions.create(
                model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.NotFoundError):  # refused before admission: not a ledger row
            client(url).chat.completions.create(model="no-such-route", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            client(url, "sk-not-a-key-at-all-0000").chat.completions.create(model="paid", messages=MESSAGES)
    rows = ledger_rows(database_url)  # the app has stopped: everything must be there
    assert len(rows) == 25
    paid = [r for r in rows if r["route"] == "paid"]
    assert len(paid) == 20 and {r["key_name"] for r in paid} == {"team-a"}
    first = paid[0]
    assert (first["provider"], first["model"], first["endpoint"], first["status"]) == ("up", "gpt-x", "chat", 200)
    assert (first["prompt_tokens"], first["completion_tokens"], first["cost_usd"]) == (11, 7, 18.0)
    assert first["attempts"] == 1 and first["stream"] is False and first["cache_hit"] is False
    assert first["tenant"] is None and first["error_type"] is None and first["latency_ms"] > 0
    streamed = [r for r in rows if r["route"] == "echo"]
    assert len(streamed) == 5 and all(r["stream"] and r["key_name"] == "team-b" for r in streamed)
    assert len({r["request_id"] for r in rows}) == 25


def test_a_budget_half_spent_stays_half_spent_after_a_restart(tmp_path, upstream, database_url):
    base, _ = upstream
    config = routes(database_url, budget=20.0)  # $18 a request: one fits, a fresh budget would fit two
    with serve_app(app(tmp_path, "first", config, providers(base))) as url:
        client(url).chat.completions.create(model="paid", messages=MESSAGES)
    with serve_app(app(tmp_path, "second", config, providers(base))) as url:
        report = admin(url, "/admin/usage").json()
        team = next(k for k in report["keys"] if k["key"] == "team-a")
        assert team["budget"]["spent_usd"] == pytest.approx(18.0)
        assert team["budget"]["remaining_usd"] == pytest.approx(2.0)
        assert team["cost_usd"] == pytest.approx(18.0) and report["source"] == "ledger"
        client(url).chat.completions.create(model="paid", messages=MESSAGES)  # $18 spent < $20: admitted
        with pytest.raises(openai.RateLimitError) as caught:
            client(url).chat.completions.create(model="paid", messages=MESSAGES)
        assert caught.value.code == "budget_exceeded"


def test_two_gateways_on_one_postgresql_write_one_ledger(tmp_path, upstream, postgres_server_url):
    from tests.support.postgres_server import create_database

    database_url = create_database(postgres_server_url)
    base, _ = upstream
    config = routes(database_url)
    with serve_app(app(tmp_path, "a", config, providers(base))) as a, \
            serve_app(app(tmp_path, "b", config, providers(base))) as b:
        for _ in range(3):
            client(a).chat.completions.create(model="paid", messages=MESSAGES)
            client(b, KEY_B).chat.completions.create(model="paid", messages=MESSAGES)
        admin(b, "/admin/requests")  # b's rows are written before it reads; a's within a flush interval
        import time

        deadline = time.monotonic() + 5
        while True:
            totals = admin(a, "/admin/usage").json()["totals"]
            if totals["requests"] == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert totals["requests"] == 6 and totals["cost_usd"] == pytest.approx(6 * 18.0)
    rows = ledger_rows(database_url)
    assert len(rows) == 6
    assert sorted(r["key_name"] for r in rows) == ["team-a"] * 3 + ["team-b"] * 3


def test_usage_groups_series_and_csv_from_the_ledger(tmp_path, upstream, database_url):
    base, _ = upstream
    with serve_app(app(tmp_path, "one", routes(database_url), providers(base))) as url:
        for _ in range(2):
            client(url).chat.completions.create(model="paid", messages=MESSAGES)
        client(url, KEY_B).chat.completions.create(model="paid", messages=MESSAGES)
        client(url, KEY_B).chat.completions.create(model="echo", messages=MESSAGES)
        today = datetime.now(UTC).date()
        tomorrow = (today + timedelta(days=1)).isoformat()
        grouped = admin(url, "/admin/usage", **{"from": today.isoformat(), "to": tomorrow,
                                                "group_by": "key,route"}).json()
        assert grouped["period"] == "range" and grouped["source"] == "ledger"
        groups = {(g["key"], g["route"]): g for g in grouped["groups"]}
        assert set(groups) == {("team-a", "paid"), ("team-b", "paid"), ("team-b", "echo")}
        assert groups[("team-a", "paid")]["requests"] == 2
        assert groups[("team-a", "paid")]["cost_usd"] == pytest.approx(36.0)
        assert grouped["totals"]["requests"] == 4

        by_provider = admin(url, "/admin/usage", group_by="provider", interval="hour").json()
        series = by_provider["series"]
        assert {s["provider"] for s in series} == {"up", "echo"}
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        assert all(datetime.fromisoformat(s["start"].replace("Z", "+00:00")) in (hour, hour - timedelta(hours=1))
                   for s in series)
        assert sum(s["requests"] for s in series) == 4

        daily = admin(url, "/admin/usage", interval="day", format="csv")
        assert daily.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(daily.text)))
        assert len(table) == 1 and table[0]["requests"] == "4" and table[0]["start"].startswith(today.isoformat())

        accepted = httpx.get(f"{url}/admin/usage", params={"group_by": "model"},
                             headers={"authorization": f"Bearer {ADMIN}", "accept": "text/csv"})
        models = {row["model"]: row for row in csv.DictReader(io.StringIO(accepted.text))}
        assert set(models) == {"gpt-x", "echo-1"} and models["gpt-x"]["requests"] == "3"

        # `to` is exclusive and a range before today has nothing.
        empty = admin(url, "/admin/usage", **{"from": "2020-01-01", "to": today.isoformat()}).json()
        assert empty["totals"]["requests"] == 0
        assert admin(url, "/admin/usage", group_by="secret").status_code == 400
        assert admin(url, "/admin/usage", interval="minute").status_code == 400

        listed = admin(url, "/admin/requests", key="team-b", route="paid").json()["data"]
        assert len(listed) == 1 and listed[0]["key_name"] == "team-b" and listed[0]["status"] == 200
        assert admin(url, "/admin/requests", status="200", limit="2").json()["data"].__len__() == 2
        assert admin(url, "/admin/requests", status="500").json()["data"] == []


def test_cost_is_on_every_answer_and_in_the_ledger(tmp_path, upstream, database_url):
    base, _ = upstream
    with serve_app(app(tmp_path, "one", routes(database_url), providers(base))) as url:
        plain = client(url).chat.completions.with_raw_response.create(model="paid", messages=MESSAGES)
        assert float(plain.headers["x-gateway-cost-usd"]) == pytest.approx(18.0)
        miss = client(url).chat.completions.with_raw_response.create(model="cached", messages=MESSAGES)
        hit = client(url).chat.completions.with_raw_response.create(model="cached", messages=MESSAGES)
        assert hit.headers["x-gateway-cache"] == "hit" and float(hit.headers["x-gateway-cost-usd"]) == 0
        assert float(miss.headers["x-gateway-cost-usd"]) == pytest.approx(18.0)
        streamed = client(url).chat.completions.with_raw_response.create(
            model="paid", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
        estimate = float(streamed.headers["x-gateway-cost-usd"])  # headers leave before usage is known
        assert estimate > 0
        list(streamed.parse())
    rows = ledger_rows(database_url)
    assert [r["cost_usd"] for r in rows[:3]] == [18.0, 18.0, 0.0]
    assert rows[2]["cache_hit"] is True
    stream_row = rows[3]  # the real cost, from the usage the stream reported at its end
    assert stream_row["stream"] is True and stream_row["completion_tokens"] > 0
    assert stream_row["cost_usd"] == stream_row["prompt_tokens"] + stream_row["completion_tokens"]


def test_a_gateway_with_the_database_off_serves_without_one(tmp_path, upstream, monkeypatch):
    """`database: {enabled: false}`: no file is made, answers and the day's usage work from the
    store, and what only the ledger can say is a clear 503."""
    base, _ = upstream
    data_dir = tmp_path / "data"
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(data_dir))
    config = routes("", enabled=False)
    with serve_app(app(tmp_path, "off", config, providers(base))) as url:
        answer = client(url).chat.completions.with_raw_response.create(model="paid", messages=MESSAGES)
        assert answer.headers["x-gateway-cost-usd"] == "18.00000000"
        assert "database" not in httpx.get(f"{url}/ready", timeout=10).json()
        report = admin(url, "/admin/usage").json()
        assert next(k for k in report["keys"] if k["key"] == "team-a")["cost_usd"] == pytest.approx(18.0)
        assert admin(url, "/admin/requests").status_code == 503
    assert not data_dir.exists()


def test_budgets_come_back_when_redis_restarts_empty_under_a_running_gateway(tmp_path, upstream, redis_url, monkeypatch):
    """The ledger is re-read on a schedule: a Redis that lost its counters while the gateway
    kept serving gets the window's spend back without a restart."""
    import redis

    from tests.support.redis_server import new_prefix

    base, _ = upstream
    prefix = new_prefix()
    monkeypatch.setenv("REDIS_URL", redis_url)
    config = routes(f"sqlite:///{tmp_path / 'ledger.db'}", budget=18.0, resync_interval=0.3)
    config["store"] = {"prefix": prefix}
    with serve_app(app(tmp_path, "resync", config, providers(base))) as url:
        client(url).chat.completions.create(model="paid", messages=MESSAGES)

        def spent() -> float:
            report = admin(url, "/admin/usage").json()
            return next(k for k in report["keys"] if k["key"] == "team-a")["budget"]["spent_usd"]

        assert spent() == pytest.approx(18.0)
        wiped = redis.Redis.from_url(redis_url)
        for name in wiped.scan_iter(f"{prefix}*"):  # Redis comes back empty
            wiped.delete(name)
        wiped.close()
        assert spent() == pytest.approx(0.0)
        deadline = time.monotonic() + 5
        while spent() < 18.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spent() == pytest.approx(18.0)
        with pytest.raises(openai.RateLimitError):  # the $18 budget is spent, as before Redis lost it
            client(url).chat.completions.create(model="paid", messages=MESSAGES)
