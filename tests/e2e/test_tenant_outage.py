"""PostgreSQL down mid-run: keys made by the API keep working (each replica holds them in
memory), an admin change is a clear 503 rather than a 500, and once the database is back
a change made then reaches the gateway as usual."""

from __future__ import annotations

import openai
import pytest

from gateway.server.app import create_app
from tests.support.admin import ADMIN, admin, client, created
from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.postgres_server import create_database, own_server, wait_until
from tests.support.servers import serve_app

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def postgres():  # type: ignore[no-untyped-def]
    server = own_server()  # its own: this test stops it
    yield server
    server.close()


def works(url: str, secret: str) -> bool:
    try:
        client(url, secret).chat.completions.create(model="echo", messages=MESSAGES)
    except openai.AuthenticationError:
        return False
    return True


def test_keys_keep_working_while_the_database_is_down(tmp_path, postgres, monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)
    database_url = create_database(postgres.url())
    routes, providers = write_config(tmp_path, {
        "routes": {"echo": {"targets": ["echo/echo-1"]}},
        "database": {"url": database_url, "flush_interval": 0.1},
    }, {"echo": ECHO_PROVIDER})
    with serve_app(create_app(str(routes), str(providers))) as url, admin(url) as api:
        key = created(api.post("/admin/keys", json={"name": "steady"}))
        assert works(url, key["secret"])

        postgres.stop()
        for _ in range(3):
            assert works(url, key["secret"])
        refused = api.post("/admin/keys", json={"name": "while-down"})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable"
        assert api.get("/admin/audit").status_code == 503
        assert api.get("/admin/keys").status_code == 200  # listed from memory, without "last used"

        postgres.start()
        assert wait_until(lambda: api.post("/admin/keys", json={"name": "after"}).status_code == 201, timeout=20)
        revoked = api.delete(f"/admin/keys/{key['id']}")
        assert revoked.status_code == 200
        assert not works(url, key["secret"])
