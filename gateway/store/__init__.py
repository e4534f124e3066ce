"""Where the process's state lives: in the process by default, in Redis for a fleet.

`interface` declares the `Store` protocol and its values; `memory` and `redis` are its
two homes; `open_store` picks one. Circuit breakers (`circuits`) and latency averages
(`latency`) are the other per-process state the request path reads.
"""

from __future__ import annotations

from gateway.store.interface import (
    WINDOW_SECONDS,
    CircuitRecord,
    Draw,
    Hold,
    Level,
    SettingsSource,
    Settlement,
    Slots,
    Store,
    StoreUnavailable,
    Take,
    Usage,
    UsageRow,
    Verdict,
)

__all__ = [
    "CircuitRecord",
    "Draw",
    "Hold",
    "Level",
    "SettingsSource",
    "Settlement",
    "Slots",
    "Store",
    "StoreUnavailable",
    "Take",
    "Usage",
    "UsageRow",
    "Verdict",
    "WINDOW_SECONDS",
    "open_store",
]

def open_store(redis_url: str | None, settings: SettingsSource) -> Store:
    """The process's store: Redis when a URL is given, else in-process."""
    if redis_url:
        from gateway.store._redis import (
            RedisStore,  # imports the Redis client only when used
        )

        return RedisStore(redis_url, settings)
    from gateway.store._memory import MemoryStore

    return MemoryStore(settings)
