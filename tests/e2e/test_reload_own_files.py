"""The config watcher wakes only for the config: the gateway's own log file in the config
folder (even at DEBUG), its data and any file that is not YAML never trigger a reload."""

from __future__ import annotations

import json
import time

import httpx
import yaml

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import gateway_process


def _events(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_own_log_file_and_other_files_never_trigger_a_reload(tmp_path):
    folder = tmp_path / "config"
    routes, providers = write_config(folder, {"routes": {"echo": {"targets": ["echo/echo-1"]}}}, {"echo": ECHO_PROVIDER})
    log = folder / "gateway.log"  # the gateway's own log, inside the watched folder
    env = {"GATEWAY_LOG_LEVEL": "DEBUG", "GATEWAY_LOG_FORMAT": "json", "GATEWAY_DATA_DIR": str(folder / "data")}
    with gateway_process(routes, providers, env=env, log=log) as (url, _):
        httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
        (folder / "notes.txt").write_text("not config")
        (folder / "routes.yaml.swp").write_text("an editor's swap file")
        (folder / "old.json").write_text("{}")
        time.sleep(2.5)
        size = log.stat().st_size
        time.sleep(1.5)
        grown = log.stat().st_size - size
        assert grown < 2000, f"the log grew by {grown} bytes while nothing happened: a feedback loop"
        assert not [e for e in _events(log) if e.get("event") == "reload"]
        # The config itself still reloads, once.
        routes.write_text(yaml.safe_dump({"routes": {"echo": {"targets": ["echo/echo-1"]},
                                                     "two": {"targets": ["echo/echo-1"]}}}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "two" not in {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}:
            time.sleep(0.1)
        time.sleep(1.5)
    reloads = [e for e in _events(log) if e.get("event") == "reload"]
    assert len(reloads) == 1, reloads
