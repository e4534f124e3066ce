"""The gateway's response head is uvicorn's, byte for byte, under every rule uvicorn applies
(lengths, chunking, HEAD, 204, closing connections, bad names and values), and it falls
back to uvicorn's own loop for the headers it leaves to it."""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.server import response_head
from gateway.server.response_head import GatewayCycle

DEFAULTS = [(b"date", b"Fri, 04 Dec 2026 14:17:18 GMT")]
GATEWAY_HEADERS = [
    (b"content-length", b"12"), (b"content-type", b"application/json"), (b"x-gateway-route", b"chat"),
    (b"x-gateway-target", b"openai/gpt-4o-mini"), (b"x-ratelimit-remaining-requests", b"59"),
    (b"x-request-id", b"0123456789abcdef"),
]


class Transport:
    """Collects what the cycle writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts) -> None:
        self.written.append(b"".join(parts))  # one write, as the event loop's writev makes it

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _cycle(cls: type, method: str = "POST", keep_alive: bool = True, defaults=DEFAULTS):
    transport = Transport()
    cycle = cls(scope={"method": method}, transport=transport, flow=FlowControl(transport), logger=None,
                access_logger=None, access_log=False, default_headers=defaults, message_event=asyncio.Event(),
                expect_100_continue=False, keep_alive=keep_alive, on_response=lambda: None)
    return cycle, transport


def _state(cycle) -> tuple:
    return (cycle.response_started, cycle.response_complete, cycle.chunked_encoding,
            cycle.expected_content_length, cycle.keep_alive)


async def _both(messages: list[dict], **options) -> tuple:
    """What uvicorn's cycle and the gateway's each write and end up in, or the error they raise."""
    results = []
    for cls in (RequestResponseCycle, GatewayCycle):
        cycle, transport = _cycle(cls, **options)
        try:
            for message in messages:
                await cycle.send(message)
        except RuntimeError as exc:
            results.append(("error", str(exc)))
            continue
        results.append((b"".join(transport.written), _state(cycle), transport.closed))
    return tuple(results)


def _start(headers, status: int = 200) -> dict:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(body: bytes, more: bool = False) -> dict:
    return {"type": "http.response.body", "body": body, "more_body": more}


CASES = {
    "a JSON answer": ([_start(GATEWAY_HEADERS), _body(b'{"ok": true}')], {}),
    "names as the app cased them": ([_start([(b"Content-Length", b"2"), (b"X-Gateway-Route", b"r")]), _body(b"{}")], {}),
    "a stream without a length is chunked": (
        [_start([(b"content-type", b"text/event-stream")]), _body(b"data: 1\n\n", True), _body(b"")], {}),
    "a HEAD answer": ([_start([(b"content-type", b"application/json")]), _body(b"")], {"method": "HEAD"}),
    "a 204": ([_start([(b"x-request-id", b"r")], 204), _body(b"")], {}),
    "a connection that will close": ([_start(GATEWAY_HEADERS), _body(b'{"ok": true}')], {"keep_alive": False}),
    "the first of two lengths counts": ([_start([(b"content-length", b"2"), (b"content-length", b"5")]), _body(b"{}")], {}),
    "a header uvicorn handles itself (connection)": (
        [_start([(b"content-length", b"2"), (b"connection", b"close")]), _body(b"{}")], {}),
    "a header uvicorn handles itself (transfer-encoding)": (
        [_start([(b"transfer-encoding", b"chunked")]), _body(b"ab", True), _body(b"")], {}),
    "server headers beside the date": (
        [_start(GATEWAY_HEADERS), _body(b'{"ok": true}')], {"defaults": DEFAULTS + [(b"x-served-by", b"edge")]}),
    "no default headers": ([_start(GATEWAY_HEADERS), _body(b'{"ok": true}')], {"defaults": []}),
    "a bad header name": ([_start([(b"x bad", b"1")])], {}),
    "a value with a line break": ([_start([(b"x-ok", b"1"), (b"x-injected", b"a\r\nset-cookie: x=1")])], {}),
    "a value with a control character": ([_start([(b"x-nul", b"a\x00b")])], {}),
    "a tab inside a value is allowed": ([_start([(b"content-length", b"0"), (b"x-tab", b"a\tb")]), _body(b"")], {}),
    "a body longer than its length": ([_start([(b"content-length", b"1")]), _body(b"too long")], {}),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_the_head_written_is_uvicorns(name):
    messages, options = CASES[name]
    uvicorn_result, gateway_result = await _both(messages, **options)
    assert gateway_result == uvicorn_result


async def test_a_bad_name_is_refused_every_time_not_only_the_first():
    for _ in range(2):
        cycle, transport = _cycle(GatewayCycle)
        with pytest.raises(RuntimeError, match="name"):
            await cycle.send(_start([(b"x(bad)", b"1")]))
        assert transport.written == []
    assert b"x(bad)" not in response_head._names


async def test_a_new_date_list_is_written_and_its_bad_header_left_to_uvicorn():
    first = [(b"date", b"Fri, 04 Dec 2026 14:17:18 GMT")]
    later = [(b"date", b"Fri, 04 Dec 2026 14:17:19 GMT")]
    for defaults in (first, later, first):
        (ours, theirs) = await _both([_start(GATEWAY_HEADERS), _body(b'{"ok": true}')], defaults=defaults)
        assert ours == theirs and defaults[0][1] in ours[0]
    bad = [(b"date", b"x\x01y")]
    assert (await _both([_start(GATEWAY_HEADERS)], defaults=bad)) == (("error", "Invalid HTTP header value."),) * 2


async def test_an_answer_with_a_length_leaves_in_one_write_and_a_streams_head_at_once():
    cycle, transport = _cycle(GatewayCycle)
    await cycle.send(_start(GATEWAY_HEADERS))
    assert transport.written == []  # held for the body
    await cycle.send(_body(b'{"ok": true}'))
    assert len(transport.written) == 1 and transport.written[0].endswith(b'\r\n\r\n{"ok": true}')
    assert cycle.response_complete

    stream, written = _cycle(GatewayCycle)
    await stream.send(_start([(b"content-type", b"text/event-stream")]))
    assert len(written.written) == 1 and written.written[0].endswith(b"\r\n\r\n")  # the client sees the head now
    await stream.send(_body(b"data: 1\n\n", True))
    assert len(written.written) == 2


async def test_a_client_gone_before_the_body_gets_nothing_written():
    cycle, transport = _cycle(GatewayCycle)
    await cycle.send(_start(GATEWAY_HEADERS))
    cycle.disconnected = True
    await cycle.send(_body(b'{"ok": true}'))
    assert transport.written == []
