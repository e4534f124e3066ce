"""routes.yaml `plans:` and `auth.jwt:` compiled: the end users' limit classes, and the
identity providers whose bearer tokens stand beside the static keys.

Both are resolved against the rest of the config once, here: a plan's tier must be a
tier, an issuer's default tenant and plans must exist, so a token is never read against
a name that means nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.config import model
from gateway.config.load import ConfigIssue
from gateway.config.snapshot import Claims, Issuer, Limits, Plan, Tenant

IssueAt = Callable[[tuple[Any, ...], str], ConfigIssue]
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256", "EdDSA")  # what a JWKS issuer accepts when it names none
SECRET_ALGORITHMS = ("HS256",)


def compile_plans(
    specs: Mapping[str, model.Plan], tiers: tuple[str, ...], issue: IssueAt, issues: list[ConfigIssue]
) -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    for name, spec in specs.items():
        if spec.max_tier is not None and spec.max_tier not in tiers:
            issues.append(issue(("plans", name, "max_tier"), f"unknown tier '{spec.max_tier}'"))
        limits = spec.limits
        plans[name] = Plan(
            name=name,
            limits=Limits(limits.rpm, limits.tpm, limits.concurrency) if limits is not None else Limits(),
            max_tier=spec.max_tier,
            routes=tuple(spec.routes) if spec.routes is not None else None,
        )
    return plans


def compile_issuers(
    specs: list[model.JwtIssuer],
    plans: Mapping[str, Plan],
    tenants: Mapping[str, Tenant],
    issue: IssueAt,
    issues: list[ConfigIssue],
) -> tuple[Issuer, ...]:
    out: list[Issuer] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        where = ("auth", "jwt", i)
        name = spec.name or ("jwt" if i == 0 else f"jwt-{i + 1}")
        if name in names:
            issues.append(issue(where + ("name",), f"duplicate issuer name '{name}'"))
        names.add(name)
        if spec.default_tenant is not None and spec.default_tenant not in tenants:
            issues.append(issue(where + ("default_tenant",), f"unknown tenant '{spec.default_tenant}'"))
        if spec.default_plan is not None and spec.default_plan not in plans:
            issues.append(issue(where + ("default_plan",), f"unknown plan '{spec.default_plan}'"))
        for role, plan in spec.claims.role_plans.items():
            if plan not in plans:
                issues.append(issue(where + ("claims", "role_plans", role), f"unknown plan '{plan}'"))
        if spec.claims.role_plans and spec.claims.roles is None:
            issues.append(issue(where + ("claims", "roles"), "role_plans needs 'roles': the claim that lists them"))
        default = SECRET_ALGORITHMS if spec.secret is not None else PUBLIC_KEY_ALGORITHMS
        claims = spec.claims
        out.append(Issuer(
            name=name,
            issuer=spec.issuer,
            audiences=(spec.audience,) if isinstance(spec.audience, str) else tuple(spec.audience),
            algorithms=tuple(spec.algorithms) if spec.algorithms else default,
            jwks_url=spec.jwks_url,
            discovery_url=spec.discovery_url,
            secret=spec.secret,
            leeway=spec.leeway,
            refresh_interval=spec.refresh_interval,
            unknown_kid_interval=spec.unknown_kid_interval,
            default_tenant=spec.default_tenant,
            default_plan=spec.default_plan,
            claims=Claims(
                user=claims.user, tenant=claims.tenant, plan=claims.plan, roles=claims.roles,
                role_plans=tuple(claims.role_plans.items()), routes=claims.routes, route_prefix=claims.route_prefix,
            ),
        ))
    return tuple(out)
