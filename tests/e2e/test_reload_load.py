"""No request fails because of a reload: steady plain and streamed traffic against a real
`gateway serve` while its config is rewritten many times a second."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from gateway.providers.snapshots import build_snapshot
from tests.e2e.test_reload import (
    ENV,
    admin_config,
    dump,
    slow_upstream,
    write_atomically,
    write_in_place,
)
from tests.support.configs import ECHO_PROVIDER, openai_provider
from tests.support.servers import gateway_process, serve_app

SECONDS = 3.0
WORDS = " ".join(f"word{i}" for i in range(40))


def variant(i: int) -> dict[str, Any]:
    """Three configs that serve the same aliases from different targets."""
    echo_target = ["echo/echo-1", "echo/echo-2", "echo/echo-1"][i % 3]
    return {
        "routes": {
            "echo": {"targets": [echo_target], "description": f"variant {i % 3}"},
            "slow": {"targets": ["slow/slow-1"], "retry": {"attempts": 1 + i % 3}},
        }
    }


def applied(url: str) -> int:
    return sum(r["result"] == "applied" for r in admin_config(url)["reloads"])


def test_rewriting_the_config_many_times_a_second_fails_no_request(tmp_path: Path):
    with serve_app(slow_upstream()) as upstream_url:
        providers = {"providers": {
            "echo": {**ECHO_PROVIDER, "models": {"echo-1": {}, "echo-2": {}}},
            "slow": openai_provider(upstream_url, ["slow-1"]),
        }}
        routes_path, providers_path = tmp_path / "routes.yaml", tmp_path / "providers.yaml"
        providers_path.write_text(dump(providers))
        versions = set()
        for i in range(3):
            routes_path.write_text(dump(variant(i)))
            versions.add(build_snapshot(routes_path, providers_path).version)
        assert len(versions) == 3
        routes_path.write_text(dump(variant(0)))

        env = {**ENV, "GATEWAY_RELOAD_QUIET_MS": "20"}
        with gateway_process(routes_path, providers_path, env=env) as (url, _):
            stop = threading.Event()
            failures: list[str] = []
            served: Counter[str] = Counter()
            lock = threading.Lock()

            def record(response_version: str | None, problem: str | None) -> None:
                with lock:
                    if problem:
                        failures.append(problem)
                    if response_version not in versions:
                        failures.append(f"unknown config version {response_version!r}")
                    served[str(response_version)] += 1

            def plain() -> None:
                with httpx.Client(base_url=url, timeout=10) as client:
                    while not stop.is_set():
                        try:
                            r = client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
                            ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Echo: hi"
                            record(r.headers.get("x-gateway-config"), None if ok else f"plain {r.status_code} {r.text[:200]}")
                        except httpx.HTTPError as exc:
                            record(None, f"plain raised {exc!r}")

            def streamed(alias: str, expected_chunks: int) -> None:
                body = {"model": alias, "stream": True, "messages": [{"role": "user", "content": WORDS}]}
                with httpx.Client(base_url=url, timeout=10) as client:
                    while not stop.is_set():
                        try:
                            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                                frames = [line for line in r.iter_lines() if line]
                                version = r.headers.get("x-gateway-config")
                            content = sum('"content":"' in f and '"content":""' not in f for f in frames)
                            complete = (r.status_code == 200 and frames[-1] == "data: [DONE]"
                                        and not any('"error"' in f for f in frames) and content == expected_chunks)
                            record(version, None if complete else f"{alias} stream cut: {r.status_code} {frames[-3:]}")
                        except httpx.HTTPError as exc:
                            record(None, f"{alias} stream raised {exc!r}")

            def rewrite() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    (write_in_place if i % 2 else write_atomically)(routes_path, variant(i))
                    time.sleep(0.07)

            workers = [threading.Thread(target=plain) for _ in range(2)]
            workers += [threading.Thread(target=streamed, args=("echo", 41)) for _ in range(2)]
            workers += [threading.Thread(target=streamed, args=("slow", 10)) for _ in range(2)]
            workers.append(threading.Thread(target=rewrite))
            for thread in workers:
                thread.start()
            time.sleep(SECONDS)
            deadline = time.monotonic() + 10  # on a busy machine, keep going until reloads did happen
            while time.monotonic() < deadline and (len(served) < 2 or applied(url) < 3):
                time.sleep(0.2)
            stop.set()
            for thread in workers:
                thread.join(timeout=10)

            assert failures == [], failures[:10]
            assert sum(served.values()) > 100
            assert len(served) >= 2, served  # answers came from several configs: reloads happened under load
            assert applied(url) >= 3
