"""What a valid config does that its reviewer should still look at twice.

These never stop a config from loading: `gateway validate` prints them as warnings
(and lists them in its JSON), so a CI job can show them on the pull request.
"""

from __future__ import annotations

from gateway.config.snapshot import Snapshot


def caveats(snapshot: Snapshot) -> list[str]:
    """One line per caveat, sorted by route."""
    lines = []
    for alias in sorted(snapshot.routes):
        route = snapshot.routes[alias]
        if route.cache_ttl and route.cache_scope == "route":
            lines.append(
                f"route '{alias}': cache scope 'route' shares cached answers between every caller of the route, "
                "whatever their key; use it only for prompts whose answers are public"
            )
    return lines
