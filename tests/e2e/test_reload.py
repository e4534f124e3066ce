"""Hot reload in a real `gateway serve` process: every trigger takes effect, a broken
config is refused while the old one keeps answering, and streams in flight finish on
the config they started with."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from gateway.providers.snapshots import build_snapshot
from tests.support.configs import ECHO_PROVIDER, openai_provider
from tests.support.servers import gateway_process, serve_app

ADMIN = "admin-key-for-reload-tests"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}
ENV = {"GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_RELOAD_QUIET_MS": "60"}
PROVIDERS = {"providers": {"echo": ECHO_PROVIDER}}
# One client without keep-alive: every request opens a new connection, so under --workers N
# the kernel spreads them over the workers; and one client saves httpx's per-client set-up.
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def routes(*aliases: str) -> dict[str, Any]:
    return {"routes": {alias: {"targets": ["echo/echo-1"]} for alias in ("echo", *aliases)}}


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def write_in_place(path: Path, data: dict[str, Any]) -> None:
    with open(path, "r+" if path.exists() else "w") as handle:  # same inode, as `echo > file` does
        handle.seek(0)
        handle.truncate()
        handle.write(dump(data))


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(dump(data))
    os.replace(temporary, path)  # as editors and `git pull` do


def version_of(routes_path: Path, providers_path: Path) -> str:
    return build_snapshot(routes_path, providers_path).version


def chat(url: str, alias: str = "echo", **kwargs: Any) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": "hello"}]}
    return HTTP.post(f"{url}/v1/chat/completions", json=body, **kwargs)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.03)
    raise AssertionError("condition not met in time")


def serving(url: str, version: str) -> Callable[[], bool]:
    return lambda: chat(url).headers.get("x-gateway-config") == version


def admin_config(url: str) -> dict[str, Any]:
    response = HTTP.get(f"{url}/admin/config", headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "routes.yaml").write_text(dump(routes("first")))
    (directory / "providers.yaml").write_text(dump(PROVIDERS))
    return directory


def test_edit_in_place_takes_effect(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, env=ENV) as (url, _):
        old = chat(url).headers["x-gateway-config"]
        assert chat(url, "second").status_code == 404
        for i in range(5):  # other files in the same directory do not wake the reloader
            (config_dir / "notes.txt").write_text(f"note {i}")
            (config_dir / ".routes.yaml.swp").write_text("editor state")
        time.sleep(0.3)
        assert admin_config(url)["reloads"] == []
        write_in_place(routes_path, routes("second"))
        new = version_of(routes_path, providers_path)
        assert new != old
        wait_for(serving(url, new))
        assert chat(url, "second").status_code == 200
        assert chat(url, "first").status_code == 404


def test_atomic_rename_takes_effect(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, env=ENV) as (url, _):
        write_atomically(routes_path, routes("renamed"))
        wait_for(serving(url, version_of(routes_path, providers_path)))
        assert chat(url, "renamed").status_code == 200
        # providers.yaml is watched as well: a second provider model appears behind a new alias
        write_atomically(providers_path, {"providers": {"echo": {**ECHO_PROVIDER, "models": {"echo-1": {}, "echo-2": {}}}}})
        write_atomically(routes_path, {"routes": {"echo": {"targets": ["echo/echo-2"]}}})
        wait_for(lambda: chat(url).headers.get("x-gateway-target") == "echo/echo-2")


def test_configmap_symlink_swap_takes_effect(tmp_path: Path):
    """Kubernetes mounts a ConfigMap as `name -> ..data/name` and swaps `..data` to a new directory."""
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(stamp: str, data: dict[str, Any]) -> None:
        version_dir = mount / f"..{stamp}"
        version_dir.mkdir()
        (version_dir / "routes.yaml").write_text(dump(data))
        (version_dir / "providers.yaml").write_text(dump(PROVIDERS))
        link = mount / "..data_tmp"
        link.symlink_to(version_dir.name)
        previous = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
        os.replace(link, mount / "..data")  # the atomic swap kubelet performs
        if previous:
            shutil.rmtree(mount / previous)

    publish("2026_01_01_00_00_00.1", routes("first"))
    for name in ("routes.yaml", "providers.yaml"):
        (mount / name).symlink_to(f"..data/{name}")
    with gateway_process(mount / "routes.yaml", mount / "providers.yaml", env=ENV) as (url, _):
        assert chat(url, "swapped").status_code == 404
        publish("2026_01_01_00_01_00.2", routes("swapped"))
        wait_for(lambda: chat(url, "swapped").status_code == 200)
        publish("2026_01_01_00_02_00.3", routes("again"))  # a second swap: the watch survives the first
        wait_for(lambda: chat(url, "again").status_code == 200)


def test_a_pack_file_the_providers_use_is_watched_too(config_dir: Path, upstream):
    upstream_url, _ = upstream
    packs = config_dir / "packs"
    packs.mkdir()
    builtin = (Path(__file__).resolve().parents[2] / "gateway" / "providers" / "packs" / "openai.yaml").read_text()
    (packs / "mine.yaml").write_text(builtin)
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    remote = {**openai_provider(upstream_url, ["model-1"]), "api": "./packs/mine.yaml"}
    write_atomically(providers_path, {"providers": {"remote": remote}})
    write_atomically(routes_path, {"routes": {"echo": {"targets": ["remote/model-1"]}}})
    with gateway_process(routes_path, providers_path, env=ENV) as (url, _):
        before = chat(url).headers["x-gateway-config"]
        assert str(packs / "mine.yaml") in admin_config(url)["sources"]
        (packs / "mine.yaml").write_text(builtin + "\n# a reviewed change to the pack\n")
        after = version_of(routes_path, providers_path)
        assert after != before
        wait_for(serving(url, after))
        (packs / "mine.yaml").write_text("name: [not a pack")  # a broken pack is refused like a broken route
        wait_for(lambda: admin_config(url)["last_refused"] is not None)
        assert admin_config(url)["last_refused"]["errors"][0]["file"].endswith("mine.yaml")
        assert chat(url).headers["x-gateway-config"] == after


def test_sighup_reloads_without_the_file_watcher(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, "--no-watch", env=ENV) as (url, process):
        old = chat(url).headers["x-gateway-config"]
        write_atomically(routes_path, routes("by-signal"))
        time.sleep(0.4)
        assert chat(url).headers["x-gateway-config"] == old  # not watching: nothing happens by itself
        process.send_signal(signal.SIGHUP)
        wait_for(serving(url, version_of(routes_path, providers_path)))
        assert process.poll() is None
        assert admin_config(url)["reloads"][-1]["trigger"] == "signal"


def test_admin_reload_needs_the_admin_key_and_reports_the_version(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, "--no-watch", env=ENV) as (url, _):
        old = chat(url).headers["x-gateway-config"]
        write_atomically(routes_path, routes("by-admin"))
        assert HTTP.post(f"{url}/admin/reload").status_code == 401
        assert HTTP.post(f"{url}/admin/reload", headers={"authorization": "Bearer wrong-key"}).status_code == 401
        assert chat(url).headers["x-gateway-config"] == old
        response = HTTP.post(f"{url}/admin/reload", headers=ADMIN_HEADERS)
        assert response.status_code == 200, response.text
        new = version_of(routes_path, providers_path)
        assert response.json()["result"] == "applied"
        assert (response.json()["version"], response.json()["previous"]) == (new, old)
        assert chat(url).headers["x-gateway-config"] == new
        again = HTTP.post(f"{url}/admin/reload", headers=ADMIN_HEADERS).json()
        assert (again["result"], again["version"]) == ("unchanged", new)


def test_broken_config_is_refused_logged_counted_and_the_old_one_keeps_serving(config_dir: Path, tmp_path: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    log = tmp_path / "gateway.observe.log"
    broken = "routes:\n  echo:\n    targets: [echo/echo-1]\n  bad:\n    targets: [nowhere/model]\n    strategy: sideways\n"
    with gateway_process(routes_path, providers_path, env=ENV, log=log) as (url, _):
        old = chat(url).headers["x-gateway-config"]
        routes_path.write_text(broken)
        wait_for(lambda: admin_config(url)["last_refused"] is not None)
        for _ in range(5):
            response = chat(url)
            assert response.status_code == 200
            assert response.headers["x-gateway-config"] == old
        assert chat(url, "first").status_code == 200  # the old config, whole

        refused = admin_config(url)["last_refused"]
        assert refused["result"] == "refused" and refused["trigger"] == "file"
        assert refused["version"] == old
        messages = [(e["line"], e["message"]) for e in refused["errors"]]
        assert any(line == 6 and "strategy" in message for line, message in messages), messages

        metrics = HTTP.get(f"{url}/metrics").text
        assert re.search(r'gateway_config_reloads_total\{result="refused"\} 1\.0', metrics)
        assert "gateway_config_last_reload_successful 0.0" in metrics
        assert f'gateway_config_info{{version="{old}"}} 1.0' in metrics

        refusal = HTTP.post(f"{url}/admin/reload", headers=ADMIN_HEADERS)
        assert refusal.status_code == 422
        assert refusal.json()["error"]["code"] == "config_refused"
        assert any(e["line"] == 6 for e in refusal.json()["error"]["errors"])

        routes_path.write_text(dump(routes("fixed")))  # fixing it is picked up as usual
        wait_for(lambda: chat(url, "fixed").status_code == 200)
        assert "gateway_config_last_reload_successful 1.0" in HTTP.get(f"{url}/metrics").text
    text = log.read_text()
    assert re.search(rf"refused, still serving {old}", text)
    assert re.search(rf"{re.escape(str(routes_path))}:6:\d+: .*strategy", text), text


def test_quick_saves_collapse_into_one_reload(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, env={**ENV, "GATEWAY_RELOAD_QUIET_MS": "300"}) as (url, _):
        for i in range(6):  # an editor saving repeatedly, 20 ms apart, half-written files included
            routes_path.write_text("routes:\n  echo:\n    targets: [echo/ec")
            write_in_place(routes_path, routes(f"save-{i}"))
            time.sleep(0.02)
        wait_for(serving(url, version_of(routes_path, providers_path)))
        time.sleep(0.5)
        reloads = admin_config(url)["reloads"]
        assert [r["result"] for r in reloads] == ["applied"], reloads


def slow_upstream() -> Starlette:
    """Streams ten chunks, 80 ms apart: long enough to reload in the middle of one."""

    async def chat_completions(request: Request) -> StreamingResponse:
        async def chunks():
            base = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"slow","choices":[{"index":0,'
            for i in range(10):
                yield f'data: {base}"delta":{{"content":"w{i} "}},"finish_reason":null}}]}}\n\n'.encode()
                await asyncio.sleep(0.08)
            yield f'data: {base}"delta":{{}},"finish_reason":"stop"}}]}}\n\n'.encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


def test_stream_in_flight_finishes_on_the_config_it_started_with(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with serve_app(slow_upstream()) as upstream_url:
        providers = {"providers": {"echo": ECHO_PROVIDER, "slow": openai_provider(upstream_url, ["slow-1"])}}
        providers_path.write_text(dump(providers))
        routes_path.write_text(dump({"routes": {"echo": {"targets": ["echo/echo-1"]}, "slow": {"targets": ["slow/slow-1"]}}}))
        with gateway_process(routes_path, providers_path, env=ENV) as (url, _):
            old = version_of(routes_path, providers_path)
            body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
                assert response.headers["x-gateway-config"] == old
                lines = response.iter_lines()
                first = next(line for line in lines if line)
                # Remove the route and its provider while the stream is running.
                write_atomically(providers_path, PROVIDERS)
                write_atomically(routes_path, routes())
                new = version_of(routes_path, providers_path)
                wait_for(serving(url, new))
                rest = [line for line in lines if line]
            frames = [first, *rest]
            assert frames[-1] == "data: [DONE]"
            assert sum('"content":"w' in frame for frame in frames) == 10
            assert not any('"error"' in frame for frame in frames)
            assert chat(url, "slow").status_code == 404  # new requests see the new config


def test_every_worker_reloads_on_files_signal_and_admin(config_dir: Path):
    routes_path, providers_path = config_dir / "routes.yaml", config_dir / "providers.yaml"
    with gateway_process(routes_path, providers_path, "--workers", "2", env=ENV) as (url, process):
        def by_worker() -> dict[int, dict[str, Any]]:
            seen: dict[int, dict[str, Any]] = {}
            for _ in range(60):  # a new connection each time, so the kernel spreads them over workers
                body = admin_config(url)
                seen[body["pid"]] = body
                if len(seen) == 2:
                    break
            return seen

        def every_worker(check: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
            return lambda: len(seen := by_worker()) == 2 and all(check(body) for body in seen.values())

        wait_for(every_worker(lambda b: b["version"] == version_of(routes_path, providers_path)), timeout=10)
        workers = set(by_worker())

        write_atomically(routes_path, routes("watched"))  # each worker follows the files itself
        new = version_of(routes_path, providers_path)
        wait_for(every_worker(lambda b: b["version"] == new))
        assert all(chat(url).headers["x-gateway-config"] == new for _ in range(20))

        def reloaded_after(moment: float, trigger: str) -> Callable[[dict[str, Any]], bool]:
            return lambda body: any(r["at"] > moment and r["trigger"] == trigger for r in body["reloads"])

        moment = time.time()
        process.send_signal(signal.SIGHUP)  # the supervisor passes SIGHUP on to every worker
        wait_for(every_worker(reloaded_after(moment, "signal")))

        moment = time.time()
        response = HTTP.post(f"{url}/admin/reload", headers=ADMIN_HEADERS)
        assert response.json()["all_workers"] is True  # /admin/reload on one worker reaches the other too
        wait_for(every_worker(reloaded_after(moment, "signal")))
        assert set(by_worker()) == workers  # reloaded in place, never restarted
