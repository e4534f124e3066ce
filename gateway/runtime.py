"""What one gateway process holds while it serves.

The current `Snapshot` is the only reference that changes after start-up: a reload
replaces it whole. A request reads `runtime.snapshot` once, at its start, and keeps
that object to the end, so a swap never changes a request mid-way.

Circuit breakers and latency averages are keyed by target id and live here, beside the
snapshot rather than in it: what was learned about a target outlives a reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.circuit import CircuitStore, MemoryCircuits
from gateway.latency import LatencyAverages
from gateway.snapshot import Snapshot
from gateway.traffic import Traffic
from gateway.upstream import Upstream

if TYPE_CHECKING:
    from gateway.reload import Reloader


@dataclass(slots=True)
class Runtime:
    snapshot: Snapshot
    routes_path: str
    providers_path: str
    upstream: Upstream = field(default_factory=Upstream)
    circuits: CircuitStore = field(default_factory=MemoryCircuits)
    latency: LatencyAverages = field(default_factory=LatencyAverages)
    traffic: Traffic = field(default_factory=Traffic)  # the last minutes, for the operator's page
    reloader: Reloader | None = None  # set when the app starts: watches files, SIGHUP, /admin/reload
