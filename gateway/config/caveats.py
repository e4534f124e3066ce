"""What a valid config does that its reviewer should still look at twice.

These never stop a config from loading: `gateway validate` prints them as warnings
(and lists them in its JSON), so a CI job can show them on the pull request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.config.snapshot import RESPONSES_API, Snapshot

# Hosts known to serve OpenAI's Responses API themselves.
RESPONSES_HOSTS = ("api.openai.com", ".openai.azure.com", ".cognitiveservices.azure.com")


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
    lines.extend(_responses_caveats(snapshot))
    return lines


def _responses_caveats(snapshot: Snapshot) -> list[str]:
    """OpenAI-compatible servers sent /v1/responses bodies as they are: many have no such path."""
    seen: dict[str, str] = {}
    for target in snapshot.targets.values():
        if RESPONSES_API not in target.speaks or target.provider in seen:
            continue
        host = urlsplit(target.base_url).hostname or ""
        if not any(host == h or (h.startswith(".") and host.endswith(h)) for h in RESPONSES_HOSTS):
            seen[target.provider] = host
    return [
        f"provider '{name}': /v1/responses requests go to {host or 'its server'} as they are (its pack has a "
        "responses call); if that server has no /v1/responses (vLLM, Groq, llama-server, ...), set "
        "`responses: translate` on the provider"
        for name, host in sorted(seen.items())
    ]
