"""The operator's page lists tenants and keys with their spend, makes a tenant (showing
its first key's secret once) and a key, and revokes a key, which then gets 401. In a
real headless Chromium against a real `gateway serve`."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from gateway.pipeline.identify import hash_key
from tests.e2e.test_ui_page import ADMIN_KEY, WAIT_MS, browser, log_in  # noqa: F401 - the shared browser fixture
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import gateway_process

YAML_KEY = "ui-yaml-key-for-tenants-0001"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def served(tmp_path: Path):
    routes, providers = write_config(tmp_path / "config", {
        "routes": {"echo": {"targets": ["echo/echo-1"]}},
        "tenants": {"acme": {"budget": {"usd": 5, "per": "month"}}},
        "keys": [{"name": "acme-yaml", "sha256": hash_key(YAML_KEY), "tenant": "acme"}],
    }, {"echo": ECHO_PROVIDER})
    env = {"GATEWAY_ADMIN_KEY": ADMIN_KEY, "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"}
    with gateway_process(routes, providers, "--no-watch", env=env) as (url, _):
        yield url


def test_the_page_makes_lists_and_revokes_tenants_and_keys(browser: Browser, served):  # noqa: F811
    url = served
    context = browser.new_context(viewport={"width": 1360, "height": 1200})
    page = context.new_page()
    try:
        log_in(page, url)
        tenants = page.locator("#tenants tbody")
        expect(tenants.locator('tr[data-tenant="acme"]')).to_contain_text("routes.yaml", timeout=WAIT_MS)
        expect(page.locator('#keys tbody tr[data-key="acme-yaml"]')).to_contain_text("(in routes.yaml)")

        page.fill("#tenant-name", "globex")
        page.fill("#tenant-budget", "12")
        page.click("#tenant-form button[type=submit]")
        expect(page.locator("#secret-box")).to_be_visible(timeout=WAIT_MS)
        first_secret = page.locator("#secret-value").inner_text()
        assert first_secret.startswith("gwk-")
        expect(tenants.locator('tr[data-tenant="globex"]')).to_contain_text("admin API", timeout=WAIT_MS)
        answer = openai.OpenAI(base_url=f"{url}/v1", api_key=first_secret, max_retries=0).chat.completions.create(
            model="echo", messages=HELLO)
        assert answer.choices[0].message.content

        page.click("#secret-dismiss")
        expect(page.locator("#secret-box")).to_be_hidden()
        page.select_option("#key-tenant", label="globex")
        page.fill("#key-name", "globex-batch")
        page.click("#key-form button[type=submit]")
        expect(page.locator("#secret-box")).to_be_visible(timeout=WAIT_MS)
        batch_secret = page.locator("#secret-value").inner_text()
        row = page.locator('#keys tbody tr[data-key="globex-batch"]')
        expect(row).to_contain_text("globex", timeout=WAIT_MS)
        expect(row).to_contain_text(batch_secret[:8] + "…" + batch_secret[-4:])

        page.fill("#key-name", "globex-batch")  # a name taken: the gateway's 409 in the form
        page.click("#key-form button[type=submit]")
        expect(page.locator("#key-error")).to_contain_text("already exists", timeout=WAIT_MS)

        revoke = row.locator("button")
        revoke.click()
        expect(revoke).to_have_text("Confirm revoke")
        page.evaluate("spendAt = 0; refresh()")  # the lists are drawn again (as every few seconds)
        expect(revoke).to_have_text("Confirm revoke")  # still armed: the next click acts
        revoke.click()
        expect(page.locator('#keys tbody tr[data-key="globex-batch"]')).to_have_attribute(
            "data-status", "revoked", timeout=WAIT_MS)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key=batch_secret, max_retries=0).chat.completions.create(
                model="echo", messages=HELLO)

        page.click("#secret-dismiss")
        page.wait_for_timeout(200)
        html = page.content()
        for secret in (first_secret, batch_secret, YAML_KEY, hash_key(first_secret), hash_key(YAML_KEY)):
            assert secret not in html
    finally:
        context.close()
