"""What a hostile client can cost a `gateway serve` process: oversized or slow headers,
silent sockets and too many connections are refused or closed, memory stays bounded and
normal requests keep their latency."""

from __future__ import annotations

import socket
import time

import httpx

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import gateway_process


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, BrokenPipeError):
        pass
    return b"".join(chunks)


def _config(tmp_path):
    return write_config(tmp_path, {"routes": {"echo": {"targets": ["echo/echo-1"]}}}, {"echo": ECHO_PROVIDER})


def _chat_latency(url: str) -> float:
    started = time.monotonic()
    answer = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    return time.monotonic() - started


def test_headers_over_the_size_or_count_limit_get_431(tmp_path):
    routes, providers = _config(tmp_path)
    with gateway_process(routes, providers) as (url, _):
        big = httpx.get(f"{url}/health", headers={"x-big": "a" * (65 * 1024)})
        assert big.status_code == 431
        many = httpx.get(f"{url}/health", headers={f"x-h{i}": "1" for i in range(101)})
        assert many.status_code == 431
        # Just under both limits is served.
        assert httpx.get(f"{url}/health", headers={"x-big": "a" * (60 * 1024)}).status_code == 200
        assert httpx.get(f"{url}/health", headers={f"x-h{i}": "1" for i in range(90)}).status_code == 200
        # The limits are settable.
    with gateway_process(routes, providers, "--max-header-bytes", "2048", "--max-headers", "10") as (url, _):
        assert httpx.get(f"{url}/health", headers={"x-big": "a" * 3000}).status_code == 431
        assert httpx.get(f"{url}/health", headers={f"x-h{i}": "1" for i in range(11)}).status_code == 431
        assert httpx.get(f"{url}/health").status_code == 200


def test_slow_huge_headers_and_idle_sockets_do_not_grow_memory_or_slow_requests(tmp_path):
    routes, providers = _config(tmp_path)
    env = {"GATEWAY_HEADER_TIMEOUT": "2"}
    with gateway_process(routes, providers, env=env) as (url, process):
        baseline = min(_chat_latency(url) for _ in range(5))
        rss_before = _rss_mib(process.pid)
        # Ten clients each start a 50 MB header and never finish it.
        huge = []
        for _ in range(10):
            sock = _connect(url)
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-huge: ")
            try:
                for _ in range(50 * 16):  # 50 MB in 64 KiB pieces, until the server shuts the door
                    sock.sendall(b"a" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            huge.append(sock)
        for sock in huge:
            assert _read_all(sock).startswith(b"HTTP/1.1 431")
        # Two thousand sockets that connect and say nothing.
        idle = [_connect(url) for _ in range(2000)]
        half = [_connect(url) for _ in range(50)]
        for sock in half:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")  # headers never finished
        with_sockets = max(_chat_latency(url) for _ in range(5))
        rss_during = _rss_mib(process.pid)
        assert rss_during < 150, (rss_before, rss_during)
        assert with_sockets < max(0.25, baseline * 10), (baseline, with_sockets)
        # The header timeout closes them all: silent ones quietly, half-sent ones with 408.
        time.sleep(2.5)
        assert _read_all(idle[0], 3) == b""
        assert _read_all(half[0], 3).startswith(b"HTTP/1.1 408")
        for sock in idle + half + huge:
            sock.close()
        assert _chat_latency(url) < 1


def test_keepalive_idle_and_the_connection_cap(tmp_path):
    routes, providers = _config(tmp_path)
    with gateway_process(routes, providers, "--keepalive-timeout", "1", "--max-connections", "20") as (url, _):
        sock = _connect(url)
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b"}"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _read_all(sock, 5) == b""  # closed by the server after the idle time
        assert 0.8 <= time.monotonic() - started < 3
        sock.close()
        held = [_connect(url) for _ in range(30)]
        time.sleep(0.3)
        closed = 0
        for sock in held:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 10
        for sock in held:
            sock.close()
        assert httpx.get(f"{url}/health").status_code == 200


def _answer(sock: socket.socket) -> bytes:
    """One whole answer to a GET /health on a kept-alive connection."""
    sock.settimeout(5)
    answer = b""
    while not answer.endswith(b"}"):
        answer += sock.recv(65536)
    return answer


def test_each_phase_of_each_request_on_a_connection_is_timed(tmp_path):
    """One timer per connection, moved from phase to phase: a stalled body is cut after the
    body timeout, and the headers of a later request on a kept-alive connection are timed
    as the first request's were, whatever phase came before them."""
    routes, providers = _config(tmp_path)
    env = {"GATEWAY_HEADER_TIMEOUT": "1", "GATEWAY_BODY_TIMEOUT": "1.5", "GATEWAY_KEEPALIVE_TIMEOUT": "30"}
    with gateway_process(routes, providers, env=env) as (url, _):
        # A body that stops halfway: the connection is closed once it has been silent 1.5 s.
        sock = _connect(url)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n{\"model\":")
        started = time.monotonic()
        _read_all(sock, 6)
        assert 1.2 <= time.monotonic() - started < 4
        sock.close()
        # Three whole requests, each after a pause, then the fourth's headers stall: 408.
        sock = _connect(url)
        for _ in range(3):
            time.sleep(0.6)  # under the header timeout each time, over it in total
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        assert _read_all(sock, 6).startswith(b"HTTP/1.1 408")
        assert 0.8 <= time.monotonic() - started < 3
        sock.close()
        assert _chat_latency(url) < 1


def test_the_idle_wait_between_requests_is_a_phase_of_the_same_timer(tmp_path):
    """The keep-alive wait is timed by the connection's one timer: silence after an answer
    closes the connection quietly after the idle time; a request begun within it is served,
    and one whose headers then stall is held to the header timeout, not the idle time."""
    routes, providers = _config(tmp_path)
    env = {"GATEWAY_HEADER_TIMEOUT": "3", "GATEWAY_BODY_TIMEOUT": "5", "GATEWAY_KEEPALIVE_TIMEOUT": "1"}
    with gateway_process(routes, providers, env=env) as (url, _):
        sock = _connect(url)
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.7)  # under the idle time each time, over it in total
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # headers never finished
        started = time.monotonic()
        assert _read_all(sock, 8).startswith(b"HTTP/1.1 408")
        assert 2.5 <= time.monotonic() - started < 5
        sock.close()
        sock = _connect(url)
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _read_all(sock, 5) == b""  # nothing asked within the idle time: closed quietly
        assert 0.8 <= time.monotonic() - started < 2.5
        sock.close()


