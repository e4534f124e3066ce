"""The database down mid-run: requests are still served, /ready and gateway_db_up say so,
ledger rows wait in the bounded queue (the overflow dropped and counted) and are written
once PostgreSQL is back."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.server.app import create_app
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.ledger import ledger_rows
from tests.support.postgres_server import create_database, own_server, wait_until
from tests.support.scrape import scrape, value
from tests.support.servers import serve_app

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def postgres():  # type: ignore[no-untyped-def]
    server = own_server()  # its own: this test stops it
    yield server
    server.close()


def metric(url: str, name: str) -> float:
    return value(scrape(url), name)


def test_requests_go_on_while_postgresql_is_down_and_rows_wait_for_it(tmp_path, postgres):
    database_url = create_database(postgres.url())
    routes, providers = write_config(tmp_path, {
        "routes": {"echo": {"targets": ["echo/echo-1"]}},
        "database": {"url": database_url, "flush_interval": 0.1, "queue_size": 3},
    }, {"echo": ECHO_PROVIDER})
    with serve_app(create_app(str(routes), str(providers))) as url:
        gateway = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        gateway.chat.completions.create(model="echo", messages=MESSAGES)
        assert wait_until(lambda: len(ledger_rows(database_url)) == 1)
        ready = httpx.get(f"{url}/ready").json()
        assert ready["database"]["up"] is True and ready["database"]["kind"] == "postgresql"
        assert metric(url, "gateway_db_up") == 1

        postgres.stop()
        for _ in range(5):  # three fit in the queue, two are dropped: none fails
            answer = gateway.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)
            assert answer.status_code == 200
        down = httpx.get(f"{url}/ready")
        assert down.status_code == 200  # served, so still ready: the outage is reported, not fatal
        assert down.json()["database"]["up"] is False and down.json()["database"]["queued"] == 3
        assert metric(url, "gateway_db_up") == 0
        assert metric(url, "gateway_ledger_dropped_rows_total") == 2
        assert wait_until(lambda: metric(url, "gateway_ledger_queue_rows") == 3)

        postgres.start()
        assert wait_until(lambda: len(ledger_rows(database_url)) == 4, timeout=15)
        assert wait_until(lambda: httpx.get(f"{url}/ready").json()["database"]["up"] is True)
        assert wait_until(lambda: metric(url, "gateway_ledger_queue_rows") == 0)
        assert metric(url, "gateway_db_up") == 1
