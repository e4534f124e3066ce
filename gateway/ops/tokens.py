"""Tokens for development and for `gateway explain`: mint one signed with a configured HS256
issuer's secret, or read one (or bare claims) into the caller the gateway would see.

Minting is a command-line tool only: the gateway has no endpoint that issues tokens, so a
token exists only where the operator holding the secret made it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import jwt

from gateway.config.snapshot import Issuer, Key, Snapshot
from gateway.pipeline.tokens import TokenRefused, caller_of

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenError(Exception):
    """What the command line got wrong (no such issuer, no secret, bad duration): exit status 1."""


def seconds(text: str) -> float:
    """`90`, `90s`, `30m`, `1h`, `2d` as seconds."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise TokenError(f"'{text}' is not a duration (e.g. 90s, 30m, 1h, 2d)")
    return float(found.group(1)) * _UNITS[found.group(2)]


def signing_issuer(snapshot: Snapshot, name: str | None) -> Issuer:
    """The HS256 issuer to sign with: the one named, or the only one configured."""
    shared = [i for i in snapshot.issuers if i.secret is not None]
    if name is not None:
        found = next((i for i in snapshot.issuers if i.name == name), None)
        if found is None:
            names = ", ".join(i.name for i in snapshot.issuers) or "none configured"
            raise TokenError(f"no issuer named '{name}' (issuers: {names})")
        if found.secret is None:
            raise TokenError(f"issuer '{name}' verifies with public keys; only an issuer with a 'secret' can mint")
        return found
    if not shared:
        raise TokenError("no issuer with a 'secret' (HS256) is configured under auth.jwt: there is nothing to sign with")
    if len(shared) > 1:
        raise TokenError(f"several issuers have a secret ({', '.join(i.name for i in shared)}): pick one with --issuer")
    return shared[0]


def mint(
    issuer: Issuer,
    sub: str,
    ttl: float,
    tenant: str | None = None,
    plan: str | None = None,
    routes: list[str] | None = None,
    now: float | None = None,
) -> str:
    """A token the gateway accepts from `issuer`: each part written where the issuer reads it."""
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"iss": issuer.issuer, "aud": issuer.audiences[0], "iat": int(now),
                              "exp": int(now + ttl), "jti": uuid.uuid4().hex}
    _put(claims, issuer.claims.user, sub)
    for value, path, what in ((tenant, issuer.claims.tenant, "tenant"), (plan, issuer.claims.plan, "plan")):
        if value is None:
            continue
        if path is None:
            raise TokenError(f"issuer '{issuer.name}' reads no {what} claim (set claims.{what})")
        _put(claims, path, value)
    if routes:
        if issuer.claims.routes is None:
            raise TokenError(f"issuer '{issuer.name}' reads no routes claim (set claims.routes)")
        _put(claims, issuer.claims.routes, " ".join(issuer.claims.route_prefix + r for r in routes))
    algorithm = issuer.algorithms[0]
    return jwt.encode(claims, issuer.secret, algorithm=algorithm)


def _put(claims: dict[str, Any], path: str, value: Any) -> None:
    """Write a claim where a dotted path reads it (a namespaced URL claim is one name)."""
    if "/" in path or "." not in path:
        claims[path] = value
        return
    *parents, last = path.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def read_claims(token: str | None, claims_json: str | None) -> dict[str, Any]:
    """A token's claims (its signature is not checked: this is for reading, not for access),
    or claims given as JSON."""
    if token is not None:
        try:
            return dict(jwt.decode(token, options={"verify_signature": False}))
        except jwt.PyJWTError as exc:
            raise TokenError(f"--token is not a JWT ({exc})") from None
    try:
        claims = json.loads(claims_json or "")
    except json.JSONDecodeError as exc:
        raise TokenError(f"--claims is not valid JSON ({exc.msg})") from None
    if not isinstance(claims, dict):
        raise TokenError("--claims must be a JSON object")
    return claims


def caller_from_claims(snapshot: Snapshot, claims: dict[str, Any], issuer_name: str | None = None) -> Key:
    """The caller these claims would be: the issuer their `iss` names (or the one given)."""
    if not snapshot.issuers:
        raise TokenError("no issuer is configured under auth.jwt")
    if issuer_name is not None:
        issuer = next((i for i in snapshot.issuers if i.name == issuer_name), None)
    elif "iss" in claims:
        issuer = next((i for i in snapshot.issuers if i.issuer == claims["iss"]), None)
    else:
        issuer = snapshot.issuers[0]
    if issuer is None:
        raise TokenError(f"no configured issuer matches ({issuer_name or claims.get('iss')})")
    try:
        return caller_of(issuer, claims, snapshot)
    except TokenRefused as exc:
        raise TokenError(f"the gateway would refuse this token: {exc.reason}") from None
