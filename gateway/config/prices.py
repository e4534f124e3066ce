"""Prices and context windows of known models, from a maintained catalogue.

The catalogue is the `genai-prices` package (pinned in pyproject.toml): a maintained
table of vendors' list prices that ships inside the package and is read offline, so a
gateway computes cost for `groq/llama-3.1-70b-versatile` with no price in YAML. A price
in providers.yaml always wins. A model the catalogue does not know is *unpriced*: it is
served, counted and logged as such, never treated as free by a budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Listed:
    """One model as the catalogue lists it."""

    input_per_1m: float
    output_per_1m: float
    context_window: int | None


def _usd(value: Any) -> float | None:
    """A catalogue price as a float: a plain number, or the base of a tiered price."""
    if value is None:
        return None
    base = getattr(value, "base", value)
    try:
        return float(base)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=4096)
def listed(catalogue_provider: str | None, model: str) -> Listed | None:
    """The catalogue's price for `model` at `catalogue_provider`, or None when it has none."""
    if not catalogue_provider:
        return None
    try:
        from genai_prices import data_snapshot
    except ImportError:  # the catalogue is a dependency; without it every model is unpriced
        return None
    provider = next((p for p in data_snapshot.get_snapshot().providers if p.id == catalogue_provider), None)
    if provider is None:
        return None
    info = provider.find_model(model)
    if info is None:
        return None
    prices = info.get_prices(datetime.now(UTC))
    input_price, output_price = _usd(prices.input_mtok), _usd(prices.output_mtok)
    if input_price is None and output_price is None:
        return None  # priced by characters, images or audio: not a token price we can charge
    return Listed(input_price or 0.0, output_price or 0.0, info.context_window)


def catalogue_models(catalogue_provider: str | None) -> list[str]:
    """Every model id the catalogue lists for a provider (for `gateway models`)."""
    if not catalogue_provider:
        return []
    from genai_prices import data_snapshot

    provider = next((p for p in data_snapshot.get_snapshot().providers if p.id == catalogue_provider), None)
    return [m.id for m in provider.models] if provider is not None else []
