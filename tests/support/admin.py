"""Talking to a gateway's admin API in tests: one httpx client with the admin key."""

from __future__ import annotations

from typing import Any

import httpx
import openai

ADMIN = "admin-secret-for-tenant-tests-0001"


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def client(url: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
