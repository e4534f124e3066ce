"""Keys made by the admin API on /v1/responses: a stored response belongs to the key that
made it, even against another key of the same tenant, and a revoked key reaches nothing."""

from __future__ import annotations

import openai
import pytest

from tests.support.admin import ADMIN, admin, client, created


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


def test_a_stored_response_belongs_to_its_key_not_its_tenant(gateway):
    url = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}})
    with admin(url) as api:
        tenant = created(api.post("/admin/tenants", json={"name": "acme"}))
        mate = created(api.post("/admin/keys", json={"name": "acme-mate", "tenant": "acme"}))
        mine = client(url, tenant["key"]["secret"])
        stored = mine.responses.create(model="echo", input="our plans")
        with pytest.raises(openai.NotFoundError):
            client(url, mate["secret"]).responses.retrieve(stored.id)
        assert mine.responses.retrieve(stored.id).id == stored.id
        api.delete(f"/admin/keys/{tenant['key']['id']}")
        with pytest.raises(openai.AuthenticationError):
            mine.responses.retrieve(stored.id)
