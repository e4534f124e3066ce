"""The operator's page shows each route's cache hit rate, semantic hits apart, in a real
headless Chromium against a real `gateway serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from gateway.pipeline.identify import hash_key
from tests.e2e.test_ui_page import ADMIN_KEY, WAIT_MS, browser, log_in  # noqa: F401 (browser is a fixture)
from tests.support.configs import openai_provider, write_config
from tests.support.servers import gateway_process, serve_app
from tests.support.vector_upstream import BASE, VectorUpstream, at_similarity

CLIENT_KEY = "ui-cache-client-key-0001"


@pytest.fixture
def served(tmp_path: Path, upstream) -> Iterator[str]:
    base, _ = upstream
    vectors = VectorUpstream({"reset my password": BASE, "password reset?": at_similarity(0.98)})
    with serve_app(vectors.app()) as vector_base:
        routes, providers = write_config(
            tmp_path / "config",
            {"routes": {
                "faq": {"targets": ["up/gpt-test"],
                        "cache": {"ttl": 60, "semantic": {"embed": "embed", "threshold": 0.95, "timeout": 5}}},
                "embed": {"targets": ["vec/embed-small"]},
            }, "keys": [{"name": "team", "sha256": hash_key(CLIENT_KEY)}]},
            {"up": openai_provider(base, ["gpt-test"]),
             "vec": openai_provider(vector_base, {"embed-small": {"type": "embedding"}})},
        )
        with gateway_process(routes, providers, env={"GATEWAY_ADMIN_KEY": ADMIN_KEY}) as (url, _):
            yield url


def test_the_traffic_table_shows_each_routes_cache_hit_rate(browser: Browser, served):  # noqa: F811
    url = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
    for text in ("reset my password", "reset my password", "password reset?", "something else entirely"):
        client.chat.completions.create(model="faq", messages=[{"role": "user", "content": text}], temperature=0)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    try:
        log_in(page, url)
        faq = page.locator('#traffic tbody tr[data-route="faq"] td')
        # Four lookups: an exact hit and a semantic hit among them.
        expect(faq.nth(10)).to_have_text("50.0% (semantic 25.0%)", timeout=WAIT_MS)
        expect(faq.nth(10)).to_have_attribute("title", "4 lookups: 1 exact hits, 1 semantic hits")
        # The embedding calls are requests of their own, to a route without a cache.
        expect(page.locator('#traffic tbody tr[data-route="embed"] td').nth(10)).to_have_text("–")
    finally:
        context.close()
