"""Hot reload: notice a config change, build the new snapshot off to the side, swap one reference.

Three triggers lead to the same `Reloader.reload`: a change on disk to routes.yaml,
providers.yaml or a pack file they use (watchfiles), `SIGHUP`, and `POST /admin/reload`.
The new config goes through `build_snapshot`, the very function `gateway validate` runs,
so a config is either complete and valid or refused as a whole; a refused one is logged
with its `file:line:col` issues, counted in the metrics and kept for `GET /admin/config`,
while the running snapshot keeps serving. An accepted one replaces `runtime.snapshot`;
requests already running hold the snapshot they started with until they finish.

Files are compared by content, not by event: editors save by rewriting in place or by
renaming a temporary file over the original, `git pull` renames, and Kubernetes swaps a
`..data` symlink in the mounted directory so that no event ever names routes.yaml itself.
Watching the directories and hashing the files covers all of these, ignores unrelated
files in the same directory, and lets a burst of saves settle into a single reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from loguru import logger

from gateway.config.compile import pack_path
from gateway.config.load import ConfigError, ConfigIssue
from gateway.config.snapshot import Snapshot
from gateway.observe import log, metrics
from gateway.observe.redact import redact

WATCH_ENV = "GATEWAY_WATCH"  # "0" turns the file watcher off (SIGHUP and /admin/reload still work)
QUIET_ENV = "GATEWAY_RELOAD_QUIET_MS"  # how long files must stay unchanged before a reload
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"  # set by `gateway serve --workers N` for its workers
DEFAULT_QUIET = 0.15
MAX_SETTLE = 2.0  # a file rewritten without pause is reloaded at least this often
HISTORY = 20

Fingerprint = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class ReloadAttempt:
    """One reload, accepted or refused, as `GET /admin/config` and the logs report it."""

    at: float
    trigger: str  # file | signal | admin
    result: str  # applied | refused | unchanged
    version: str  # the version serving after the attempt
    previous: str  # the version serving before it
    seconds: float
    issues: tuple[ConfigIssue, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "trigger": self.trigger,
            "result": self.result,
            "version": self.version,
            "previous": self.previous,
            "seconds": round(self.seconds, 4),
            "errors": [issue.as_dict() for issue in self.issues],
        }


class Served(Protocol):
    """What a reload swaps: the process's current snapshot, and the files it was built from."""

    snapshot: Snapshot
    routes_path: str
    providers_path: str

    def install(self, snapshot: Snapshot) -> None:
        """Make `snapshot` the one served (what the process adds to a config stays added)."""


# Builds a snapshot from (routes.yaml, providers.yaml): validate and compile, or raise ConfigError.
Build = Callable[[str, str], Snapshot]


