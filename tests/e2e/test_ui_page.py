"""The operator's page in a real headless Chromium against a real `gateway serve` process.

Chromium comes from Debian's packages (`.ci/run` installs it), driven by Playwright for
Python with `executable_path` pointing at it: no browser download. The test logs in,
checks the running config's aliases and targets, sends traffic and watches the counters
move, breaks the config file and sees the refused reload with its errors, then saves a
screenshot under the test's tmp directory. With UPDATE_SCREENSHOTS=1 it also refreshes
docs/images/ui.png, the picture in docs/operations.md.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateway.pipeline.identify import hash_key
from tests.support.configs import ECHO_PROVIDER, openai_provider, write_config
from tests.support.servers import ROOT, gateway_process

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN_KEY = "ui-admin-key-0001"
CLIENT_KEY = "ui-client-key-0001"
UPSTREAM_KEY = "sk-upstream-ui-secret-0001"
HELLO = [{"role": "user", "content": "hello"}]
WAIT_MS = 10_000  # the page polls every 2 s
SPEND_WAIT_MS = 15_000  # and spend every 10 s


def routes_config() -> dict[str, Any]:
    return {
        "defaults": {"retry": {"attempts": 1}, "circuit": {"failures": 1000}},
        "routes": {
            "support-chat": {"targets": ["up/fail-500", "up/gpt-test"]},
            "fast": {"strategy": "weighted", "targets": [
                {"target": "up/gpt-test", "weight": 3}, {"target": "echo/echo-1", "weight": 1}]},
            "embed": {"targets": ["echo/echo-embed"]},
        },
        "keys": [
            {"name": "team-support", "sha256": hash_key(CLIENT_KEY), "budget": {"usd": 1, "per": "day"}},
            {"name": "ci", "sha256": hash_key("ui-ci-key-0002")},
        ],
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(tmp_path: Path, upstream) -> Iterator[tuple[str, Path]]:
    base, _ = upstream
    prices = {"input_per_1m": 600.0, "output_per_1m": 2400.0}  # dear, so the budget bar shows
    routes, providers = write_config(
        tmp_path / "config", routes_config(),
        {"up": openai_provider(base, {"fail-500": prices, "gpt-test": prices}, api_key=UPSTREAM_KEY),
         "echo": ECHO_PROVIDER},
    )
    env = {"GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_RELOAD_QUIET_MS": "50"}
    with gateway_process(routes, providers, env=env, log=tmp_path / "gateway.observe.log") as (url, _):
        yield url, routes


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/ui")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()
    page.fill("#admin-key", "not-the-admin-key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("invalid admin key")
    expect(page.locator("#dashboard")).to_be_hidden()
    page.fill("#admin-key", ADMIN_KEY)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#dashboard")).to_be_visible()


def save_screenshot(page: Page, tmp_path: Path) -> Path:
    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "images" / "ui.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    return shot


def test_log_in_see_the_config_watch_traffic_and_a_refused_reload(browser: Browser, served, tmp_path: Path):
    url, routes_path = served
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    try:
        log_in(page, url)

        # The running config: every alias, with its targets in the order they are tried.
        routes = page.locator("#routes tbody")
        expect(routes.locator("tr.alias")).to_have_count(3)
        aliases = routes.locator("tr.alias td:first-child")
        expect(aliases.nth(0)).to_contain_text("support-chat")
        expect(aliases.nth(1)).to_contain_text("fast")
        support_targets = routes.locator("tr.target[data-target]").all_inner_texts()
        assert [t.split("\t")[0] for t in support_targets[:2]] == ["1up/fail-500", "2up/gpt-test"]
        expect(routes.locator("tr.target").first.locator(".badge")).to_have_text("closed")
        expect(page.locator("#t-requests")).to_have_text("0")

        # Traffic: the counters move without reloading the page.
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
        for _ in range(4):
            client.chat.completions.create(model="support-chat", messages=HELLO)  # falls back once each
        for _ in range(8):
            client.chat.completions.create(model="fast", messages=HELLO)
        expect(page.locator("#t-requests")).to_have_text("12", timeout=WAIT_MS)
        expect(page.locator("#t-fallbacks")).to_have_text("4")
        row = page.locator('#traffic tbody tr[data-route="support-chat"]')
        expect(row.locator("td").nth(2)).to_have_text("4")
        expect(row.locator("td").nth(6)).to_have_text("4")  # fallbacks
        # The failing first target shows its error rate; the one that answers takes all the traffic.
        failing = routes.locator('tr.target[data-target="up/fail-500"]').first
        expect(failing.locator("td").nth(6)).to_have_text("100.0%")
        answering = routes.locator('tr.target[data-target="up/gpt-test"]').first
        expect(answering.locator(".meter .text")).to_have_text("100.0%")
        expect(page.locator("#chart polyline")).to_have_count(2)

        # A broken config on disk is refused: the page shows where, and the old config keeps serving.
        version = page.locator("#config-version").inner_text()
        routes_path.write_text(routes_path.read_text().replace("up/gpt-test", "ghost/gpt-test", 1))
        expect(page.locator("#refused")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#refused-title")).to_contain_text(f"still serving {version}")
        expect(page.locator("#refused-errors li").first).to_have_text(
            re.compile(r"routes\.yaml:\d+:\d+: unknown provider 'ghost'"))
        expect(page.locator("#config-reload")).to_contain_text("refused (file)")
        assert client.chat.completions.create(model="support-chat", messages=HELLO).choices[0].message.content
        expect(page.locator("#t-requests")).to_have_text("13", timeout=WAIT_MS)
        # Reload now asks again (POST /admin/reload): still refused, now by the admin trigger.
        page.click("#reload-now")
        expect(page.locator("#reload-result")).to_contain_text("refused: config refused with 1 error")
        expect(page.locator("#config-reload")).to_contain_text("refused (admin)", timeout=WAIT_MS)

        # Spend: tokens and dollars per key and route, today and this month, against the key's budget.
        spender = page.locator('#spend-keys tbody tr[data-key="team-support"]')
        cells = spender.locator("td")
        expect(cells.nth(1)).not_to_have_text("0", timeout=SPEND_WAIT_MS)  # tokens today
        assert int(cells.nth(1).inner_text().replace(",", "")) > 0
        expect(spender.locator(".meter .text")).to_contain_text("of $1.00 per day")
        assert 0 < float(cells.nth(2).inner_text().lstrip("$")) < 1  # USD today
        assert cells.nth(3).inner_text() == cells.nth(1).inner_text()  # this month so far is today
        expect(page.locator('#spend-keys tbody tr[data-key="ci"] td').nth(5)).to_have_text("no budget")
        spent_route = page.locator('#spend-routes tbody tr[data-route="support-chat"]')
        assert int(spent_route.locator("td").nth(1).inner_text().replace(",", "")) > 0

        html = page.content()
        for secret in (ADMIN_KEY, CLIENT_KEY, UPSTREAM_KEY, hash_key(CLIENT_KEY)):
            assert secret not in html
        shot = save_screenshot(page, tmp_path)
        assert shot.stat().st_size > 10_000

        # Logging out forgets the key and hides every figure.
        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0
        page.reload()
        expect(page.locator("#login")).to_be_visible()
    finally:
        context.close()
