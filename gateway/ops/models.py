"""`gateway models`: what this config can reach, with price and context window.

Declared models first (providers.yaml), then, for each provider that serves any model
name (a preset with no `models:`), the models the price catalogue lists for it: those
are the `provider/model` names a client can send and be charged correctly for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config.addresses import Addresses
from gateway.config.prices import catalogue_models
from gateway.config.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Reachable:
    model: str  # provider/model, as a client names it
    kind: str
    input_per_1m: float | None  # None: unpriced
    output_per_1m: float | None
    context_window: int | None
    source: str  # providers.yaml | catalogue

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "type": self.kind, "input_per_1m": self.input_per_1m,
            "output_per_1m": self.output_per_1m, "context_window": self.context_window, "source": self.source,
        }


def reachable(snapshot: Snapshot) -> list[Reachable]:
    out = [_row(t, "providers.yaml") for t in sorted(snapshot.targets.values(), key=lambda t: t.id)]
    seen = {row.model for row in out}
    addresses = snapshot.addresses
    if isinstance(addresses, Addresses):
        for provider, catalogue in sorted(addresses.open_providers()):
            for name in sorted(catalogue_models(catalogue)):
                target = addresses.target(f"{provider}/{name}")
                if target is not None and target.id not in seen and target.price.known:
                    out.append(_row(target, "catalogue"))
                    seen.add(target.id)
    return out


def _row(target: Any, source: str) -> Reachable:
    price = target.price
    return Reachable(
        target.id, target.kind, price.input_per_1m if price.known else None,
        price.output_per_1m if price.known else None, target.context_window, source,
    )


def render_text(rows: list[Reachable], open_providers: list[str]) -> str:
    lines = [f"{'MODEL':<60} {'IN $/1M':>9} {'OUT $/1M':>9} {'CONTEXT':>9}  SOURCE"]
    for row in rows:
        price_in = f"{row.input_per_1m:.4g}" if row.input_per_1m is not None else "unpriced"
        price_out = f"{row.output_per_1m:.4g}" if row.output_per_1m is not None else "-"
        window = str(row.context_window) if row.context_window else "-"
        lines.append(f"{row.model:<60} {price_in:>9} {price_out:>9} {window:>9}  {row.source}")
    for provider in open_providers:
        lines.append(f"{provider + '/*':<60} {'':>9} {'':>9} {'':>9}  any model name (unlisted ones are unpriced)")
    return "\n".join(lines) + "\n"
