"""The tenants and keys made by the admin API, held in memory for the request path.

The database is their home (`store.database.directory`); each replica keeps a copy and
merges it into the snapshot it serves, so finding a key stays one dict lookup by digest
and never a query. Replicas learn of a change by polling one integer
(`directory_revision`, stepped by every change) every `POLL_SECONDS`; when it moves they
read the two tables whole and swap in a new merged snapshot. A change made through one
replica is therefore served by every replica within POLL_SECONDS plus one read, well
inside two seconds, without a reload; the replica that made it refreshes at once.

What routes.yaml says wins: an API tenant or key whose name a later routes.yaml also
uses is left out (and logged), never silently merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from loguru import logger

from gateway.config.snapshot import Budget, Key, Limits, RetiredKey, Snapshot, Tenant
from gateway.config.tenancy import bound_key, direct_globs
from gateway.store.database import directory as tables

POLL_SECONDS = 0.5
REFUSAL_AUDIT_EVERY = 60.0  # one audit row per key and reason per replica this often, however many tries
Row = dict[str, Any]


def limits_of(value: Any) -> Limits:
    return Limits(**{k: value.get(k) for k in ("rpm", "tpm", "concurrency")}) if value else Limits()


def budget_of(value: Any) -> Budget | None:
    return Budget(float(value["usd"]), value["per"]) if value else None


def routes_of(value: Any) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


class Directory:
    """One replica's copy of the API's tenants and keys, and the task that keeps it fresh."""

    def __init__(self, database: Any, on_change: Callable[[], None]) -> None:
        self.database = database
        self.on_change = on_change
        self.revision = -1
        self.tenants: dict[str, Row] = {}  # by id
        self.keys: dict[str, Row] = {}  # by id
        self._refusals: list[Row] = []
        self._refused_at: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # What the last merge compiled, by row id: (what it was compiled from, the result).
        self._tenant_cache: dict[str, tuple[int, Tenant]] = {}
        self._key_cache: dict[str, tuple[tuple[Any, ...], Key]] = {}
        self._warned: set[tuple[str, str]] = set()
        # The last merge, so the next one can replace only what changed: the config it was
        # merged onto, its result, the key rows changed since (None: merge everything again),
        # and the digests each key row placed.
        self._base: Snapshot | None = None
        self._merged: Snapshot | None = None
        self._changed: set[str] | None = None
        self._placed: dict[str, tuple[str, ...]] = {}
        self._by_id: dict[str, Tenant] = {}
        self._configured: set[str] = set()

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # a database still down: the poller keeps trying
            await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._write_refusals()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.refresh()
                await self._write_refusals()
            except Exception as exc:  # noqa: BLE001 - the database's own outage logging says why
                logger.bind(event="directory_error").debug("tenants and keys not refreshed: {}", exc)

    async def refresh(self) -> bool:
        """Read what changed since the revision held, if the counter moved; True when something did."""
        if not self.database.migrated:
            return False
        engine = self.database.engine
        if await tables.revision(engine) == self.revision:
            return False
        async with self._lock:
            revision, tenant_rows, key_rows, tenant_ids = await tables.load(engine, self.revision)
            if revision == self.revision:
                return False
            gone = set(self.tenants) - tenant_ids
            for row in tenant_rows:
                self.tenants[row["id"]] = row
            for tenant_id in gone:
                del self.tenants[tenant_id]
            for row in key_rows:
                self.keys[row["id"]] = row
            if tenant_rows or gone or self._changed is None:
                self._changed = None  # a tenant changed: its keys with it, so merge everything
            else:
                self._changed.update(row["id"] for row in key_rows)
            self.revision = revision
        self.on_change()
        logger.bind(event="directory_refreshed", revision=revision, tenants=len(self.tenants),
                    keys=len(self.keys)).debug("tenants and keys at revision {}", revision)
        return True

    # ------------------------------------------------------------------ the merged snapshot

    def merge(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot from the files with the API's tenants and keys added to it.

        Runs on every change. When only keys changed since the last merge onto the same
        config, only their entries are replaced (a copy of the last tables plus the change);
        otherwise everything is merged again, reusing every key whose row, tenant and
        config are as they were (`_key`)."""
        changed = self._changed
        self._changed = set()
        if changed is not None and self._merged is not None and self._base is snapshot:
            keys, retired = dict(self._merged.keys), dict(self._merged.retired)
            by_id = self._by_id
            rows = [self.keys[key_id] for key_id in changed if key_id in self.keys]
            for row in rows:
                for digest in self._placed.pop(row["id"], ()):
                    keys.pop(digest, None)
                    retired.pop(digest, None)
            tenants = self._merged.tenants
        else:
            tenants_out = dict(snapshot.tenants)
            by_id = {t.id: t for t in snapshot.tenants.values()}
            for row in self.tenants.values():
                if row["name"] in snapshot.tenants:
                    self._left_out("tenant", row["name"])
                    continue
                tenant = self._tenant(row)
                tenants_out[tenant.name] = by_id[tenant.id] = tenant
            tenants = MappingProxyType(tenants_out)
            keys, retired = dict(snapshot.keys), {}
            self._placed = {}
            self._configured = {key.name for key in snapshot.keys.values()}
            rows = list(self.keys.values())
        now = time.time()
        for row in rows:
            self._placed[row["id"]] = self._place(row, by_id.get(row["tenant_id"]) if row["tenant_id"] else None,
                                                  snapshot, keys, retired, now)
        merged = dataclasses.replace(snapshot, keys=MappingProxyType(keys), tenants=tenants,
                                     retired=MappingProxyType(retired), key_events=self)
        self._base, self._merged, self._by_id = snapshot, merged, by_id
        return merged

    def _place(self, row: Row, tenant: Tenant | None, snapshot: Snapshot, keys: dict[str, Key],
               retired: dict[str, RetiredKey], now: float) -> tuple[str, ...]:
        """Put one key row's secrets where they belong (served, or retired); returns their digests."""
        previous = row["previous_digest"]
        if row["revoked_at"] is not None or (row["tenant_id"] and tenant is None):
            reason = "revoked" if row["revoked_at"] is not None else "tenant_gone"
            retired[row["digest"]] = RetiredKey(row["id"], row["name"], reason)
            if previous:
                retired[previous] = RetiredKey(row["id"], row["name"], reason)
            return (row["digest"], previous) if previous else (row["digest"],)
        if row["name"] in self._configured:
            self._left_out("key", row["name"])
            return ()
        key = self._key(row, tenant, snapshot)
        keys[key.digest] = key
        if not previous:
            return (key.digest,)
        until = (row["previous_until"] or 0) / 1000
        if until > now:
            keys[previous] = dataclasses.replace(key, digest=previous, lapses_as="rotated",
                                                 expires_at=min(until, key.expires_at or math.inf))
        else:
            retired[previous] = RetiredKey(row["id"], row["name"], "rotated")
        return (key.digest, previous)

    def _tenant(self, row: Row) -> Tenant:
        cached = self._tenant_cache.get(row["id"])
        if cached is not None and cached[0] == row["revision"]:
            return cached[1]
        tenant = Tenant(row["name"], routes_of(row["routes"]), limits_of(row["limits"]), budget_of(row["budget"]),
                        row["max_tier"], id=row["id"], source="api")
        self._tenant_cache[row["id"]] = (row["revision"], tenant)
        return tenant

    def _key(self, row: Row, tenant: Tenant | None, snapshot: Snapshot) -> Key:
        token = (row["revision"], tenant, snapshot.tiers, snapshot.key_limits)
        cached = self._key_cache.get(row["id"])
        if cached is not None and cached[0] == token:
            return cached[1]
        key = bound_key(
            name=row["name"], digest=row["digest"], routes=routes_of(row["routes"]), limits=limits_of(row["limits"]),
            budget=budget_of(row["budget"]), max_tier=row["max_tier"], tenant=tenant, tiers=snapshot.tiers,
            default_limits=snapshot.key_limits,
            expires_at=row["expires_at"] / 1000 if row["expires_at"] is not None else None,
            id=row["id"], source="api", direct=direct_globs(None, routes_of(row["routes"])),
        )
        self._key_cache[row["id"]] = (token, key)
        return key

    def _left_out(self, what: str, name: str) -> None:
        if (what, name) not in self._warned:
            self._warned.add((what, name))
            logger.warning("{} '{}' of the admin API is left out: routes.yaml defines that name", what, name)

    # ------------------------------------------------------------------ refused keys, for the audit

    def refused(self, key_id: str, name: str, reason: str) -> None:
        """A retired or expired key was presented: queue an audit row (written by the poller)."""
        now = time.monotonic()
        last = self._refused_at.get((key_id, reason))
        if last is not None and now - last < REFUSAL_AUDIT_EVERY:
            return
        self._refused_at[(key_id, reason)] = now
        if len(self._refusals) < 1000:
            self._refusals.append({"action": "key.refused", "target_type": "key", "target_id": key_id,
                                   "target_name": name, "detail": {"reason": reason}, "ts": tables.now_ms()})

    async def _write_refusals(self) -> None:
        if not self._refusals or not self.database.migrated:
            return
        rows, self._refusals = self._refusals, []
        try:
            await tables.record(self.database.engine, rows)
        except Exception:
            self._refusals = rows + self._refusals
            raise
