"""Request signing for clouds where an API key is not enough: AWS SigV4 and Google OAuth.

A pack names its auth style; the dispatcher hands each rendered request to the pack's
`Signer` just before sending it (and once more, with `fresh=True`, after a 401), so the
signature covers the exact bytes that go out. Both clouds' own libraries do the delicate
parts: botocore signs and finds credentials along the standard AWS chain (environment,
profile, SSO, container or instance role); google-auth finds Application Default
Credentials or reads a service-account file and mints access tokens. Both are optional
extras (`gateway[aws]`, `gateway[gcp]`) and are imported only by a pack that uses them.

Credential look-ups and token refreshes may do network I/O, so they run in a thread, one
at a time per signer; a valid token or frozen credential set is reused until it nears
expiry.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gateway.config.snapshot import Target
from gateway.providers.packs.wire import UpstreamFailure, UpstreamRequest

GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"


class MissingExtra(RuntimeError):
    """The pack needs an optional extra that is not installed."""


def _no_credentials(target: Target, what: str) -> UpstreamFailure:
    # Our own credentials are missing: the target is unusable (a 502 that may fall back), never the client's fault.
    return UpstreamFailure(
        502, {"message": f"{target.id}: {what}", "type": "upstream_error", "param": None, "code": "provider_credentials"},
        "server_error",
    )


class SigV4Signer:
    """AWS Signature Version 4 with botocore's signer and credential chain."""

    refreshes = True

    def __init__(self, service: str):
        try:
            import botocore.auth  # noqa: F401
            import botocore.session  # noqa: F401
        except ImportError:
            raise MissingExtra("AWS signing (sigv4) needs the aws extra: pip install 'gateway[aws]'") from None
        self.service = service
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    def _resolve(self, target: Target) -> Any:
        """The chain's credentials (botocore refreshes role credentials on its own as they age)."""
        import botocore.session

        session = botocore.session.Session(profile=target.params.get("profile"))
        return session.get_credentials()

    async def _frozen(self, target: Target, fresh: bool) -> Any:
        async with self._lock:
            if self._credentials is None or fresh:
                self._credentials = await asyncio.to_thread(self._resolve, target)
            if self._credentials is None:
                raise _no_credentials(target, "no AWS credentials found (environment, profile or role)")
            # May refresh role credentials near their expiry: network, so off the loop.
            return await asyncio.to_thread(self._credentials.get_frozen_credentials)

    async def sign(self, target: Target, request: UpstreamRequest, fresh: bool = False) -> UpstreamRequest:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = await self._frozen(target, fresh)
        region = region_of(target)
        if not region:
            raise _no_credentials(target, "no AWS region: set `region:` on the provider or AWS_REGION")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _UNSIGNED}
        aws = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
        SigV4Auth(credentials, self.service, region).add_auth(aws)
        signed = {**request.headers, **{k.lower(): v for k, v in aws.headers.items()}}
        return UpstreamRequest(request.method, request.url, signed, request.body, encoded=True)


# Headers added or rewritten on the way (tracing, our own) are left out of the signature.
_UNSIGNED = frozenset({"traceparent", "tracestate", "user-agent", "x-request-id"})


def region_of(target: Target) -> str | None:
    return target.params.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


class GoogleTokenSigner:
    """A Google OAuth access token as `Authorization: Bearer`, from a service-account file
    (the provider's `credentials:`, else GOOGLE_APPLICATION_CREDENTIALS) or ADC.

    google-auth marks a token expired a few minutes before it really is, so it is
    refreshed before expiry; after a 401 it is refreshed once whatever its age.
    """

    refreshes = True

    def __init__(self) -> None:
        try:
            import google.auth  # noqa: F401
            import google.auth.transport.requests  # noqa: F401
        except ImportError:
            raise MissingExtra("Google OAuth needs the gcp extra: pip install 'gateway[gcp]'") from None
        self._credentials: dict[str | None, Any] = {}
        self._lock = asyncio.Lock()

    def _load(self, path: str | None) -> Any:
        import google.auth
        from google.oauth2 import service_account

        if path:
            return service_account.Credentials.from_service_account_file(path, scopes=GOOGLE_SCOPES)
        credentials, _ = google.auth.default(scopes=GOOGLE_SCOPES)
        return credentials

    @staticmethod
    def _refresh(credentials: Any) -> None:
        from google.auth.transport.requests import Request

        credentials.refresh(Request())

    async def token(self, target: Target, fresh: bool = False) -> str:
        path = target.params.get("credentials") or os.environ.get(CREDENTIALS_ENV) or None
        async with self._lock:
            credentials = self._credentials.get(path)
            try:
                if credentials is None:
                    credentials = self._credentials[path] = await asyncio.to_thread(self._load, path)
                if fresh or not credentials.valid:
                    await asyncio.to_thread(self._refresh, credentials)
            except Exception as exc:  # google-auth raises its own errors and OSError for a missing file
                raise _no_credentials(target, f"could not get a Google access token ({type(exc).__name__})") from None
            return str(credentials.token)

    async def sign(self, target: Target, request: UpstreamRequest, fresh: bool = False) -> UpstreamRequest:
        token = await self.token(target, fresh)
        return UpstreamRequest(request.method, request.url, {**request.headers, "authorization": f"Bearer {token}"}, request.body)


def signer_for(style: str, name: str | None) -> SigV4Signer | GoogleTokenSigner | None:
    if style == "sigv4":
        return SigV4Signer(name or "bedrock")
    if style == "google-oauth":
        return GoogleTokenSigner()
    return None
