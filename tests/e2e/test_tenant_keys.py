"""Keys made by the admin API live through their whole life on SQLite and on a real
PostgreSQL, with two replicas (two gateways sharing the database): create, use, rotate
(the old secret works through its grace, then gets 401), revoke (401 on the OTHER
replica within two seconds, without a reload), expire. A refused key is told exactly
what an unknown key is told, while the audit names it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import openai
import pytest

from tests.support.admin import ADMIN, admin, client, created

MESSAGES = [{"role": "user", "content": "hello"}]
PROPAGATION = 2.0  # seconds a change may take to reach every replica


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


@pytest.fixture
def replicas(gateway, database_url):
    routes = {
        "routes": {"echo": {"targets": ["echo/echo-1"]}, "other": {"targets": ["echo/echo-1"]}},
        "tenants": {"yaml-team": {"routes": ["echo"]}},
        "database": {"url": database_url, "flush_interval": 0.1},
    }
    return gateway(routes), gateway(routes)


def works(url: str, secret: str) -> bool:
    try:
        client(url, secret).chat.completions.create(model="echo", messages=MESSAGES)
    except openai.AuthenticationError as exc:
        assert exc.status_code == 401 and exc.code == "invalid_api_key"
        assert exc.body["message"] == "invalid API key"  # the same words as for a key never made
        return False
    return True


def until(condition, seconds: float) -> float:
    """How long `condition` took to hold; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_key_lives_created_used_rotated_revoked_on_every_replica(replicas):
    one, two = replicas
    with admin(one) as api:
        tenant = created(api.post("/admin/tenants", json={"name": "acme", "routes": ["echo"]}))
        first = tenant["key"]
        assert first["secret"].startswith("gwk-") and first["tenant"] == tenant["id"]
        assert works(one, first["secret"])  # the replica that made it serves it at once
        until(lambda: works(two, first["secret"]), PROPAGATION)
        # The tenant's routes bind its key: another alias is forbidden.
        with pytest.raises(openai.PermissionDeniedError):
            client(one, first["secret"]).chat.completions.create(model="other", messages=MESSAGES)

        rotated = api.post(f"/admin/keys/{first['id']}/rotate", json={"grace_seconds": 1.5}).json()
        assert rotated["secret"] != first["secret"] and rotated["id"] == first["id"]
        assert works(one, rotated["secret"]) and works(one, first["secret"])  # both, in the grace period
        until(lambda: works(two, rotated["secret"]), PROPAGATION)
        assert works(two, first["secret"])
        time.sleep(1.6)
        assert not works(one, first["secret"]) and not works(two, first["secret"])
        assert works(two, rotated["secret"])

        revoked = api.delete(f"/admin/keys/{first['id']}")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert not works(one, rotated["secret"])
        took = until(lambda: not works(two, rotated["secret"]), PROPAGATION)
        assert took < PROPAGATION

        audit = api.get("/admin/audit").json()["data"]
        made = [e for e in audit if e["action"] in ("tenant.create", "key.rotate", "key.revoke")]
        assert [e["action"] for e in made] == ["key.revoke", "key.rotate", "tenant.create"]
        assert all(e["address"] == "127.0.0.1" and e["at"].endswith("Z") for e in made)
        # The refusals name the key and say why; a replica writes them within a poll or two.
        def refusals() -> set[str]:
            rows = api.get("/admin/audit", params={"target": first["id"]}).json()["data"]
            return {e["detail"]["reason"] for e in rows if e["action"] == "key.refused"}
        until(lambda: {"rotated", "revoked"} <= refusals(), 3.0)


def test_a_key_expires_at_its_time_and_a_patch_can_extend_it(replicas):
    one, two = replicas
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat().replace("+00:00", "Z")
    with admin(one) as api:
        key = created(api.post("/admin/keys", json={"name": "short-lived", "expires_at": soon}))
        assert key["expires_at"] is not None and key["status"] == "active"
        assert works(one, key["secret"])
        until(lambda: works(two, key["secret"]), PROPAGATION)
        time.sleep(1.6)
        assert not works(one, key["secret"]) and not works(two, key["secret"])
        assert api.get(f"/admin/keys/{key['id']}").json()["status"] == "expired"
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert api.patch(f"/admin/keys/{key['id']}", json={"expires_at": later}).status_code == 200
        assert works(one, key["secret"])
        until(lambda: works(two, key["secret"]), PROPAGATION)


