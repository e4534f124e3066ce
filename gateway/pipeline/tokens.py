"""A bearer JWT from the company's login: verified against its issuer, then read into the
caller it names (tenant, plan, end user, routes).

Verification is PyJWT's, with the algorithms the issuer is configured for and nothing
else: `alg: none`, or an HS256 token "signed" with an issuer's public key, never reaches a
signature check. The caller a token proves is remembered until the token expires, so an
app that sends the same token on every request pays for one signature check, not one each.

What a refusal says is safe to show (a reason such as `token_expired`, never the token),
and the log names at most the token's issuer, subject and `jti`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any

import jwt
import orjson
from loguru import logger

from gateway.config.snapshot import Issuer, Key, Limits, Plan, Snapshot, Tenant
from gateway.config.tenancy import narrower_tier
from gateway.errors import GatewayError, Unauthorized
from gateway.pipeline.key_sets import MAX_VERIFIED, KeySets, KeysUnreachable

# What each of PyJWT's refusals is called in the 401 and the log (any other: invalid_token).
REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid"),
    (jwt.InvalidAudienceError, "invalid_audience"),
    (jwt.InvalidIssuerError, "invalid_issuer"),
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
)

MAX_USER_LENGTH = 200  # with the issuer's name, it fits the database's owner columns
REQUIRED = ("exp", "iss", "aud")


class TokenRefused(Unauthorized):
    """401 `invalid_api_key`, with RFC 6750's challenge: a reason the client may be shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"invalid bearer token: {reason}",
            headers={"www-authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        )
        self.reason = reason


class KeysUnavailable(GatewayError):
    """The issuer's keys cannot be fetched and the token's key is not cached: try again soon."""

    status = 503
    type = "service_unavailable"
    code = "jwks_unavailable"


async def verify(token: str, snapshot: Snapshot, key_sets: KeySets) -> Key:
    """The caller a valid token proves; raises `TokenRefused` (401) or `KeysUnavailable` (503)."""
    remembered = key_sets.verified.get(token)
    if remembered is not None:
        if remembered[0] > time.time():
            return remembered[1]  # type: ignore[no-any-return]
        del key_sets.verified[token]
    try:
        header, unverified = _unverified(token)
    except (ValueError, binascii.Error):
        raise _refused("malformed", None, {}) from None
    issuer = _issuer_of(snapshot.issuers, unverified.get("iss"))
    if issuer is None:
        raise _refused("invalid_issuer", None, unverified)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in issuer.algorithms:
        raise _refused("algorithm_not_allowed", issuer, unverified)
    key: Any = issuer.secret
    if key is None:
        kid = header.get("kid")
        try:
            key = await key_sets.find(issuer, kid if isinstance(kid, str) else "")
        except KeysUnreachable as exc:
            _log(issuer, unverified, "keys_unreachable")
            raise KeysUnavailable(
                f"the keys of issuer '{issuer.name}' cannot be fetched right now; try again shortly",
                headers={"retry-after": str(exc.retry_after)},
            ) from None
        if key is None:
            raise _refused("unknown_key", issuer, unverified)
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=list(issuer.audiences), issuer=issuer.issuer,
            leeway=issuer.leeway, options={"require": list(REQUIRED)},
        )
    except jwt.PyJWTError as exc:
        reason = next((r for kind, r in REFUSALS if isinstance(exc, kind)), "invalid_token")
        raise _refused(reason, issuer, unverified) from None
    caller = caller_of(issuer, claims, snapshot)
    if len(key_sets.verified) >= MAX_VERIFIED:
        key_sets.verified.clear()
    key_sets.verified[token] = (float(claims["exp"]), caller)
    return caller


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, read but not trusted: only to pick the issuer, algorithm and key
    (and to name the token in the log). PyJWT then checks everything once, in `jwt.decode`;
    reading the parts here costs a few microseconds where two more PyJWT parses cost ~100."""
    head, body, _signature = token.split(".")
    header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return header, claims


def _issuer_of(issuers: tuple[Issuer, ...], iss: Any) -> Issuer | None:
    for issuer in issuers:
        if issuer.issuer == iss:
            return issuer
    return None


def caller_of(issuer: Issuer, claims: Mapping[str, Any], snapshot: Snapshot) -> Key:
    """The caller that verified claims name: its end user, tenant, plan and routes.
    Raises `TokenRefused` when they name a tenant or plan this gateway does not have."""
    names = issuer.claims
    user = claim(claims, names.user)
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    if not isinstance(user, str) or not user or len(user) > MAX_USER_LENGTH:
        raise _refused("missing_claim", issuer, claims)
    tenant = _tenant(issuer, claims, snapshot)
    plan = _plan(issuer, claims, snapshot, tenant)
    routes = _routes(issuer, claims)
    cap = tenant.max_tier if tenant is not None else None
    return Key(
        name=f"{issuer.name}/{user}",  # one caller per end user: cache entries and stored responses are its own
        digest="",
        routes=routes,
        limits=Limits(),
        budget=None,
        max_tier=narrower_tier(snapshot.tiers, cap, plan.max_tier) if plan is not None else cap,
        tenant=tenant.name if tenant is not None else None,
        grants=tenant,
        id=issuer.name,  # what usage totals and the ledger's key column count a token's requests under
        source="jwt",
        plan=plan,
        per_user=plan is not None,
        user=user,
    )


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by its whole name (namespaced claims hold dots), else by a dotted path."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _tenant(issuer: Issuer, claims: Mapping[str, Any], snapshot: Snapshot) -> Tenant | None:
    named = claim(claims, issuer.claims.tenant) if issuer.claims.tenant else None
    tenant = snapshot.tenants.get(named) if isinstance(named, str) else None
    if tenant is not None:
        return tenant
    if issuer.default_tenant is not None:
        tenant = snapshot.tenants.get(issuer.default_tenant)
        if tenant is not None:
            return tenant
    if issuer.claims.tenant is not None or issuer.default_tenant is not None:
        raise _refused("unknown_tenant", issuer, claims)
    return None


def _plan(issuer: Issuer, claims: Mapping[str, Any], snapshot: Snapshot, tenant: Tenant | None) -> Plan | None:
    names = issuer.claims
    named = claim(claims, names.plan) if names.plan else None
    if named is None and names.roles:
        roles = claim(claims, names.roles)
        held = set(roles) if isinstance(roles, list) else set(roles.split()) if isinstance(roles, str) else set()
        named = next((plan for role, plan in names.role_plans if role in held), None)
    if named is not None:
        plan = snapshot.plans.get(named) if isinstance(named, str) else None
        if plan is None:
            raise _refused("unknown_plan", issuer, claims)
        return plan
    if tenant is not None and tenant.plan is not None:
        return tenant.plan
    return snapshot.plans.get(issuer.default_plan) if issuer.default_plan else None


def _routes(issuer: Issuer, claims: Mapping[str, Any]) -> tuple[str, ...] | None:
    path = issuer.claims.routes
    if not path:
        return None
    value = claim(claims, path)
    entries = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    prefix = issuer.claims.route_prefix
    return tuple(e[len(prefix):] for e in entries if isinstance(e, str) and e.startswith(prefix) and len(e) > len(prefix))


def _refused(reason: str, issuer: Issuer | None, claims: Mapping[str, Any]) -> TokenRefused:
    _log(issuer, claims, reason)
    return TokenRefused(reason)


def _log(issuer: Issuer | None, claims: Mapping[str, Any], reason: str) -> None:
    """The refusal in the log: the token's issuer, subject and jti, and nothing else of it."""
    def short(name: str) -> str | None:
        value = claims.get(name)
        return str(value)[:128] if isinstance(value, (str, int)) else None

    logger.bind(event="token_refused", issuer=short("iss"), sub=short("sub"), jti=short("jti"), reason=reason,
                issuer_name=issuer.name if issuer is not None else None).warning(
        "refused a bearer token ({}) of issuer {}", reason, issuer.name if issuer is not None else "unknown")
