"""The shape of providers.yaml and routes.yaml, as pydantic models.

These models are the single source of truth for both files: the loader validates
with them and `schemas/*.schema.json` is generated from them, so an editor, a CI
job and the gateway all agree on what is valid. Unknown keys are refused everywhere:
a typo in a limit must never silently mean "no limit".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Capability = Literal["tools", "vision", "json", "structured_output"]
FallbackClass = Literal[
    "rate_limit", "server_error", "timeout", "connection", "context_length", "content_filter", "invalid_output"
]
Strategy = Literal["fallback", "weighted", "cheapest", "fastest"]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
TargetRef = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*/.+$", description="provider/model")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- providers.yaml


class ModelSpec(Strict):
    """One upstream model a provider serves, with its price and abilities."""

    type: Literal["chat", "embedding"] = "chat"
    input_per_1m: float | None = Field(
        None, ge=0, description="USD per million prompt tokens; absent (with output_per_1m): the price catalogue's"
    )
    output_per_1m: float | None = Field(None, ge=0, description="USD per million completion tokens")
    context_window: int | None = Field(None, gt=0, description="prompt tokens the model accepts")
    supports: list[Capability] | None = Field(
        None,
        description="absent: assumed to support everything; structured_output: the provider's own schema-constrained "
        "output (without it, packs that can fall back on a forced tool do so)",
    )
    tier: str | None = Field(None, description="cost tier of this model (a name from routes.yaml tiers)")


class Timeout(Strict):
    connect: float = Field(5.0, gt=0)
    read: float = Field(120.0, gt=0)


def _timeout_shorthand(value: Any) -> Any:
    """`timeout: 30` sets both connect and read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"connect": value, "read": value}
    return value


TimeoutField = Annotated[
    Timeout, BeforeValidator(_timeout_shorthand, json_schema_input_type=Timeout | float)
]


class Limits(Strict):
    rpm: int | None = Field(None, gt=0, description="requests per minute")
    tpm: int | None = Field(None, gt=0, description="tokens per minute")
    concurrency: int | None = Field(None, gt=0, description="requests in flight at once")


class Circuit(Strict):
    failures: int = Field(5, ge=1, description="consecutive failures that open a target's circuit")
    cooldown: float = Field(30.0, gt=0, description="seconds a circuit stays open before one probe is let through")


