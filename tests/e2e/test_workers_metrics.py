"""`gateway serve --workers 2`: whichever worker answers the scrape, /metrics reports the
sum over both workers."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.scrape import scrape, value
from tests.support.servers import gateway_process

ROUTES = {"defaults": {"retry": {"attempts": 1}}, "routes": {"w": {"targets": ["up/gpt-test"]}}}
CHAT = {"model": "w", "messages": [{"role": "user", "content": "hi"}]}


def logged(log: Path, event: str) -> list[dict]:
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


def send_until_both_workers_answered(url: str, log: Path) -> int:
    """Fresh connections, a few at a time, until the log shows two worker pids."""
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < 400:
            statuses = list(pool.map(lambda _: httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code, range(16)))
            assert statuses == [200] * 16
            sent += 16
            time.sleep(0.1)
            if len({r["pid"] for r in logged(log, "request")}) >= 2:
                return sent
    raise AssertionError("every request went to the same worker")


def assert_every_scrape_sums_both_workers(url: str, sent: int) -> None:
    # A worker hands its counts to the shared files once a second (gateway.observe.tally):
    # wait for the sum to arrive, then every scrape, whichever worker answers, must show it.
    deadline = time.monotonic() + 5
    while value(scrape(url), "gateway_requests_total", endpoint="chat", route="w", target="up/gpt-test",
                status="200") != sent and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(8):  # each scrape lands on either worker; all must agree
        series = scrape(url)
        assert value(series, "gateway_requests_total", endpoint="chat", route="w", target="up/gpt-test", status="200") == sent
        assert value(series, "gateway_tokens_total", key="", route="w", target="up/gpt-test", kind="prompt") == 11 * sent
        assert value(series, "gateway_request_duration_seconds_count", endpoint="chat", route="w") == sent
        assert value(series, "gateway_upstream_attempts_total", route="w", target="up/gpt-test", **{"class": "ok"}) == sent
        assert value(series, "gateway_in_flight_requests", endpoint="chat") == 0
        assert sum(v for (n, _), v in series.items() if n == "gateway_config_info") == 1


def test_two_workers_in_a_fresh_temporary_directory(tmp_path, upstream):
    base, _ = upstream
    routes, providers = write_config(tmp_path, ROUTES, {"up": openai_provider(base, ["gpt-test"]), "echo": ECHO_PROVIDER})
    log = tmp_path / "gateway.observe.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": ""}
    with gateway_process(routes, providers, "--workers", "2", env=env, log=log) as (url, _):
        sent = send_until_both_workers_answered(url, log)
        assert_every_scrape_sums_both_workers(url, sent)
        (start,) = logged(log, "start")
        metrics_dir = Path(start["metrics_dir"])
        assert metrics_dir.is_dir() and len({r["pid"] for r in logged(log, "ready")}) == 2
    assert not metrics_dir.exists()  # removed when the server stopped


def test_an_operators_directory_is_emptied_at_start(tmp_path, upstream):
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    base, _ = upstream
    routes, providers = write_config(tmp_path, ROUTES, {"up": openai_provider(base, ["gpt-test"]), "echo": ECHO_PROVIDER})
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    # A previous run's counter file, as a crashed server would leave it.
    stale = MmapedDict(str(metrics_dir / "counter_999999.db"))
    labels = ["chat", "w", "up/gpt-test", "200"]
    stale.write_value(mmap_key("gateway_requests", "gateway_requests_total", ["endpoint", "route", "target", "status"],
                               labels, "Requests"), 1000.0, 0.0)
    stale.close()
    log = tmp_path / "gateway.observe.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with gateway_process(routes, providers, "--workers", "2", env=env, log=log) as (url, _):
        assert not (metrics_dir / "counter_999999.db").exists()
        sent = send_until_both_workers_answered(url, log)
        assert_every_scrape_sums_both_workers(url, sent)
    assert metrics_dir.is_dir()  # the operator's directory is kept
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None
