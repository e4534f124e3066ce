"""Logging: loguru, one line per event, JSON by default, secrets scrubbed at the sink.

`GATEWAY_LOG_LEVEL` (DEBUG, INFO, WARNING, ERROR; default INFO) and `GATEWAY_LOG_FORMAT`
(`json` or `text`; default json) choose what is written to stderr. Every line has an
`event` name (`request`, `start`, `ready`, `reload`, `error`, `server`, ...) so log
pipelines can filter without parsing messages. Uvicorn's own messages go through the
same sink, so a deployment sees one format.

Message bodies are never logged. As a last line of defence every line passes through
`redact` before it is written: provider keys of the config being served are masked by
value, and anything shaped like a key or a bearer token by pattern, so a key that an
upstream echoes back in an error cannot reach the log even if a caller forgot to scrub.
Tracebacks are written without local variables (loguru's `diagnose` is off), since
locals can hold keys and bodies.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TextIO

import orjson
from loguru import logger

from gateway.observe.redact import SHORTEST_SECRET, redact

LEVEL_ENV = "GATEWAY_LOG_LEVEL"
FORMAT_ENV = "GATEWAY_LOG_FORMAT"
FORMATS = ("json", "text")
# Loguru's numbers for the levels the gateway writes, so the request line can be filtered
# by GATEWAY_LOG_LEVEL without asking loguru.
LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

SecretSource = Callable[[], Iterable[str | None]]
GATHER_SECONDS = 0.02  # the longest a line written on the event loop waits for its write
GATHER_LINES = 512  # or until this many are waiting


class Sink:
    """Writes one redacted line per record, as JSON or as readable text.

    Loguru calls it for every event. The per-request line skips loguru and comes through
    `request` (see `request_line`); both paths build the line with the same functions,
    redact it the same way and write it under the same lock.
    """

    def __init__(self, stream: TextIO, fmt: str, secrets: SecretSource | None, level: int = 0,
                 gather: bool | None = None) -> None:
        self.stream = stream
        self.fmt = fmt
        self.secrets = secrets
        self.level = level  # the lowest level number written (GATEWAY_LOG_LEVEL)
        # Re-entrant: a garbage-collected object may log from inside a write (its __del__
        # runs mid-write), and a plain lock would deadlock the thread on itself.
        self._lock = threading.RLock()
        # Written to the process's own stderr, each line was one system call (stderr is
        # line-buffered, or not buffered at all under PYTHONUNBUFFERED), so one per request.
        # Lines written on the event loop are gathered and written together GATHER_SECONDS
        # after the first of them (at once past GATHER_LINES): under load one write carries
        # the lines of every request that ended meanwhile, where one per turn of the loop
        # still cost a system call for every request or two. Any other stream (a test's, a
        # host program's) is written at once, as are lines from other threads.
        self._gather = stream is sys.__stderr__ if gather is None else gather
        self._pending: list[str] = []

    def __call__(self, message: Any) -> None:
        record = message.record
        exception = _traceback(record) if record["exception"] is not None else None
        self.put(self.line(record["time"], record["level"].name, record["message"], record["extra"], exception))

    def request(self, level: str, fields: dict[str, Any]) -> None:
        """The per-request line, written without loguru's record building (see `request_line`)."""
        if LEVELS[level] < self.level:
            return
        try:
            if self.fmt == "json":  # the same line `json` writes, built in one step
                data = {"time": _clock.now(), "level": level, "event": "request", "message": "request", **fields}
                self.put(orjson.dumps(data, default=str).decode())
            else:
                self.put(self.line(datetime.now().astimezone(), level, "request", {"event": "request", **fields}, None))
        except Exception:  # like loguru's catch=True: a failed log write must not fail the request
            pass

    def put(self, line: str) -> None:
        secrets: Iterable[str | None] = ()
        if self.secrets is not None:
            try:
                secrets = self.secrets()
            except Exception:  # a half-started app must not stop logging
                secrets = ()
        text = redact(line, secrets) + "\n"
        with self._lock:
            pending = self._pending
            pending.append(text)
            count = len(pending)
            if 1 < count < GATHER_LINES:
                return  # a write is already due
            loop = _running_loop() if self._gather else None
        if loop is None or count >= GATHER_LINES:
            self.flush()
        else:
            loop.call_later(GATHER_SECONDS, self.flush)

    def stop_gathering(self) -> None:
        """Write what is gathered now, and every later line at once."""
        self._gather = False
        self.flush()

    def flush(self) -> None:
        """Write the lines gathered so far, in one write."""
        with self._lock:
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: nothing to write to
                pass

    def line(self, time: datetime, level: str, message: str, extra: dict[str, Any], exception: str | None) -> str:
        if self.fmt == "json":
            return self.json(time, level, message, extra, exception)
        return self.text(time, level, message, extra, exception)

    @staticmethod
    def json(time: datetime, level: str, message: str, extra: dict[str, Any], exception: str | None) -> str:
        data: dict[str, Any] = {
            "time": time.isoformat(timespec="milliseconds"),
            "level": level,
            "event": extra.get("event", "log"),
            "message": message,
        }
        for name, value in extra.items():
            if name != "event":
                data[name] = value
        if exception is not None:
            data["exception"] = exception
        return orjson.dumps(data, default=str).decode()

    @staticmethod
    def text(time: datetime, level: str, message: str, extra: dict[str, Any], exception: str | None) -> str:
        fields = " ".join(f"{k}={v}" for k, v in extra.items() if k != "event" and v not in ("", None))
        line = f"{time:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" {level:<7} {message}"
        if fields:
            line += "  " + fields
        if exception is not None:
            line += "\n" + exception
        return line


