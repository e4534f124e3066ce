"""SIGTERM with a stream in flight: the stream finishes, new connections are refused,
and the process exits; a stream longer than --graceful-timeout is cut at the bound."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.servers import gateway_process

ROUTES = {"routes": {"slow": {"targets": ["up/slow-1"]}}}


class StreamReader(threading.Thread):
    """Reads one streamed answer in the background, noting when the first chunk came."""

    def __init__(self, url: str, words: int) -> None:
        super().__init__(daemon=True)
        self.url, self.words = url, words
        self.lines: list[str] = []
        self.first = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": " ".join(["w"] * self.words)}]}
        try:
            with httpx.stream("POST", f"{self.url}/v1/chat/completions", json=body, timeout=30) as response:
                for line in response.iter_lines():
                    if line:
                        self.lines.append(line)
                        self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.first.set()


@pytest.fixture
def config(tmp_path, upstream):
    base, _ = upstream
    return write_config(tmp_path, ROUTES, {"up": openai_provider(base, ["slow-1"]), "echo": ECHO_PROVIDER})


def test_sigterm_lets_a_stream_in_flight_finish(config, tmp_path):
    routes, providers = config
    log = tmp_path / "gateway.observe.log"
    with gateway_process(routes, providers, log=log) as (url, process):
        reader = StreamReader(url, words=3)  # 5 content chunks, 0.3 s apart
        reader.start()
        assert reader.first.wait(10) and reader.lines
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no new connections once shutting down
            httpx.get(f"{url}/health", timeout=2)
        reader.join(15)
        assert process.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
        exited = time.monotonic() - signalled
    assert reader.error is None
    assert reader.lines[-1] == "data: [DONE]"
    assert exited >= 0.6  # it waited for the stream rather than exiting at once
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (request,) = [r for r in records if r["event"] == "request"]
    assert request["stream"] == "done" and request["status"] == 200


def test_a_stream_longer_than_the_bound_is_cut_when_it_expires(config, tmp_path):
    routes, providers = config
    with gateway_process(routes, providers, "--graceful-timeout", "1") as (url, process):
        reader = StreamReader(url, words=20)  # about 7 s of stream
        reader.start()
        assert reader.first.wait(10)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) in (0, -signal.SIGTERM)
        exited = time.monotonic() - signalled
        reader.join(10)
    assert 0.9 <= exited < 4
    assert "data: [DONE]" not in reader.lines  # cut, and the client can tell