def test_names_that_clash_with_routes_yaml_or_each_other_get_409(replicas):
    one, _ = replicas
    with admin(one) as api:
        clash = api.post("/admin/tenants", json={"name": "yaml-team"})
        assert clash.status_code == 409 and "routes.yaml" in clash.json()["error"]["message"]
        assert api.patch("/admin/tenants/yaml-team", json={"max_tier": "economy"}).status_code == 409
        created(api.post("/admin/keys", json={"name": "twice"}))
        again = api.post("/admin/keys", json={"name": "twice"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        bad = api.post("/admin/keys", json={"name": "Not A Name", "limits": {"rpm": 0}, "colour": "red"})
        assert bad.status_code == 400
        message = bad.json()["error"]["message"]
        assert "name" in message and "limits.rpm" in message and "colour" in message
        assert api.post("/admin/keys", json={"name": "k", "tenant": "nobody"}).status_code == 400
        assert api.post("/admin/keys", json={"name": "k", "max_tier": "gold"}).status_code == 400
        assert api.get("/admin/keys/key_nope").status_code == 404
        assert api.delete("/admin/tenants/ten_nope").status_code == 404


def test_deleting_a_tenant_revokes_its_keys_everywhere(replicas):
    one, two = replicas
    with admin(one) as api:
        tenant = created(api.post("/admin/tenants", json={"name": "gone-soon"}))
        extra = created(api.post("/admin/keys", json={"name": "gone-soon-2", "tenant": "gone-soon"}))
        until(lambda: works(two, extra["secret"]), PROPAGATION)
        assert api.delete(f"/admin/tenants/{tenant['id']}").json()["deleted"] is True
        until(lambda: not works(two, extra["secret"]) and not works(two, tenant["key"]["secret"]), PROPAGATION)
        statuses = {k["name"]: k["status"] for k in api.get("/admin/keys").json()["data"]}
        assert statuses["gone-soon-key"] == statuses["gone-soon-2"] == "revoked"


def test_a_config_reload_keeps_the_apis_keys_and_routes_yaml_wins_a_name(gateway, database_url, tmp_path):
    import hashlib

    import httpx
    import yaml

    routes = {"routes": {"echo": {"targets": ["echo/echo-1"]}}, "database": {"url": database_url}}
    url = gateway(routes)
    routes_file = tmp_path / "config0" / "routes.yaml"
    with admin(url) as api:
        kept = created(api.post("/admin/keys", json={"name": "kept"}))
        shadowed = created(api.post("/admin/keys", json={"name": "shadowed"}))
        file_secret = "a-routes-yaml-secret-for-shadowed"
        routes["routes"]["other"] = {"targets": ["echo/echo-1"]}
        routes["keys"] = [{"name": "shadowed", "sha256": hashlib.sha256(file_secret.encode()).hexdigest()}]
        routes_file.write_text(yaml.safe_dump(routes))
        reloaded = httpx.post(f"{url}/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})
        assert reloaded.status_code == 200 and reloaded.json()["result"] == "applied"
        assert works(url, kept["secret"])  # merged into the new config
        assert works(url, file_secret)
        assert not works(url, shadowed["secret"])  # the file's key of that name wins
        listed = {k["name"]: k["source"] for k in api.get("/admin/keys").json()["data"]}
        assert listed["kept"] == "api"


def test_a_tenant_change_binds_its_keys_on_every_replica(replicas):
    one, two = replicas
    with admin(one) as api:
        tenant = created(api.post("/admin/tenants", json={"name": "shifting"}))
        secret = tenant["key"]["secret"]
        until(lambda: works(two, secret), PROPAGATION)
        changed = api.patch(f"/admin/tenants/{tenant['id']}", json={"routes": ["other"], "max_tier": "economy"})
        assert changed.status_code == 200 and changed.json()["routes"] == ["other"]

        def refused_on_two() -> bool:
            try:
                client(two, secret).chat.completions.create(model="echo", messages=MESSAGES)
            except openai.PermissionDeniedError:
                return True
            return False

        until(refused_on_two, PROPAGATION)
        assert client(two, secret).chat.completions.create(model="other", messages=MESSAGES)
        listed = api.get(f"/admin/tenants/{tenant['id']}").json()
        assert listed["max_tier"] == "economy" and listed["keys"] == 1
        assert [e["action"] for e in api.get("/admin/audit", params={"target": tenant["id"]}).json()["data"]] == [
            "tenant.update", "tenant.create"]
