"""Which targets a request may go to, in the order they will be tried.

`plan_candidates` is the one function that decides; the server and `gateway explain`
both call it, so what an operator is shown is what the server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import ModelNotFound
from gateway.snapshot import Key, Route, Snapshot, Target


@dataclass(frozen=True, slots=True)
class Skipped:
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    route: Route
    candidates: tuple[Target, ...]
    skipped: tuple[Skipped, ...] = ()


def find_route(snapshot: Snapshot, alias: str, kind: str) -> Route:
    route = snapshot.routes.get(alias)
    if route is None or route.kind != kind:
        what = "an embedding" if kind == "embedding" else "a chat"
        raise ModelNotFound(f"the model '{alias}' does not exist or is not {what} model", param="model")
    return route


def plan_candidates(snapshot: Snapshot, route: Route, body: dict[str, Any], key: Key | None) -> Plan:
    """The ordered candidates for this request (the route's targets, in order)."""
    return Plan(route, tuple(rt.target for rt in route.targets))
