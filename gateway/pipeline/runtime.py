"""What one gateway process holds while it serves.

The current `Snapshot` is the only reference that changes after start-up: a reload
replaces it whole. A request reads `runtime.snapshot` once, at its start, and keeps
that object to the end, so a swap never changes a request mid-way.

Circuit breakers and latency averages are keyed by target id and live here, beside the
snapshot rather than in it: what was learned about a target outlives a reload.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config.snapshot import Snapshot
from gateway.observe.traffic import Traffic
from gateway.pipeline.deadline import Deadlines
from gateway.pipeline.key_sets import KeySets
from gateway.providers.upstream import Upstream
from gateway.store import Store, open_store
from gateway.store.circuits import CircuitStore, MemoryCircuits, SharedCircuits
from gateway.store.latency import LatencyAverages
from gateway.store.responses import ResponseStore
from gateway.store.semantic import SemanticEntries

if TYPE_CHECKING:
    from gateway.config.reload import Reloader
    from gateway.pipeline.directory import Directory
    from gateway.store.database import Database
    from gateway.store.database.ledger import Ledger


@dataclass(slots=True)
class Runtime:
    snapshot: Snapshot
    routes_path: str
    providers_path: str
    upstream: Upstream = field(default_factory=Upstream)
    circuits: CircuitStore = field(default_factory=MemoryCircuits)
    latency: LatencyAverages = field(default_factory=LatencyAverages)
    traffic: Traffic = field(default_factory=Traffic)  # the last minutes, for the operator's page
    deadlines: Deadlines = field(default_factory=Deadlines)  # route deadlines of the requests in flight
    reloader: Reloader | None = None  # set when the app starts: watches files, SIGHUP, /admin/reload
    # Limits, budgets, cache and usage: in-process until `open_shared_store` swaps in Redis.
    # It lives here, not in the snapshot, so its state survives config reloads.
    store: Store = field(init=False)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # store work that outlives its request
    circuit_poller: asyncio.Task[None] | None = None
    # The semantic cache's entries (docs/caching.md): in memory, fed from Redis when shared.
    semantic: SemanticEntries = field(init=False)
    semantic_poller: asyncio.Task[None] | None = None
    # What must last (gateway.store.database): the request ledger. Opened when the app starts.
    database: Database | None = None  # None with `database: {enabled: false}`
    ledger: Ledger | None = None  # the database's row queue, which each request's end feeds
    responses: ResponseStore = field(init=False)  # what /v1/responses stores: in memory, and the database once open
    # The tenants and keys of the admin API (in the database), merged into `snapshot`;
    # `configured` is the snapshot as the files alone built it.
    directory: Directory | None = None
    configured: Snapshot = field(init=False)
    # The JWT issuers' public keys: fetched off the request path, kept across reloads.
    key_sets: KeySets = field(default_factory=KeySets)

    def __post_init__(self) -> None:
        self.store = open_store(None, self.store_settings)
        self.semantic = SemanticEntries(self.store, self.store_settings)
        self.responses = ResponseStore(lambda: self.snapshot.responses)
        self.configured = self.snapshot
        self.key_sets.configure(self.snapshot.issuers)
        _load_libraries(self.snapshot)

    def install(self, snapshot: Snapshot) -> None:
        """Serve a snapshot built from the files, with the admin API's tenants and keys merged in."""
        self.configured = snapshot
        self.snapshot = self.directory.merge(snapshot) if self.directory is not None else snapshot
        self.key_sets.configure(self.snapshot.issuers)
        _load_libraries(self.snapshot)

    def _directory_changed(self) -> None:
        self.install(self.configured)

    def store_settings(self) -> Any:
        return self.snapshot.store

    async def open_shared_store(self, redis_url: str | None) -> None:
        """With Redis: limits, budgets, cache, usage and circuit breakers are shared by every replica."""
        if not redis_url:
            return
        self.store = open_store(redis_url, self.store_settings)
        await self.store.start()
        circuits = SharedCircuits(self.store, lambda: self.snapshot.targets.values())
        self.circuits = circuits
        self.circuit_poller = asyncio.get_running_loop().create_task(circuits.run())
        self.semantic = SemanticEntries(self.store, self.store_settings)
        self.semantic_poller = asyncio.get_running_loop().create_task(self.semantic.run(self._semantic_routes))

    def _semantic_routes(self) -> list[tuple[str, int]]:
        """The routes whose semantic entries this replica reads from Redis, with their bounds."""
        return [(alias, route.semantic.max_entries) for alias, route in self.snapshot.routes.items()
                if route.semantic is not None]

    async def open_database(self) -> None:
        """Open the database (migrating it) and rebuild budget spend from its ledger."""
        from gateway.store.database import open_database

        settings = self.snapshot.database
        if not settings.enabled:
            return
        from gateway.pipeline.directory import Directory

        self.database = open_database(settings.url, settings)
        self.ledger = self.database.ledger
        self.responses.database = self.database
        self.directory = Directory(self.database, self._directory_changed)
        await self.database.start(on_ready=self._restore_budgets)
        await self.directory.start()

    async def _restore_budgets(self) -> None:
        from gateway.pipeline.admit import open_holds, open_tenant_holds
        from gateway.store.database.spend import restore_budgets

        if self.directory is not None:  # the API's keys and tenants have budgets to restore too
            await self.directory.refresh()
        snapshot = self.snapshot
        await restore_budgets(self.database, self.store, open_holds(snapshot))
        await restore_budgets(self.database, self.store, open_tenant_holds(snapshot), tenants=True)

    async def close_database(self) -> None:
        """Write the ledger rows still queued (a graceful stop loses none), then disconnect."""
        await self.responses.close()
        if self.directory is not None:
            await self.directory.stop()
        if self.database is not None:
            await self.database.close()

    async def close_store(self) -> None:
        """Let pending settles finish, send batched usage, close the connection."""
        if self.circuit_poller is not None:
            self.circuit_poller.cancel()
        if self.semantic_poller is not None:
            self.semantic_poller.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        await self.store.close()


def _load_libraries(snapshot: Snapshot) -> None:
    """Libraries only some configs need load with the first config that needs them, when it
    is installed rather than on the first request that uses them: numpy (about 20 MiB) for a
    semantic cache, jsonschema (about 3 MiB) for `validate_output`."""
    routes = snapshot.routes.values()
    if any(route.semantic is not None for route in routes):
        import gateway.store.vectors  # noqa: F401
    if any(route.validate_output for route in routes):
        import jsonschema.validators  # noqa: F401
