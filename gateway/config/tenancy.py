"""How a tenant binds its keys: a key may narrow what its tenant grants, never widen it.

One set of rules for keys of routes.yaml and keys made by the admin API, so a key means
the same wherever it was written:
- routes: a key may use an alias only when its own `routes` (if any) and its tenant's
  (if any) both allow it (`identify.may_use` checks both lists);
- tier: the cheaper of the key's and the tenant's `max_tier` (folded here, once);
- limits and budget: the key's own and the tenant's are separate counters, and a request
  takes from both (`admit`): the tenant's are shared by all its keys together;
- a key with no limits of its own gets `defaults.key_limits`;
- plans (routes.yaml `plans:`) are limit classes for end users: a key naming one is bound by
  its routes and tier cap too, and takes its limits as its own when it sets none, unless it
  counts them per end user (`per_user: true`, counted in `admit`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.config.snapshot import Budget, Key, Limits, Plan, Tenant


def narrower_tier(tiers: tuple[str, ...], own: str | None, granted: str | None) -> str | None:
    """The cheaper of two tier caps (tiers are listed cheapest first); None means no cap."""
    if own is None or own not in tiers:
        return granted if own is None else own
    if granted is None or granted not in tiers:
        return own
    return own if tiers.index(own) <= tiers.index(granted) else granted


def bound_key(
    *,
    name: str,
    digest: str,
    routes: tuple[str, ...] | None,
    limits: Limits,
    budget: Budget | None,
    max_tier: str | None,
    tenant: Tenant | None,
    tiers: tuple[str, ...],
    default_limits: Limits,
    expires_at: float | None = None,
    id: str = "",
    source: str = "config",
    direct: tuple[str, ...] = (),
    plan: Plan | None = None,
    per_user: bool = False,
) -> Key:
    """A compiled key, bound by its tenant (when it has one), its plan and the default key limits."""
    if not (limits.metered or limits.max_tokens is not None):
        limits = plan.limits if plan is not None and not per_user and plan.limits.metered else default_limits
    cap = narrower_tier(tiers, max_tier, tenant.max_tier if tenant is not None else None)
    return Key(
        name=name,
        digest=digest,
        routes=routes,
        limits=limits,
        budget=budget,
        max_tier=narrower_tier(tiers, cap, plan.max_tier) if plan is not None else cap,
        tenant=tenant.name if tenant is not None else None,
        expires_at=expires_at,
        grants=tenant,
        id=id or name,
        source=source,
        direct=direct,
        plan=plan,
        per_user=per_user and plan is not None,
    )


def direct_globs(direct: bool | list[str] | None, routes: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The `provider/model` globs a key may name without a route: a key's `direct` as written
    (true, false, providers or globs); absent, any provider for a key with no `routes` list."""
    if direct is None:
        return ("*",) if routes is None else ()
    if direct is True:
        return ("*",)
    if direct is False:
        return ()
    return tuple(entry if "/" in entry else f"{entry}/*" for entry in direct)


def epoch(moment: datetime | None) -> float | None:
    """Unix seconds of an ISO 8601 time; one without an offset is read as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    """`2027-01-01T00:00:00Z`: how every time of the admin API is written."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
