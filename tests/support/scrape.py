"""Reading a gateway's /metrics with prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Series:
    """Every sample of /metrics keyed by (sample name, labels)."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return parse(response.text)


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, metric: str, /, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return series.get((metric, frozenset(labels.items())), 0.0)


def total(series: Series, metric: str, /, **labels: str) -> float:
    """Sum of every sample of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == metric and wanted <= ls)