class Reloader:
    """The reload state of one process: its triggers, its lock, and what happened lately."""

    def __init__(self, served: Served, build: Build, *, watch: bool = True, quiet: float = DEFAULT_QUIET):
        self.served = served
        self.build = build
        self.watch_enabled = watch
        self.quiet = quiet
        self.history: deque[ReloadAttempt] = deque(maxlen=HISTORY)
        self.last_refused: ReloadAttempt | None = None
        self._lock = asyncio.Lock()
        self._attempted: Fingerprint = ()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._rewatch = asyncio.Event()
        self._watching: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ the one path

    async def reload(self, trigger: str) -> ReloadAttempt:
        """Build from the files as they are now; swap if valid and different, else keep serving."""
        async with self._lock:
            started = time.perf_counter()
            running = self.served.snapshot
            files = config_files(self.served.routes_path, self.served.providers_path)
            fingerprint_before = await asyncio.to_thread(fingerprint, files)
            try:
                # In a thread: parsing and compiling must not stall requests on the event loop.
                candidate = await asyncio.to_thread(self.build, self.served.routes_path, self.served.providers_path)
            except ConfigError as exc:
                candidate, issues = None, tuple(exc.issues)
            except Exception as exc:  # a bug in a compiler stage must not stop future reloads
                logger.exception("config build failed unexpectedly")
                candidate, issues = None, (ConfigIssue(self.served.routes_path, 1, 1, f"internal error: {type(exc).__name__}"),)
            self._attempted = fingerprint_before
            seconds = time.perf_counter() - started
            if candidate is None:
                attempt = self._refuse(trigger, running, issues, seconds)
            else:
                attempt = self._accept(trigger, running, candidate, seconds)
            self.history.append(attempt)
            metrics.config_reloaded(attempt.result)
            if self._watched_dirs(files) != self._watching:
                self._rewatch.set()
            return attempt

    def _accept(self, trigger: str, running: Snapshot, candidate: Snapshot, seconds: float) -> ReloadAttempt:
        metrics.CONFIG_LAST_RELOAD_OK.set(1)
        if candidate.version == running.version:
            log.event("reload", f"config reload ({trigger}): unchanged, still serving {running.version}",
                      trigger=trigger, result="unchanged", config=running.version)
            return ReloadAttempt(time.time(), trigger, "unchanged", running.version, running.version, seconds)
        self.served.install(candidate)  # the swap: one reference, read once by each request
        metrics.config_served(candidate.version, running.version, candidate.loaded_at)
        log.event(
            "reload",
            f"config reload ({trigger}): now serving {candidate.version} (was {running.version}), "
            f"{len(candidate.routes)} routes, built in {seconds * 1000:.0f} ms",
            trigger=trigger, result="applied", config=candidate.version, previous=running.version,
        )
        return ReloadAttempt(time.time(), trigger, "applied", candidate.version, running.version, seconds)

    def _refuse(self, trigger: str, running: Snapshot, issues: tuple[ConfigIssue, ...], seconds: float) -> ReloadAttempt:
        issues = tuple(_redacted(issue, running) for issue in issues)
        attempt = ReloadAttempt(time.time(), trigger, "refused", running.version, running.version, seconds, issues)
        self.last_refused = attempt
        metrics.CONFIG_LAST_RELOAD_OK.set(0)
        log.event(
            "reload",
            f"config reload ({trigger}) refused, still serving {running.version}: {len(issues)} error(s): "
            + "; ".join(str(issue) for issue in issues),
            "ERROR", trigger=trigger, result="refused", config=running.version, errors=[str(i) for i in issues],
        )
        return attempt

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Begin following the files and SIGHUP; called once from the app's lifespan."""
        metrics.CONFIG_LAST_RELOAD_OK.set(1)
        files = config_files(self.served.routes_path, self.served.providers_path)
        self._attempted = await asyncio.to_thread(fingerprint, files)
        self._install_sighup()
        if self.watch_enabled:
            self._spawn(self._watch_files())
            self._spawn(self._reload_on_change())

    async def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _install_sighup(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread (an app embedded in tests or another server): no signals here.
            logger.debug("SIGHUP reload not available in this thread")

    def _on_sighup(self) -> None:
        self._spawn(self.reload("signal"))

    # ------------------------------------------------------------------ following files

    async def _watch_files(self) -> None:
        """Wake the reload loop on any event in the directories that hold config files."""
        from watchfiles import awatch

        while not self._stopping.is_set():
            self._rewatch.clear()
            files = config_files(self.served.routes_path, self.served.providers_path)
            self._watching = self._watched_dirs(files)
            if not self._watching:
                await asyncio.sleep(1)
                continue
            stop = _AnyEvent(self._stopping, self._rewatch)
            try:
                async for _ in awatch(
                    *sorted(self._watching), watch_filter=_ConfigEvents(files), debounce=400, step=30,
                    stop_event=stop, recursive=False,  # type: ignore[arg-type]
                ):
                    self._changed.set()
            except (OSError, RuntimeError) as exc:
                log.event("reload", f"config watcher stopped ({exc}); retrying", "WARNING")
                await asyncio.sleep(1)
            self._changed.set()  # the watched set changed: look once more, a file may have moved

    async def _reload_on_change(self) -> None:
        while True:
            await self._changed.wait()
            settled = await self._settled()
            self._changed.clear()
            if settled != self._attempted:
                await self.reload("file")

    async def _settled(self) -> Fingerprint:
        """The files' fingerprint once they have stopped changing for `quiet` seconds."""
        files = config_files(self.served.routes_path, self.served.providers_path)
        current = await asyncio.to_thread(fingerprint, files)
        deadline = time.monotonic() + MAX_SETTLE
        while time.monotonic() < deadline:
            await asyncio.sleep(self.quiet)
            latest = await asyncio.to_thread(fingerprint, files)
            if latest == current:
                break
            current = latest
        return current

    def _watched_dirs(self, files: Iterable[str]) -> frozenset[str]:
        return frozenset(d for d in watched_dirs(files) if os.path.isdir(d))


class _ConfigEvents:
    """Which events can change the config: ones naming a config file (as written or as its
    symlink target), and Kubernetes' `..data` / `..<timestamp>` entries. Other files in
    the same directories (the gateway's own log and data, editor swap files, `.git`,
    anything not YAML) never wake the reloader."""

    def __init__(self, files: Iterable[str]):
        self.paths = {os.path.abspath(f) for f in files} | {os.path.realpath(f) for f in files}

    def __call__(self, change: object, path: str) -> bool:
        if path in self.paths:
            return True
        name = os.path.basename(path)
        # Kubernetes swaps a ConfigMap's files in through these entries (no extension, or a timestamp).
        return name.startswith("..") and not name.endswith(_NOT_CONFIG)


# What a `..` entry never is when it is Kubernetes' own: the gateway's logs, data and swap files.
_NOT_CONFIG = (".log", ".db", ".db-journal", ".db-wal", ".sqlite", ".swp", ".tmp", ".json", ".txt")


class _AnyEvent:
    """Stops watchfiles when either event is set; it polls `is_set` from its own thread."""

    def __init__(self, *events: asyncio.Event):
        self._events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)

    def set(self) -> None:  # watchfiles calls this when it is cancelled
        pass


