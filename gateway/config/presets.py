"""Built-in provider presets: `groq: {preset: groq}`, and `auto_presets: true`.

Presets are data (presets.yaml beside this module), not code: each names a pack, a base
URL, the vendor's own key variable and, for local servers, a base-URL variable. They are
expanded into plain provider entries before providers.yaml is validated, so a preset
provider is checked, compiled, hashed and diffed exactly like one written by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.config.load import LoadedFile

PRESETS_FILE = Path(__file__).resolve().parent / "presets.yaml"


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    api: str
    key_env: str
    base_url: str | None = None  # None: the pack's own (the clouds build it from region or location)
    base_url_env: str | None = None
    key_optional: bool = False  # a local server that runs without a key
    signs: bool = False  # a cloud that signs its requests: `key_env` only switches it on and is never sent
    responses: str | None = None  # the provider's `responses:`; translate for servers without /v1/responses
    auth: str = ""
    catalogue: str | None = None  # the provider's id in the price catalogue
    example: str = ""


@dataclass(frozen=True, slots=True)
class PresetStatus:
    """What `gateway validate` reports of one preset: enabled or not, and why. Names only, never a value."""

    preset: str
    provider: str | None  # the provider it became; None when not enabled
    how: str  # explicit (`preset:`) | auto (auto_presets) | declared (a provider of that name without `preset:`) | off
    key_env: str
    key_set: bool
    switch_env: str  # what auto_presets looks at: the key variable, or a local server's base-URL variable
    switch_set: bool


@cache
def presets() -> Mapping[str, Preset]:
    data = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    return {name: Preset(name=name, **fields) for name, fields in data.items()}


def _switch(preset: Preset) -> str:
    """A cloud preset is switched on by its key variable; a local server by its base-URL variable."""
    return preset.base_url_env or preset.key_env


def _entry(preset: Preset, given: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The preset's fields, then the ones providers.yaml gives (given fields win)."""
    entry: dict[str, Any] = {"api": preset.api}
    base_url = (env.get(preset.base_url_env) if preset.base_url_env else None) or preset.base_url
    if base_url:
        entry["base_url"] = base_url
    key = env.get(preset.key_env)
    if key and not preset.signs:
        entry["api_key"] = key
    if preset.responses:
        entry["responses"] = preset.responses
    entry.update(given)
    return entry


def expand(loaded: LoadedFile, env: Mapping[str, str]) -> tuple[PresetStatus, ...]:
    """Rewrite providers.yaml's data in place: `preset:` entries filled in, `auto_presets`
    providers added. Returns what became of every preset; problems go to `loaded.issues`."""
    data = loaded.data
    if not isinstance(data, dict):
        return ()
    auto = data.get("auto_presets") is True
    providers = data.get("providers")
    if providers is None and auto:
        providers = data["providers"] = {}
    if not isinstance(providers, dict):
        return ()
    known = presets()
    used: dict[str, str] = {}  # preset -> provider
    for name, given in list(providers.items()):
        if not isinstance(given, dict) or "preset" not in given:
            continue
        preset = known.get(str(given["preset"]))
        if preset is None:
            loaded.issues.append(loaded.issue(
                ("providers", name, "preset"), f"unknown preset '{given['preset']}' (presets: {', '.join(sorted(known))})"
            ))
            continue
        if "api_key" not in given and not preset.key_optional and not preset.signs and not env.get(preset.key_env):
            loaded.issues.append(loaded.issue(
                ("providers", name, "preset"),
                f"provider '{name}' (preset {preset.name}) needs its key: {preset.key_env} is not set",
            ))
        rest = {k: v for k, v in given.items() if k != "preset"}
        providers[name] = {"preset": preset.name, **_entry(preset, rest, env)}
        used.setdefault(preset.name, name)
    statuses: list[PresetStatus] = []
    for preset in known.values():
        provider = used.get(preset.name)
        how = "explicit" if provider else "off"
        switched = bool(env.get(_switch(preset)))
        if provider is None and preset.name in providers:
            provider, how = preset.name, "declared"
        elif provider is None and auto and switched:
            providers[preset.name] = {"preset": preset.name, **_entry(preset, {}, env)}
            # Errors about an added provider point at the line that added it.
            loaded.positions[("providers", preset.name)] = loaded.where(("auto_presets",))
            provider, how = preset.name, "auto"
        statuses.append(PresetStatus(
            preset.name, provider, how, preset.key_env, bool(env.get(preset.key_env)), _switch(preset), switched,
        ))
    return tuple(statuses)


# The catalogue's ids of the clouds, whose packs are not presets.
_CLOUD_CATALOGUES = {"bedrock": "aws", "vertex": "google", "vertex-gemini": "google", "vertex-anthropic": "google"}


def catalogue_id(preset: str | None, api: str | None) -> str | None:
    """The price catalogue's id for a provider: its preset's, else the pack's when that is a preset name."""
    for name in (preset, api):
        found = presets().get(name or "")
        if found is not None and found.catalogue:
            return found.catalogue
    return _CLOUD_CATALOGUES.get(api or "")