def test_a_connection_answered_before_its_body_ended_is_timed_as_idle_after_it(tmp_path):
    """A request refused on its declared length is answered at once; once the rest of its
    body has arrived the connection is idle, and the idle time closes it like any other."""
    routes, providers = _config(tmp_path)
    env = {"GATEWAY_KEEPALIVE_TIMEOUT": "1", "GATEWAY_BODY_TIMEOUT": "30"}
    with gateway_process(routes, providers, env=env) as (url, _):
        size = 5 * 1024 * 1024  # over the default 4 MiB body limit
        sock = _connect(url)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(size).encode() + b"\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 413")
        sock.sendall(b" " * size)  # the rest of the request, which nobody reads any more
        started = time.monotonic()
        assert _read_all(sock, 8) == b""  # then silence: closed after the idle time
        assert time.monotonic() - started < 4
        sock.close()


def test_a_websocket_upgrade_is_answered_as_plain_http(tmp_path):
    """No endpoint speaks WebSocket, so the server is started without it: an upgrade request
    gets the endpoint's ordinary answer (never 101), and the websockets library is not loaded."""
    routes, providers = _config(tmp_path)
    with gateway_process(routes, providers) as (url, process):
        sock = _connect(url)
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
                     b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b"}") and (chunk := sock.recv(65536)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        sock.close()
        with open(f"/proc/{process.pid}/maps") as maps:
            assert "websockets" not in maps.read()


def _answers(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a connection's bytes into (head, body) answers by their content-length."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"content-length")))
        answers.append((head, rest[:length]))
        data = rest[length:]
    return answers


def test_pipelined_answers_come_back_whole_in_order_and_a_closing_request_closes(tmp_path):
    routes, providers = _config(tmp_path)
    body = b'{"model": "echo", "messages": [{"role": "user", "content": "REPLACE"}]}'
    with gateway_process(routes, providers) as (url, _):
        sock = _connect(url)
        requests = b""
        for word in (b"first", b"second", b"third"):
            payload = body.replace(b"REPLACE", word)
            requests += (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        last = b'{"model": "echo", "messages": [{"role": "user", "content": "last"}]}'
        requests += (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
                     b"content-length: " + str(len(last)).encode() + b"\r\n\r\n" + last)
        sock.sendall(requests)
        answers = _answers(_read_all(sock))  # returns once the server closed the connection
        sock.close()
    assert [b"Echo: " + word in answer for word, (_, answer) in zip((b"first", b"second", b"third", b"last"), answers)] \
        == [True] * 4
    for head, _ in answers:
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        names = [line.split(b":")[0] for line in lines[1:]]
        assert names == [name.lower() for name in names] and b"x-gateway-route" in names and b"date" in names
        assert b"server" not in names  # the server's software is not announced
    assert b"connection: close" in answers[-1][0] and b"connection: close" not in answers[0][0]
