"""An upstream's cookies stay with the answer they came on: the gateway keeps no cookie jar."""

from __future__ import annotations

import openai

from tests.support.configs import openai_provider


def test_a_cookie_an_upstream_sets_is_never_sent_back(gateway, upstream):
    base, fake = upstream
    # By name, not by address: a cookie jar ignores cookies from bare IP addresses anyway.
    named = base.replace("127.0.0.1", "localhost")
    url = gateway({"routes": {"r": {"targets": ["up/good"]}}}, {"up": openai_provider(named, ["good"])})
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 3
    assert all("cookie" not in seen.headers for seen in fake.requests)
