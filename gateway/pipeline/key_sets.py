"""The public keys of each JWT issuer (its JWKS), fetched and kept while the process serves.

This is runtime state beside the snapshot, never in it: keys outlive a reload of an
unchanged issuer, and a request only reads what is already here. Fetching happens off the
request path, on a schedule (`refresh_interval`), with one exception: a token whose `kid`
is unknown may trigger one fetch, at most once a minute per issuer (`unknown_kid_interval`), so a key the provider
has just rotated in is picked up without a restart while a flood of made-up kids cannot
turn into a flood of fetches.

The keys are fetched with aiohttp (the gateway's client for every outbound call) and
handed to PyJWT as `PyJWK`s; PyJWT's own JWKS client would block the event loop.
Only asymmetric keys (RSA, EC, OKP) are kept: a symmetric key published in a JWKS must
never verify a token that the issuer did not sign with its private key.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from loguru import logger

from gateway.config.snapshot import Issuer

if TYPE_CHECKING:  # PyJWT (and cryptography under it) loads with the first issuer, not with the gateway
    import jwt

FETCH_TIMEOUT = 5.0
MAX_VERIFIED = 10_000  # verified tokens remembered (the bound of `KeySets.verified`)
ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})


@dataclass(slots=True)
class KeySet:
    """One issuer's keys by kid, and when they were last fetched or tried."""

    issuer: Issuer
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched: float = 0.0  # monotonic time of the last successful fetch (0: never)
    tried: float = -1e9  # monotonic time of the last attempt
    failed: bool = False  # the last attempt failed (the JWKS is unreachable or unreadable)
    jwks_uri: str | None = None  # from discovery, when the issuer gives a discovery_url
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _source(issuer: Issuer) -> tuple[str | None, str | None]:
    return issuer.jwks_url, issuer.discovery_url


