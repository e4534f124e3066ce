"""Random ids: requests, responses and their items, answers a pack shapes, leases.

Each id is 128 bits from the system's random source, but the source is read once per 256
ids rather than once per id: a request's id alone made one system call per request,
which showed in profiles, and a Responses answer names four or five ids more. (`uuid4`
is the same system call plus a UUID object: about 1.6 µs an id.) A module of the bottom
layer, so every layer that makes ids takes them from the same pool.

A stored response's id (`ordered_id`) starts with the time instead: see there.
"""

from __future__ import annotations

import os
import time

_SIZE = 16  # bytes of randomness in one id
_POOL = 256  # ids cut from one read


class _Pool:
    def __init__(self) -> None:
        self.bytes = b""
        self.at = 0

    def take(self) -> str:
        if self.at >= len(self.bytes):
            self.bytes, self.at = os.urandom(_SIZE * _POOL), 0
        start = self.at
        self.at = start + _SIZE
        return self.bytes[start:start + _SIZE].hex()


_pool = _Pool()
# A forked child must not hand out the ids its parent's pool still holds.
os.register_at_fork(after_in_child=lambda: setattr(_pool, "at", len(_pool.bytes)))


def random_hex() -> str:
    """32 random hex characters (the shape of a uuid4's hex)."""
    return _pool.take()


def new_id(prefix: str) -> str:
    """An id such as `resp_…`, `msg_…`, `fc_…`."""
    return f"{prefix}_{_pool.take()}"


def short_id(prefix: str) -> str:
    """`prefix` then 24 random hex characters (96 bits), the length Anthropic's own
    `msg_…` and `toolu_…` ids carry: the prefix is given whole (`toolu_`, `call_`)."""
    return prefix + _pool.take()[:24]


def ordered_id(prefix: str) -> str:
    """An id of the same shape whose first 12 hex characters are the time in milliseconds,
    then 80 random bits. Ids that rise with time are what a database index takes cheaply:
    stored responses are keyed by their id, and random keys made every batch of inserts
    rewrite index pages spread over the whole table."""
    return f"{prefix}_{int(time.time() * 1000):012x}{_pool.take()[:20]}"