class _Clock:
    """Local time as `datetime.isoformat(timespec="milliseconds")` writes it, for the request
    line: the date, time and offset are formatted once a second rather than once a line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._offset = ""
        self._milli = -1
        self._text = ""

    def now(self) -> str:
        now = time.time()
        milli = int(now * 1000)
        if milli == self._milli:  # several lines end within one millisecond under load
            return self._text
        second = milli // 1000
        if second != self._second:
            moment = datetime.fromtimestamp(second).astimezone()
            self._second, self._prefix = second, moment.strftime("%Y-%m-%dT%H:%M:%S")
            self._offset = moment.isoformat()[19:]  # "+00:00"
        self._milli, self._text = milli, f"{self._prefix}.{milli - second * 1000:03d}{self._offset}"
        return self._text


_clock = _Clock()

# The sink `setup` installed last: the process's logging configuration, like loguru's own.
_sink: Sink | None = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def stop_gathering() -> None:
    """The app is stopping: write what is gathered now, and every later line at once.

    A graceful stop ends with uvicorn raising SIGTERM again in its own process, which exits
    without running `atexit`, often sooner than the gathering wait: the last requests' lines
    (a stream that finished during the drain) would be lost."""
    if _sink is not None:
        _sink.stop_gathering()


@atexit.register
def _flush_at_exit() -> None:
    """Lines still gathered when the process exits normally, whose timed write never ran."""
    if _sink is not None:
        _sink.flush()


def _traceback(record: dict[str, Any]) -> str:
    import traceback

    exc = record["exception"]
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip()


class _Intercept(logging.Handler):
    """Routes the standard library's records (uvicorn's) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).bind(event="server", logger=record.name).log(level, record.getMessage())


def setup(secrets: SecretSource | None = None, stream: TextIO | None = None) -> None:
    """(Re)configure the process's logging from the environment.

    Called by `gateway serve` and by each app at creation (workers are fresh processes).
    `secrets` returns the values to mask by value: the provider keys being served.
    """
    level = os.environ.get(LEVEL_ENV, "INFO").upper()
    fmt = os.environ.get(FORMAT_ENV, "json").lower()
    if fmt not in FORMATS:
        fmt = "json"
    global _sink
    if _sink is not None:
        _sink.flush()
    logger.remove()
    sink = Sink(stream or sys.stderr, fmt, secrets, LEVELS.get(level, 0))
    logger.add(sink, level=level, format="{message}", backtrace=False, diagnose=False, colorize=False, catch=True)
    _sink = sink
    # The root logger's level is the configured one, so a library's record below it is
    # dropped where it is made: at level 0 each DEBUG call built a record and went through
    # loguru only to be filtered there.
    logging.basicConfig(handlers=[_Intercept()], level=LEVELS.get(level, 0), force=True)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn.access stays off: the request line replaces it
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # watchfiles logs every file event it sees at DEBUG, even ones it filters out; with the
    # log written to a file in a watched folder, each line would be an event for the next.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    # Database drivers narrate every statement at DEBUG or INFO (the key-change poll runs
    # each second, and a statement's parameters hold key digests); their warnings still come.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


QUIET_LIBRARIES = ("aiosqlite", "asyncpg", "sqlalchemy", "alembic", "asyncio", "hpack", "botocore", "urllib3")


def event(name: str, message: str, level: str = "INFO", **fields: Any) -> None:
    """One structured event line (start-up, reload, error, ...)."""
    logger.log(level, message.replace("{", "{{").replace("}", "}}"), event=name, **fields)


def request_line(fields: dict[str, Any], level: str = "INFO") -> None:
    """The one line written for each request, when it has ended.

    It goes straight to the configured sink instead of through loguru: the line is the
    same (same fields, level filter, format and redaction), but loguru's record building
    (frame lookup, time zone, formatting, handler dispatch) was about a tenth of the CPU of
    a pass-through request. Events keep going through loguru. Before `setup`, loguru.
    """
    if _sink is None:
        logger.log(level, "request", event="request", **fields)
    else:
        _sink.request(level, fields)


def provider_secrets(current: Callable[[], Any]) -> SecretSource:
    """The provider keys (and JWT issuers' shared secrets) of whichever snapshot `current()` returns, recomputed only on change."""
    last: list[Any] = [None, ()]

    def secrets() -> Iterable[str | None]:
        snapshot = current()
        if snapshot is not last[0]:
            keys = {t.api_key for t in snapshot.targets.values() if t.api_key}
            keys.update(getattr(snapshot.addresses, "api_keys", ()))  # providers serving any model name
            keys.update(i.secret for i in getattr(snapshot, "issuers", ()) if i.secret)  # HS256 signing secrets
            # Longest first, so a key that contains another is masked whole; `redact` skips
            # values too short to mask anyway, so they are left out here once.
            kept = (k for k in keys if len(k) >= SHORTEST_SECRET)
            last[0], last[1] = snapshot, tuple(sorted(kept, key=len, reverse=True))
        return last[1]

    return secrets