# ---------------------------------------------------------------------- helpers


def config_files(routes_path: str, providers_path: str) -> tuple[str, ...]:
    """Every file the config is made of: both YAML files and the pack files providers.yaml names.

    Read leniently from the providers file as it is on disk, so a pack file that a refused
    config names is watched too and creating it triggers the next attempt.
    """
    files = [routes_path, providers_path]
    try:
        data = yaml.safe_load(Path(providers_path).read_text(encoding="utf-8"))
        providers = data.get("providers") if isinstance(data, dict) else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        providers = None
    base_dir = str(Path(providers_path).parent)
    for spec in (providers or {}).values():
        api = spec.get("api") if isinstance(spec, dict) else None
        path = pack_path(api, base_dir) if isinstance(api, str) else None
        if path is not None and path not in files:
            files.append(path)
    return tuple(files)


def fingerprint(files: Iterable[str]) -> Fingerprint:
    """What the files hold now (a missing file is None): equal fingerprints, nothing to reload."""
    out = []
    for path in files:
        try:
            out.append((path, hashlib.sha256(Path(path).read_bytes()).hexdigest()))
        except OSError:
            out.append((path, None))
    return tuple(out)


def watched_dirs(files: Iterable[str]) -> set[str]:
    """The directories whose events can change a file's content.

    The directory that names the file catches in-place writes, renames over it and the
    Kubernetes `..data` swap (the swap happens in that directory). When the file is a
    symlink to somewhere else, the target's directory is watched as well.
    """
    dirs: set[str] = set()
    for path in files:
        named = os.path.dirname(os.path.abspath(path))
        dirs.add(named)
        real = os.path.dirname(os.path.realpath(path))
        if real != named and not real.startswith(named + os.sep):
            dirs.add(real)
    return dirs


def _redacted(issue: ConfigIssue, running: Snapshot) -> ConfigIssue:
    """Issue texts can quote values from the files; never let a secret through."""
    secrets = [target.api_key for target in running.targets.values()]
    secrets += [value for name, value in os.environ.items() if _looks_secret(name)]
    message = redact(issue.message, secrets)
    return issue if message == issue.message else ConfigIssue(issue.file, issue.line, issue.col, message)


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))


# ---------------------------------------------------------------------- wiring


async def start(served: Served, build: Build) -> Reloader:
    """Start reloading for this process; `stop` the returned reloader at shutdown."""
    quiet_ms = os.environ.get(QUIET_ENV)
    reloader = Reloader(
        served, build,
        watch=os.environ.get(WATCH_ENV, "1") not in ("0", "false", "no", "off"),
        quiet=float(quiet_ms) / 1000 if quiet_ms else DEFAULT_QUIET,
    )
    await reloader.start()
    return reloader


def notify_workers() -> bool:
    """Under `gateway serve --workers N`, ask the supervisor to reload every worker.

    The supervisor turns our SIGHUP into one SIGHUP per worker, so a reload asked of one
    worker (through /admin/reload) reaches all of them. Returns whether it was sent.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or supervisor != str(os.getppid()):
        return False
    os.kill(int(supervisor), signal.SIGHUP)
    return True
