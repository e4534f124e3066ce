"""Lines written on the event loop to the process's stderr are gathered into one write."""

from __future__ import annotations

import asyncio
import io

from gateway.observe import log


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_are_written_together_after_a_short_wait():
    stream = CountingStream()
    sink = log.Sink(stream, "json", None, gather=True)
    for n in range(100):
        sink.request("INFO", {"n": n})
    assert stream.writes == 0  # waiting for the others
    await asyncio.sleep(log.GATHER_SECONDS * 3)
    assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert [int(line.split('"n":')[1].rstrip("}")) for line in lines] == list(range(100))


async def test_a_full_batch_is_written_at_once():
    stream = CountingStream()
    sink = log.Sink(stream, "json", None, gather=True)
    for n in range(log.GATHER_LINES + 5):
        sink.request("INFO", {"n": n})
    assert stream.writes == 1 and len(stream.getvalue().splitlines()) == log.GATHER_LINES
    await asyncio.sleep(log.GATHER_SECONDS * 3)
    assert stream.writes == 2 and len(stream.getvalue().splitlines()) == log.GATHER_LINES + 5


def test_without_a_running_loop_each_line_is_written_at_once():
    stream = CountingStream()
    sink = log.Sink(stream, "json", None, gather=True)
    sink.request("INFO", {"n": 1})
    sink.request("INFO", {"n": 2})
    assert stream.writes == 2


def test_the_request_lines_time_is_local_time_to_the_millisecond(monkeypatch):
    """The clock formats a line's time as `datetime.isoformat(timespec="milliseconds")`
    would, reusing its text within one millisecond and never across two."""
    from datetime import datetime

    clock = log._Clock()
    moments = [1_764_777_600.0004, 1_764_777_600.0009, 1_764_777_600.0011, 1_764_777_600.9995, 1_764_777_601.25]
    for moment in moments:
        monkeypatch.setattr(log.time, "time", lambda moment=moment: moment)
        expected = datetime.fromtimestamp(int(moment * 1000) / 1000).astimezone().isoformat(timespec="milliseconds")
        assert clock.now() == expected


async def test_once_the_app_stops_gathered_lines_and_later_ones_are_written_at_once(monkeypatch):
    """A graceful stop ends with a re-raised SIGTERM, which skips exit handlers: nothing may
    be left waiting for the gathering timer when the app has stopped."""
    stream = CountingStream()
    sink = log.Sink(stream, "json", None, gather=True)
    monkeypatch.setattr(log, "_sink", sink)
    sink.request("INFO", {"n": 1})
    sink.request("INFO", {"n": 2})
    assert stream.writes == 0
    log.stop_gathering()
    assert stream.writes == 1 and stream.getvalue().count("\n") == 2
    sink.request("INFO", {"n": 3})
    assert stream.writes == 2  # no longer gathered
