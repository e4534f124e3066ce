"""Who is calling: the client key or bearer JWT, and what that caller may use.

Keys are stored as sha256 digests, so routes.yaml in git never holds a secret and the
lookup is by digest: the secret itself is never compared byte by byte. A JWT (three
dot-separated parts, when issuers are configured) is verified by `tokens` and becomes a
caller of the same shape as a key, with its end user and plan; a key costs no more work
than that one count of dots.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from fnmatch import fnmatchcase

from loguru import logger
from starlette.datastructures import Headers

from gateway.config.snapshot import Key, Route, Snapshot
from gateway.errors import Forbidden, Unauthorized
from gateway.pipeline.key_sets import KeySets


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


async def identify(snapshot: Snapshot, headers: Headers, key_sets: KeySets | None = None) -> Key | None:
    """The caller's key (or the caller a JWT proves); None on an open gateway. Raises 401 for
    a missing or unknown key or an invalid token, 503 when a token's issuer keys cannot be had."""
    if snapshot.open:
        return None
    secret = presented_key(headers)
    if secret is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'", code="missing_api_key")
    if snapshot.issuers and key_sets is not None and secret.count(".") == 2:
        # Three dot-separated parts is a JWT; anything else is a key. The token module, and PyJWT
        # with it, is imported here: a gateway with no issuer never loads them.
        from gateway.pipeline.tokens import verify

        return await verify(secret, snapshot, key_sets)
    digest = hash_key(secret)
    key = snapshot.keys.get(digest)
    # The lookup is by digest; the final comparison is constant-time all the same.
    if key is None or not hmac.compare_digest(key.digest, digest):
        retired = snapshot.retired.get(digest)
        if retired is not None:
            _refused(snapshot, retired.id, retired.name, retired.reason)
        raise Unauthorized("invalid API key")
    if key.expires_at is not None and key.expires_at <= time.time():
        _refused(snapshot, key.id, key.name, key.lapses_as)
        raise Unauthorized("invalid API key")  # exactly as for an unknown key: nothing says it existed
    return key


def _refused(snapshot: Snapshot, key_id: str, name: str, reason: str) -> None:
    """The client hears "invalid API key"; the operator learns which key it was, and why."""
    logger.bind(event="key_refused", key=name, key_id=key_id, reason=reason).warning(
        "refused the {} key '{}' ({})", reason, name, key_id)
    if snapshot.key_events is not None:
        snapshot.key_events.refused(key_id, name, reason)


def may_use(key: Key | None, alias: str, direct: bool = False) -> bool:
    """Whether the key's own `routes` and its tenant's both allow the alias. A `direct` alias
    (`provider/model` without a route) is allowed by the key's `direct` globs instead, and
    only when its tenant does not narrow the routes."""
    if key is None:
        return True
    grants = key.grants
    if direct:  # neither the tenant nor the plan may narrow the routes
        tenant_open = (grants is None or grants.routes is None) and (key.plan is None or key.plan.routes is None)
        return tenant_open and any(fnmatchcase(alias, pattern) for pattern in key.direct)
    if key.routes is not None and not any(fnmatchcase(alias, pattern) for pattern in key.routes):
        return False
    plan = key.plan
    if plan is not None and plan.routes is not None and not any(fnmatchcase(alias, p) for p in plan.routes):
        return False
    if grants is None or grants.routes is None:
        return True
    return any(fnmatchcase(alias, pattern) for pattern in grants.routes)


def authorize(key: Key | None, alias: str, route: Route | None = None) -> None:
    if not may_use(key, alias, route is not None and route.direct):
        who = f"key '{key.name}'" if key.user is None else f"user '{key.user}'"  # type: ignore[union-attr]
        if key.plan is not None:  # type: ignore[union-attr]
            who += f" (plan '{key.plan.name}')"  # type: ignore[union-attr]
        raise Forbidden(f"{who} may not use model '{alias}'", param="model")


ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"


def require_admin(headers: Headers, admin_key: str | None) -> None:
    """Admin endpoints need GATEWAY_ADMIN_KEY; without one configured they are closed."""
    if not admin_key:
        raise Forbidden(f"admin endpoints are disabled: set {ADMIN_KEY_ENV} to enable them", code="admin_disabled")
    secret = presented_key(headers)
    if secret is None or not hmac.compare_digest(secret.encode(), admin_key.encode()):
        raise Unauthorized("missing or invalid admin key")
