"""The compiled config: one immutable value that a request reads from start to end.

A reload builds a new `Snapshot` beside the running one and swaps a single reference,
so a request never sees half of an old config and half of a new one. Everything here
is frozen; mappings are read-only views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The wire name of OpenAI's Responses API (POST /v1/responses): a pack with a `responses`
# call speaks it, and a provider may turn that off (`responses: translate`).
RESPONSES_API = "openai-responses"


class Pack(Protocol):
    """What the config itself needs of a compiled pack. Packs are made one layer up
    (`gateway.providers.packs`), where the full interface the request path calls is
    declared; the snapshot only holds them."""

    name: str
    local: bool
    speaks: frozenset[str]  # the client APIs whose bodies this pack takes as they are
    user_file: str | None  # the operator's pack file it was read from; None for a built-in
    serves_chat: bool
    serves_embeddings: bool

    def prepare(self, target: Target) -> None:
        """Called once per target as the snapshot is built: work that depends on the target alone."""


# Compiles a provider's `api:` (a built-in pack name or a pack file path, relative to the
# folder of providers.yaml) with its `templates:` overrides; `where` locates an override
# in providers.yaml. Raises PackNotFound or PackError (gateway.config.load).
CompilePack = Callable[[str, str, Mapping[str, str] | None, Callable[[str], tuple[str, int, int]] | None], Pack]


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
    known: bool = True  # False: neither providers.yaml nor the catalogue prices this model

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
    pack: Pack  # compiled once, when the snapshot is built
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
    speaks: frozenset[str] = frozenset()  # the client APIs this target takes as they are (its pack's, as the provider allows)


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
class Semantic:
    """A route's `cache.semantic`: paraphrases of a cached question are answered from it."""

    embed: str  # the embeddings route (of the same config) that turns text into vectors
    threshold: float
    compare: str  # last_user_message | messages
    max_entries: int
    max_temperature: float
    timeout: float


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
    cache_scope: str = "key"  # key | tenant | route: who shares this route's cached answers
    validate_output: bool = False  # json_schema answers are checked (pipeline/output_check.py)
    # Seconds each target (by id) gets to start answering, so a hanging one leaves time for the next.
    attempt_timeouts: Mapping[str, float] = field(default_factory=dict)
    expose_upstream_errors: bool = False  # a 502 carries the providers' own messages (else only the log does)
    direct: bool = False  # a `provider/model` named by the client, not a route of routes.yaml
    semantic: Semantic | None = None  # cache.semantic; None: the exact cache alone


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    per: str  # day | month


@dataclass(frozen=True, slots=True)
class Plan:
    """A limit class for end users: its limits count per user, its routes and tier cap bind them."""

    name: str
    limits: Limits
    max_tier: str | None = None
    routes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Claims:
    """Where an issuer's tokens hold each part of the caller's identity (paths split at dots)."""

    user: str = "sub"
    tenant: str | None = None
    plan: str | None = "tier"
    roles: str | None = None
    role_plans: tuple[tuple[str, str], ...] = ()  # (role, plan), the first the token holds wins
    routes: str | None = None
    route_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Issuer:
    """An identity provider whose bearer JWTs are accepted: how to verify them and read them.
    Its public keys are runtime state (`pipeline.key_sets`), not part of the config."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_url: str | None = None
    discovery_url: str | None = None
    secret: str | None = field(default=None, repr=False)
    leeway: float = 30.0
    refresh_interval: float = 600.0
    unknown_kid_interval: float = 60.0
    default_tenant: str | None = None
    default_plan: str | None = None
    claims: Claims = Claims()


@dataclass(frozen=True, slots=True)
class Tenant:
    """What a tenant grants every key of it; limits and budget are shared by those keys together."""

    name: str
    routes: tuple[str, ...] | None
    limits: Limits
    budget: Budget | None
    max_tier: str | None
    id: str = ""  # the admin API's id; a tenant of routes.yaml has its name as id
    source: str = "config"  # config (routes.yaml) | api (the admin API, kept in the database)
    plan: Plan | None = None  # the plan of its end users whose token names none


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    digest: str = field(repr=False)  # sha256 hex of the client key
    routes: tuple[str, ...] | None
    limits: Limits
    budget: Budget | None
    max_tier: str | None  # already the narrower of the key's own and its tenant's
    tenant: str | None = None  # the tenant whose keys share a `cache.scope: tenant` entry
    expires_at: float | None = None  # unix seconds; from then on refused like an unknown key
    grants: Tenant | None = None  # the tenant's own routes, limits and budget, which bind the key too
    id: str = ""  # the admin API's id; a key of routes.yaml has its name as id
    source: str = "config"  # config | api
    lapses_as: str = "expired"  # what the log and audit call it once expires_at passes (rotated: an old secret)
    direct: tuple[str, ...] = ()  # provider/model globs this key may name without a route
    plan: Plan | None = None  # binds the key's routes and tier; its limits count per user with per_user
    per_user: bool = False  # the plan's limits count per end user the request names
    user: str | None = None  # the end user a verified token names (a token's caller is made per request)


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A secret that once opened the gateway (revoked, rotated out): refused as unknown, but
    the log and the audit can say which key it was."""

    id: str
    name: str
    reason: str  # revoked | rotated