class KeySets:
    """The keys of every configured issuer that publishes them, and verified tokens."""

    def __init__(self) -> None:
        self._sets: dict[str, KeySet] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        # token -> (expiry in unix seconds, the caller it proved): a token is verified once,
        # then found here until it expires. Emptied whenever the config or any key changes.
        self.verified: dict[str, tuple[float, Any]] = {}

    # ------------------------------------------------------------------ configuration

    def configure(self, issuers: tuple[Issuer, ...]) -> None:
        """Follow a new snapshot's issuers: an issuer whose key source is unchanged keeps its
        keys; a new one is fetched by the next scheduled pass (or its first token)."""
        if issuers:
            import jwt  # noqa: F401 - loaded now rather than by the first token's request

        sets: dict[str, KeySet] = {}
        for issuer in issuers:
            if issuer.secret is not None:
                continue
            old = self._sets.get(issuer.name)
            if old is not None and _source(old.issuer) == _source(issuer):
                old.issuer = issuer
                sets[issuer.name] = old
            else:
                sets[issuer.name] = KeySet(issuer)
        self._sets = sets
        self.verified.clear()  # tenants, plans or issuers may have changed what a token means
        if self._session is not None and any(s.fetched == 0 for s in sets.values()):
            self._wake()

    def _wake(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def start(self) -> None:
        """Open the client and fetch every issuer's keys in the background (start-up does not
        wait for an identity provider; a token that comes first fetches its issuer's keys)."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT), trust_env=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        if self._sets:
            self._wake()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        """Fetch each issuer's keys when its refresh interval has passed, forever."""
        while True:
            now = time.monotonic()
            wait = 3600.0
            for key_set in list(self._sets.values()):
                interval = key_set.issuer.refresh_interval
                due = key_set.fetched + interval if key_set.fetched else key_set.tried + min(interval, 10.0)
                if due <= now:
                    await self.refresh(key_set)
                    due = time.monotonic() + (interval if not key_set.failed else min(interval, 10.0))
                wait = min(wait, max(due - time.monotonic(), 1.0))
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ the request path

    async def find(self, issuer: Issuer, kid: str) -> jwt.PyJWK | None:
        """The issuer's key named `kid`: from memory, or after one rate-limited fetch.

        Returns None when the issuer's keys are known and none has this kid (a bad token);
        raises `KeysUnreachable` when the keys cannot be had at all right now. A token without
        a kid is checked with the issuer's only key, when it publishes exactly one."""
        key_set = self._sets.get(issuer.name)
        if key_set is None:
            return None
        found = key_set.keys.get(kid)
        if found is None and not kid and len(key_set.keys) == 1:
            found = next(iter(key_set.keys.values()))
        if found is not None:
            return found
        since = time.monotonic() - key_set.tried
        # Never fetched yet: try at most once a second; fetched before: at most once a minute.
        if since >= (1.0 if key_set.fetched == 0 else issuer.unknown_kid_interval):
            await self.refresh(key_set)
        found = key_set.keys.get(kid)
        if found is None and key_set.failed:  # it may be a key rotated in that cannot be fetched
            since = time.monotonic() - key_set.tried
            wait = 1.0 if key_set.fetched == 0 else issuer.unknown_kid_interval - since
            raise KeysUnreachable(issuer.name, max(1, int(wait + 0.999)))
        return found

    async def refresh(self, key_set: KeySet) -> None:
        """Fetch one issuer's keys now (one fetch at a time per issuer); keeps the old keys on failure."""
        if key_set.lock.locked():
            async with key_set.lock:
                return
        async with key_set.lock:
            key_set.tried = time.monotonic()
            try:
                keys = await self._fetch(key_set)
            except Exception as exc:  # unreachable, not JSON, no usable key: the old keys stay
                key_set.failed = True
                logger.bind(event="jwks_unreachable", issuer=key_set.issuer.name, error=type(exc).__name__).warning(
                    "the keys of issuer '{}' could not be fetched ({}); {} cached keys stay in use",
                    key_set.issuer.name, _reason(exc), len(key_set.keys))
                return
            key_set.failed = False
            key_set.fetched = time.monotonic()
            if keys.keys() != key_set.keys.keys():
                logger.bind(event="jwks_changed", issuer=key_set.issuer.name, kids=sorted(keys)).info(
                    "issuer '{}' now has {} keys", key_set.issuer.name, len(keys))
                self.verified.clear()  # a removed key must stop proving the tokens it signed
            key_set.keys = keys

    async def _fetch(self, key_set: KeySet) -> dict[str, jwt.PyJWK]:
        session = self._session
        if session is None:
            raise RuntimeError("the key client is not started")
        issuer = key_set.issuer
        url = issuer.jwks_url
        if url is None:
            if key_set.jwks_uri is None:
                document = await _get_json(session, issuer.discovery_url or "")
                uri = document.get("jwks_uri") if isinstance(document, dict) else None
                if not isinstance(uri, str) or not uri:
                    raise ValueError("the discovery document names no jwks_uri")
                if document.get("issuer") != issuer.issuer:
                    logger.bind(event="jwks_issuer_mismatch", issuer=issuer.name).warning(
                        "the discovery document of issuer '{}' names another issuer", issuer.name)
                key_set.jwks_uri = uri
            url = key_set.jwks_uri
        document = await _get_json(session, url)
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS has no 'keys' list")
        import jwt

        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") not in ASYMMETRIC or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # an algorithm or curve this gateway cannot use: skipped, like the JWKS spec says
            keys[str(entry.get("kid") or "")] = key
        if not keys:
            raise ValueError("the JWKS has no usable signing key")
        return keys


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, headers={"accept": "application/json"}) as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        return await response.json(content_type=None)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class KeysUnreachable(Exception):
    """An issuer's keys cannot be fetched and the token's key is not among those cached."""

    def __init__(self, issuer: str, retry_after: int) -> None:
        super().__init__(issuer)
        self.issuer = issuer
        self.retry_after = retry_after
