"""redis-py, imported without the OpenTelemetry metrics SDK it would load for nothing.

redis-py 8 imports `opentelemetry.sdk.metrics` whenever that package is installed (the
gateway installs the OpenTelemetry SDK for its traces), for metrics of its own that stay
off until an application turns them on, which the gateway never does. That import alone
is about 3 MiB of every process that talks to Redis. Hiding the module while redis-py is
first imported makes it take its "SDK not installed" branch; anything imported later
(the gateway's tracing included) finds the SDK as usual.
"""

from __future__ import annotations

import sys

_UNUSED = "opentelemetry.sdk.metrics"

if _UNUSED in sys.modules:  # already loaded by something else: nothing to save
    import redis.asyncio as aioredis
else:
    sys.modules[_UNUSED] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import redis.asyncio as aioredis
    finally:
        del sys.modules[_UNUSED]

from redis.asyncio.retry import Retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

__all__ = ["NoBackoff", "RedisError", "Retry", "aioredis"]
