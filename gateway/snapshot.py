"""The compiled config: one immutable value that a request reads from start to end.

A reload builds a new `Snapshot` beside the running one and swaps a single reference,
so a request never sees half of an old config and half of a new one. Everything here
is frozen; mappings are read-only views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.packs.engine import Pack


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    max_tokens: int | None = None

    def __bool__(self) -> bool:
        return self.metered or self.max_tokens is not None

    @property
    def metered(self) -> bool:
        """Whether a request draws from these limits in the store (max_tokens is checked in place)."""
        return not (self.rpm is None and self.tpm is None and self.concurrency is None)


@dataclass(frozen=True, slots=True)
class Price:
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1_000_000


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """When a target's circuit opens (consecutive failures) and how long it stays open."""

    failures: int = 5
    cooldown: float = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    """One model at one provider (`provider/model`), ready to call."""

    id: str
    provider: str
    model: str
    kind: str  # chat | embedding
    pack: Pack
    base_url: str
    api_key: str | None = field(repr=False)
    headers: Mapping[str, str]
    connect_timeout: float
    read_timeout: float
    price: Price
    context_window: int | None
    supports: frozenset[str] | None  # None: assumed to support everything
    tier: str | None
    limits: Limits
    params: Mapping[str, Any]
    circuit: CircuitPolicy = CircuitPolicy()


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    backoff: float
    max_backoff: float


@dataclass(frozen=True, slots=True)
class RouteTarget:
    target: Target
    weight: float
    tier: str | None


@dataclass(frozen=True, slots=True)
class Route:
    alias: str
    targets: tuple[RouteTarget, ...]
    strategy: str
    retry: Retry
    fallback_on: frozenset[str]
    timeout: float
    limits: Limits
    cache_ttl: float | None
    equivalent: str | None
    fallback_equivalents: bool
    kind: str  # chat | embedding: what the route's first target serves
    # `fallback: equivalents`: the last target's class members, tried after `targets`.
    fallback_targets: tuple[RouteTarget, ...] = ()
    validate_output: bool = False  # json_schema answers are checked (gateway.output_check)


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    per: str  # day | month


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    digest: str = field(repr=False)  # sha256 hex of the client key
    routes: tuple[str, ...] | None
    limits: Limits
    budget: Budget | None
    max_tier: str | None


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How the shared store behaves (routes.yaml `store:`); read per call, so a reload applies it."""

    timeout: float = 0.25
    retry_interval: float = 1.0
    prefix: str = "gateway:"
    limits_fail_open: bool = True
    budgets_fail_open: bool = False
    lease: float = 600.0
    cache_max_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    routes: Mapping[str, Route]
    targets: Mapping[str, Target]
    keys: Mapping[str, Key]  # by sha256 digest
    tiers: tuple[str, ...]
    equivalents: Mapping[str, tuple[str, ...]]
    max_body_bytes: int
    sources: tuple[str, ...]
    loaded_at: float
    store: StoreSettings = field(default_factory=StoreSettings)

    @property
    def open(self) -> bool:
        """No keys configured: anyone may call every route."""
        return not self.keys
