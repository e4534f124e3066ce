"""`gateway tenants` and `gateway keys` drive a running gateway's admin API: a secret is
printed once (on stdout alone, so it can be piped), listings never show one, and a
revoked key stops working."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import openai
import pytest

from tests.support.admin import ADMIN, client

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def admin_key(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", ADMIN)


def cli(url: str, *args: str, admin: str | None = ADMIN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_ADMIN_KEY"}
    env["GATEWAY_URL"] = url
    if admin:
        env["GATEWAY_ADMIN_KEY"] = admin
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60)


def test_tenants_and_keys_from_the_command_line(gateway):
    url = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}})
    made = cli(url, "tenants", "create", "acme", "--routes", "echo", "--budget", "25", "--per", "month")
    assert made.returncode == 0, made.stderr
    tenant_secret = made.stdout.strip()
    assert tenant_secret.startswith("gwk-") and "shown this once" in made.stderr
    assert client(url, tenant_secret).chat.completions.create(model="echo", messages=MESSAGES)

    key = cli(url, "keys", "create", "acme-ci", "--tenant", "acme", "--rpm", "30", "--format", "json")
    assert key.returncode == 0, key.stderr
    created = json.loads(key.stdout)
    assert created["tenant_name"] == "acme" and created["limits"] == {"rpm": 30}

    listed = cli(url, "keys", "list")
    assert listed.returncode == 0 and "acme-ci" in listed.stdout and "acme-key" in listed.stdout
    assert created["display"] in listed.stdout
    assert tenant_secret not in listed.stdout and created["secret"] not in listed.stdout
    tenants = cli(url, "tenants", "list")
    assert "acme" in tenants.stdout and "$25/month" in tenants.stdout

    rotated = cli(url, "keys", "rotate", created["id"], "--grace-seconds", "0")
    assert rotated.returncode == 0 and rotated.stdout.strip().startswith("gwk-")
    new_secret = rotated.stdout.strip()
    assert client(url, new_secret).chat.completions.create(model="echo", messages=MESSAGES)
    revoked = cli(url, "keys", "revoke", created["id"])
    assert revoked.returncode == 0 and "revoked acme-ci" in revoked.stdout
    with pytest.raises(openai.AuthenticationError):
        client(url, new_secret).chat.completions.create(model="echo", messages=MESSAGES)

    clash = cli(url, "tenants", "create", "acme")
    assert clash.returncode == 1 and "409" in clash.stderr
    assert "no admin key" in cli(url, "keys", "list", admin=None).stderr
    wrong = cli(url, "keys", "list", admin="not-the-admin-key")
    assert wrong.returncode == 1 and "401" in wrong.stderr
