"""What one gateway process holds while it serves.

The current `Snapshot` is the only reference that changes after start-up: a reload
replaces it whole. A request reads `runtime.snapshot` once, at its start, and keeps
that object to the end, so a swap never changes a request mid-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.snapshot import Snapshot
from gateway.upstream import Upstream


@dataclass(slots=True)
class Runtime:
    snapshot: Snapshot
    routes_path: str
    providers_path: str
    upstream: Upstream = field(default_factory=Upstream)
