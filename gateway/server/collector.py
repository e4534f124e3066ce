"""The garbage collector, set for a server whose heap is mostly its start-up.

Measured with `perf`, CPython's cyclic collector took a sixth of the gateway's CPU under
load. Two things made it dear:

- Every young collection walks the objects of the requests in flight; at the default
  threshold (a collection every 700 new container objects) a request paid for several
  walks over its neighbours' objects. A higher threshold walks the same live set far less
  often, and the garbage in between is still freed at once by reference counting.
- Every full collection walked everything start-up made: modules, the compiled config,
  the packs' templates, the database schema. None of it is ever garbage, so after
  start-up it is moved out of the collector's sight (`gc.freeze`).

A config reload (or a key made by the admin API) replaces the snapshot. Frozen objects
are still freed when nothing refers to them, but frozen cycles never are, so once the old
snapshot has had time to leave every request, `keep_frozen` thaws, collects and freezes
again: at most once every `RECHECK_SECONDS`, one full collection (about 80 ms with the
shipped config), the same pause CPython's own full collections make.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

# New container objects between young collections (CPython's default: 700); then how many
# young collections between middle ones, and middle ones between full ones (defaults 10, 10).
YOUNG = 20_000
MIDDLE = 20
OLD = 10
RECHECK_SECONDS = 30.0  # how often a replaced snapshot is looked for, and how long it is given to drain


def settle() -> None:
    """Once start-up is done: collect what it left, freeze the rest, space collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)


def refreeze() -> None:
    """After a reload: free what the old config held in cycles, and freeze the new one."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_frozen(current: Callable[[], object], every: float = RECHECK_SECONDS) -> None:
    """Refreeze once the object `current()` returns (the served snapshot) has been replaced
    and the one it replaced has had `every` seconds to finish its requests. Runs until cancelled."""
    frozen = current()
    while True:
        await asyncio.sleep(every)
        if current() is frozen:
            continue
        await asyncio.sleep(every)  # requests that started on the old snapshot end first
        frozen = current()
        refreeze()