class Provider(Strict):
    api: str = Field(description="a built-in pack name or a path to a pack file (set by `preset:` when absent)")
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: TimeoutField = Field(default_factory=Timeout)
    limits: Limits | None = None
    circuit: Circuit | None = Field(None, description="overrides routes.yaml defaults.circuit for this provider's models")
    params: dict[str, Any] = Field(default_factory=dict, description="values the pack's templates read")
    templates: dict[str, str] = Field(default_factory=dict, description="overrides of single pack templates")
    responses: Literal["native", "translate"] | None = Field(
        None,
        description="how /v1/responses reaches this provider: `native` sends the client's Responses body as it is "
        "(the pack needs a `responses` call), `translate` goes through chat completions (an OpenAI-compatible "
        "server without /v1/responses); absent: native when the pack has a `responses` call",
    )
    models: dict[str, ModelSpec] = Field(
        default_factory=dict,
        description="the models this provider serves; absent or empty: any model name, reached as provider/model "
        "(direct addressing) or through a pattern route",
    )
    preset: str | None = Field(None, description="a built-in preset (docs/providers.md) whose fields this entry starts from")
    region: str | None = Field(None, description="AWS region (api: bedrock); absent: AWS_REGION")
    project: str | None = Field(None, description="Google Cloud project (api: vertex); absent: the credentials' own")
    location: str | None = Field(None, description="Google Cloud location (api: vertex), e.g. us-central1")
    credentials: str | None = Field(
        None, description="service-account file (api: vertex); absent: GOOGLE_APPLICATION_CREDENTIALS, else ADC"
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_models(cls, data: Any) -> Any:
        # `echo-1: {}` and `echo-1:` (null) both mean "defaults".
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data = {**data, "models": {k: (v if v is not None else {}) for k, v in data["models"].items()}}
        return data


class ProvidersFile(Strict):
    auto_presets: bool = Field(
        False, description="enable every built-in preset whose key variable (or base-URL variable) is set"
    )
    providers: dict[Name, Provider] = Field(default_factory=dict)


# ------------------------------------------------------------------- routes.yaml


class Retry(Strict):
    attempts: int = Field(2, ge=1, le=10, description="tries per target, the first included")
    backoff: float = Field(0.25, ge=0, description="seconds before the first retry, doubled each time")
    max_backoff: float = Field(4.0, ge=0)


class Defaults(Strict):
    strategy: Strategy = "fallback"
    retry: Retry = Field(default_factory=Retry)
    fallback_on: list[FallbackClass] = Field(
        default_factory=lambda: ["rate_limit", "server_error", "timeout", "connection"]
    )
    timeout: float = Field(60.0, gt=0, description="seconds for the whole request, all attempts together")
    circuit: Circuit = Field(default_factory=Circuit, description="per-target circuit breaker")
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    attempt_timeout: float | None = Field(
        None, gt=0,
        description="seconds one call to one target may take to start answering (its first byte), so a hanging "
        "target leaves time for the next; absent: the route's timeout divided by its number of targets",
    )
    expose_upstream_errors: bool = Field(
        False,
        description="true: a 502's error.attempts carries each provider's own error message; false (default): "
        "only target, status and failure class, the message stays in the log under the request id",
    )
    key_limits: Limits | None = Field(
        None, description="limits of every key (from routes.yaml or the admin API) that sets none of its own"
    )


class RouteTarget(Strict):
    target: TargetRef
    weight: float = Field(1.0, ge=0)
    tier: str | None = None
    timeout: float | None = Field(
        None, gt=0, description="seconds a call to this target may take to start answering; overrides defaults.attempt_timeout"
    )


def _target_shorthand(value: Any) -> Any:
    """`- openai/gpt-4o` is short for `- {target: openai/gpt-4o}`."""
    return {"target": value} if isinstance(value, str) else value


TargetField = Annotated[
    RouteTarget, BeforeValidator(_target_shorthand, json_schema_input_type=RouteTarget | TargetRef)
]


class RouteLimits(Limits):
    max_tokens: int | None = Field(None, gt=0, description="largest max_tokens a request may ask for")


CacheScope = Literal["key", "tenant", "route"]


class SemanticCache(Strict):
    """`cache.semantic`: answer a question asked in other words from the cache (docs/caching.md)."""

    embed: str = Field(description="an embeddings route of this file whose vectors compare the questions")
    threshold: float = Field(0.95, gt=0, le=1, description="the least cosine similarity an entry is served at")
    compare: Literal["last_user_message", "messages"] = Field(
        "last_user_message", description="what is embedded: the last user message, or the whole conversation"
    )
    max_entries: int = Field(10000, ge=1, description="entries each process keeps for this route (least recently "
                             "used go first)")
    max_temperature: float = Field(
        0.3, ge=0, description="requests with a higher temperature are never looked up or stored; a request "
        "without one counts as 1 (OpenAI's and Anthropic's default)",
    )
    timeout: float = Field(0.3, gt=0, le=10, description="seconds the embedding may take; slower is a plain miss")


class Cache(Strict):
    ttl: float = Field(gt=0, description="seconds a cached answer stays valid")
    scope: CacheScope = Field(
        "key",
        description="who shares cached answers: the calling key (default), every key of its tenant, "
        "or every caller of the route (only for answers that are public)",
    )
    semantic: SemanticCache | None = Field(
        None, description="also answer paraphrases of a cached question (chat routes; docs/caching.md)"
    )


class Price(Strict):
    input_per_1m: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_1m: float = Field(0.0, ge=0, description="USD per million completion tokens")


class Route(Strict):
    targets: list[TargetField] | None = None
    equivalent: str | None = Field(None, description="an equivalents class whose members are the targets")
    fallback: Literal["equivalents"] | None = None
    strategy: Strategy | None = None
    retry: Retry | None = None
    fallback_on: list[FallbackClass] | None = None
    timeout: float | None = Field(None, gt=0)
    limits: RouteLimits | None = None
    cache: Cache | None = None
    validate_output: bool = Field(
        False,
        description="check answers to json_schema requests against the schema; a non-conforming answer is an "
        "`invalid_output` failure (falls back when listed in fallback_on; ends a stream with an error event)",
    )
    description: str | None = None
    price: Price | None = Field(
        None, description="the price of this route's targets that have none of their own (e.g. a pattern route to "
        "models the catalogue does not know); without one, a key with a budget is refused unpriced models",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Route:
        if (self.targets is None) == (self.equivalent is None):
            raise ValueError("a route needs exactly one of 'targets' or 'equivalent'")
        if self.targets is not None and not self.targets:
            raise ValueError("'targets' must list at least one target")
        return self


class Budget(Strict):
    usd: float = Field(gt=0)
    per: Literal["day", "month"]


class Key(Strict):
    name: Name
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    key: str | None = Field(None, min_length=8, description="the key itself; use ${ENV}, never a literal")
    routes: list[str] | None = Field(None, description="aliases or globs this key may use; absent: all")
    limits: Limits | None = None
    budget: Budget | None = None
    max_tier: str | None = None
    tenant: Name | None = Field(None, description="the tenant (routes.yaml `tenants:`) whose routes, limits, "
                                "budget and tier cap also bind this key")
    expires_at: datetime | None = Field(None, description="from then on the key is refused like an unknown one "
                                        "(ISO 8601, UTC when no offset is given)")
    direct: bool | list[str] | None = Field(
        None,
        description="models named provider/model without a route: true (any provider), a list of providers or "
        "provider/model globs (`groq`, `openai/gpt-4o*`), or false; absent: allowed when the key lists no routes",
    )
    plan: Name | None = Field(
        None, description="a plan (routes.yaml `plans:`) whose routes and tier cap bind this key; its limits are the "
        "key's own when it sets none, or each end user's with `per_user: true`",
    )
    per_user: bool = Field(
        False, description="true: the plan's limits count per end user the request names (OpenAI `user` field or "
        "x-gateway-user), so one heavy user is throttled alone; a request naming no user counts against the key",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> Key:
        if (self.sha256 is None) == (self.key is None):
            raise ValueError("a key needs exactly one of 'sha256' or 'key'")
        return self


OutagePolicy = Literal["open", "closed"]


class Outage(Strict):
    """What a concern does while Redis cannot answer: let requests through, or refuse them (503)."""

    limits: OutagePolicy = Field("open", description="rpm, tpm and concurrency of keys, routes and providers")
    budgets: OutagePolicy = Field("closed", description="budget reservations of keys that have a budget")


class Store(Strict):
    """Where limits, budgets, cache entries and usage live. Redis is used when REDIS_URL is set."""

    timeout: float = Field(0.25, gt=0, le=10, description="seconds one Redis round trip may take")
    retry_interval: float = Field(
        1.0, gt=0, le=60, description="seconds a failed Redis is left alone before the next request tries it"
    )
    prefix: str = Field("gateway:", min_length=1, description="prefix of every Redis key the gateway writes")
    on_outage: Outage = Field(default_factory=Outage)
    lease: float = Field(
        600.0, gt=0, description="seconds a concurrency slot stays held if its replica dies before releasing it"
    )
    quota_lease: float = Field(
        0.02, ge=0, le=0.25, description="share of a large rpm or tpm bucket, or of a budget, a replica takes from "
        "Redis at a time and spends without asking Redis (docs/limits.md); a bucket whose share is under 8 units, "
        "a request whose budget share would cover under 8 of its reservations, and everything with 0, is checked "
        "in Redis on each request"
    )
    cache_max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="memory bound of the in-process cache")
    cache_max_entry_bytes: int = Field(1024 * 1024, gt=0, description="larger answers are not cached")


class Database(Strict):
    """What must last: the request ledger (docs/database.md). One setting for one process or a fleet."""

    enabled: bool = Field(
        True, description="false: no database and no request ledger; spend then lives only in the store, as it is"
    )
    url: str | None = Field(
        None,
        description="postgresql://user:password@host/db for a fleet, or sqlite:///path; absent or empty: "
        "DATABASE_URL, else a SQLite file under GATEWAY_DATA_DIR (./data)",
    )
    retention_days: int = Field(90, ge=1, description="ledger rows older than this many days are deleted")
    flush_interval: float = Field(
        1.0, gt=0, le=60, description="seconds between ledger writes: the most a hard kill can lose"
    )
    queue_size: int = Field(
        10000, ge=1, description="ledger rows held while the database is slow or down; past it rows are dropped"
    )
    resync_interval: float = Field(
        60.0, gt=0, description="seconds between re-reading budget spend from the ledger, so a Redis that "
        "came back empty while the gateway kept serving gets the window's spend back",
    )


class Metrics(Strict):
    """What /metrics shows. Its labels reach whoever can scrape it, so key names are opt-in."""

    per_key_labels: bool = Field(
        False, description="label token, spend, limit and budget series with the client key's name "
        "(off: those series carry an empty key label)",
    )
    per_user_labels: bool = Field(
        False, description="label limit refusals with the end user's id (unbounded: one series per user ever seen)",
    )


class Tenant(Strict):
    """A group of keys that share what it grants: each key may narrow it, never widen it."""

    routes: list[str] | None = Field(None, description="aliases or globs the tenant's keys may use; absent: all")
    limits: Limits | None = Field(None, description="shared by all the tenant's keys together")
    budget: Budget | None = Field(None, description="shared by all the tenant's keys together")
    max_tier: str | None = None
    plan: Name | None = Field(None, description="the plan of the tenant's end users whose token names none")


class StoredResponses(Strict):
    """routes.yaml `responses:`: how long /v1/responses keeps what it stores (docs/responses.md)."""

    retention_days: float = Field(30, gt=0, description="stored responses older than this are deleted and not found")
    max_in_memory: int = Field(
        10000, ge=0, description="stored responses each process keeps in memory (least recently used go first); "
        "with the database on, older ones are read from it",
    )


class Plan(Strict):
    """A limit class for end users (free, pro, ...); not a cost tier (`tiers:`)."""

    limits: Limits | None = Field(None, description="counted per end user within the tenant (or key)")
    max_tier: str | None = Field(None, description="the dearest cost tier this plan's users may reach")
    routes: list[str] | None = Field(None, description="aliases or globs this plan's users may use; absent: all")
    description: str | None = None


class JwtClaims(Strict):
    """Where an issuer's tokens say who the caller is. A path is a claim name, or names joined
    by dots for nested claims (`realm_access.roles`); a claim whose own name holds dots (a
    namespaced `https://example.com/org`) is found by its whole name first."""

    user: str = Field("sub", description="the end user's id")
    tenant: str | None = Field(None, description="the tenant's name (e.g. org_id); absent: the issuer's default_tenant")
    plan: str | None = Field("tier", description="the plan's name")
    roles: str | None = Field(None, description="a list of roles, mapped to plans by `role_plans`")
    role_plans: dict[str, Name] = Field(
        default_factory=dict, description="role -> plan; the first entry whose role the token holds wins"
    )
    routes: str | None = Field(
        None, description="a list (or space-separated string, like OAuth `scope`) of aliases or globs the token may "
        "use; absent: not read",
    )
    route_prefix: str = Field(
        "", description="only entries of the routes claim that start with this are routes (the prefix removed), "
        "so other OAuth scopes are ignored",
    )


JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                       "HS256", "HS384", "HS512"]
SHARED_SECRET_ALGORITHMS = ("HS256", "HS384", "HS512")


class JwtIssuer(Strict):
    """One identity provider whose bearer tokens the gateway accepts beside its keys."""

    name: Name | None = Field(None, description="how logs, the ledger and `gateway token mint --issuer` name it; "
                              "absent: jwt, jwt-2, ... in order")
    issuer: str = Field(min_length=1, description="the tokens' `iss`, exactly")
    audience: str | list[str] = Field(description="the `aud` a token must carry (one of them, when a list)")
    jwks_url: str | None = Field(None, description="the issuer's public keys (RS256, ES256, EdDSA, ...)")
    discovery_url: str | None = Field(
        None, description="OpenID Connect discovery (…/.well-known/openid-configuration), which names the jwks_uri"
    )
    secret: str | None = Field(
        None, min_length=32, description="a shared HS256 secret; use ${ENV}, never a literal (32 characters or more)"
    )
    algorithms: list[JwtAlgorithm] | None = Field(
        None, description="algorithms accepted; absent: RS256, ES256 and EdDSA for public keys, HS256 for a secret",
    )
    leeway: float = Field(30, ge=0, le=600, description="seconds of clock skew allowed on exp, nbf and iat")
    refresh_interval: float = Field(
        600, ge=10, description="seconds between scheduled fetches of the keys"
    )
    unknown_kid_interval: float = Field(
        60, ge=1, description="seconds between the fetches that a token with an unknown kid may trigger (a key "
        "rotated in is found without a restart; a flood of made-up kids costs one fetch per interval)",
    )
    default_tenant: Name | None = Field(
        None, description="the tenant of tokens whose tenant claim is absent or names no tenant; absent: refused"
    )
    default_plan: Name | None = Field(None, description="the plan of tokens that name none and whose tenant has none")
    claims: JwtClaims = Field(default_factory=JwtClaims)

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtIssuer:
        sources = [name for name in ("jwks_url", "discovery_url", "secret") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError("an issuer needs exactly one of 'jwks_url', 'discovery_url' or 'secret'")
        if self.algorithms is not None:
            shared = [a for a in self.algorithms if a in SHARED_SECRET_ALGORITHMS]
            if self.secret is not None and len(shared) != len(self.algorithms):
                raise ValueError("an issuer with a 'secret' accepts only HS256, HS384 or HS512")
            if self.secret is None and shared:
                raise ValueError("HS* algorithms need a 'secret': public keys never verify a shared-secret token")
        return self


class Auth(Strict):
    """How callers other than the static keys prove who they are."""

    jwt: list[JwtIssuer] = Field(default_factory=list, description="identity providers whose bearer JWTs are accepted")


class RoutesFile(Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    tiers: list[Name] = Field(default_factory=lambda: ["economy", "standard", "premium"])
    equivalents: dict[Name, list[TargetRef]] = Field(default_factory=dict)
    routes: dict[str, Route] = Field(min_length=1)
    keys: list[Key] | None = None
    store: Store = Field(default_factory=Store)
    database: Database = Field(default_factory=Database)
    metrics: Metrics = Field(default_factory=Metrics)
    tenants: dict[Name, Tenant] = Field(
        default_factory=dict, description="tenants whose keys share routes, limits, budget and tier cap"
    )
    responses: StoredResponses = Field(default_factory=StoredResponses)
    auth: Auth = Field(default_factory=Auth)
    plans: dict[Name, Plan] = Field(
        default_factory=dict, description="limit classes for end users (a token's plan claim, or a key's `plan`)"
    )