class KeyEvents(Protocol):
    """Told when a retired or expired key is presented (the audit trail); must not block."""

    def refused(self, key_id: str, name: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How the shared store behaves (routes.yaml `store:`); read per call, so a reload applies it."""

    timeout: float = 0.25
    retry_interval: float = 1.0
    prefix: str = "gateway:"
    limits_fail_open: bool = True
    budgets_fail_open: bool = False
    lease: float = 600.0
    quota_lease: float = 0.02  # share of a large rpm/tpm bucket or budget each replica leases from Redis; 0: none
    cache_max_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """routes.yaml `database:`; read when the process starts (a reload does not move the database)."""

    enabled: bool = True
    url: str | None = None
    retention_days: int = 90
    flush_interval: float = 1.0
    queue_size: int = 10000
    resync_interval: float = 60.0


class Addresses(Protocol):
    """Routes made on demand (config.addresses): `provider/model` named directly, and pattern
    routes such as `claude-*`. The snapshot holds them; the request path asks."""

    api_keys: tuple[str, ...]  # the keys of providers whose targets are made on demand (for redaction)

    def route(self, alias: str, kind: str) -> Route | None: ...

    def target(self, ref: str) -> Target | None: ...


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """routes.yaml `responses:`: retention and the in-memory bound of stored responses."""

    retention_days: float = 30.0
    max_in_memory: int = 10000


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
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    per_key_metrics: bool = False  # routes.yaml metrics.per_key_labels: key names as metric labels
    tenants: Mapping[str, Tenant] = field(default_factory=dict)  # by name
    key_limits: Limits = Limits()  # routes.yaml defaults.key_limits: for keys that set no limits
    retired: Mapping[str, RetiredKey] = field(default_factory=dict)  # by sha256 digest
    key_events: KeyEvents | None = None
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)
    addresses: Addresses | None = None
    presets: tuple[Any, ...] = ()  # config.presets.PresetStatus of every built-in preset
    plans: Mapping[str, Plan] = field(default_factory=dict)  # by name
    issuers: tuple[Issuer, ...] = ()  # routes.yaml auth.jwt: bearer JWTs accepted beside keys
    per_user_metrics: bool = False  # routes.yaml metrics.per_user_labels

    def find_target(self, ref: str) -> Target | None:
        """A target of the config, or one made on demand for a `provider/model` address."""
        found = self.targets.get(ref)
        if found is None and self.addresses is not None:
            found = self.addresses.target(ref)
        return found

    @property
    def open(self) -> bool:
        """No keys configured: anyone may call every route. A revoked key still counts, so
        revoking the last key closes the gateway rather than opening it."""
        return not self.keys and not self.retired and not self.issuers
