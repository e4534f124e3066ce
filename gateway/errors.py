"""One family of errors, turned into OpenAI's error body in exactly one place.

Any step of the request path raises a `GatewayError`; the endpoint wrapper renders it.
Because every OpenAI SDK maps the status and `error.type`/`error.code` to its own
exception classes, getting these right is what makes clients behave correctly.
"""

from __future__ import annotations

from typing import Any

import orjson


class GatewayError(Exception):
    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}
        self.extra = extra or {}
        # What the request's log line gets beside the body: details a client is not shown.
        self.logged: dict[str, Any] = {}

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        error.update(self.extra)
        return {"error": error}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ClientGone(GatewayError):
    """The client disconnected before its body arrived: nobody reads the answer, but the
    request ends as every other does (its log line and metrics say 499), not as a bug."""

    status = 499
    type = "client_closed_request"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class AllTargetsFailed(GatewayError):
    """Every target was tried and failed upstream (502); `attempts` says what happened."""

    status = 502
    type = "upstream_error"
    code = "all_targets_failed"


class NoTargetAvailable(GatewayError):
    """No target could even be tried: all skipped by limits, circuits, tier or capability."""

    status = 503
    type = "service_unavailable"
    code = "no_target_available"


class DeadlineExceeded(GatewayError):
    status = 504
    type = "timeout_error"
    code = "deadline_exceeded"


class InternalError(GatewayError):
    """A bug: reported without details so nothing internal leaks to the client."""

    status = 500
    type = "api_error"
    code = "internal_error"
