"""Two real `gateway serve` processes on one real redis-server share the semantic cache:
what one replica stored, the other serves, and so does a replica started afterwards."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import openai
import pytest

from tests.support.configs import openai_provider, write_config
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.redis_server import new_prefix
from tests.support.servers import gateway_process, serve_app
from tests.support.vector_upstream import BASE, VectorUpstream, at_similarity

KEY = "sk-semantic-replicas-key-0001"
QUESTION = "how do I reset my password"
PARAPHRASE = "password reset steps?"
REWORDED = "steps to reset a password"
WAIT = 1.0  # a replica reads the others' entries every 0.25 s


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, redis_url: str):
    chat = OpenAIUpstream()
    vectors = VectorUpstream({QUESTION: BASE, PARAPHRASE: at_similarity(0.97), REWORDED: at_similarity(0.96)})
    tmp_path: Path = tmp_path_factory.mktemp("semantic-replicas")
    with serve_app(chat.app()) as chat_base, serve_app(vectors.app()) as vector_base:
        providers = {
            "up": openai_provider(chat_base, ["gpt-x"]),
            "vec": openai_provider(vector_base, {"embed-small": {"type": "embedding"}}),
        }
        routes = {
            "routes": {
                "support": {"targets": ["up/gpt-x"],
                            "cache": {"ttl": 60, "semantic": {"embed": "embed", "threshold": 0.95, "timeout": 5}}},
                "embed": {"targets": ["vec/embed-small"]},
            },
            "keys": [{"name": "team", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
            "store": {"prefix": new_prefix()},
        }
        routes_path, providers_path = write_config(tmp_path / "config", routes, providers)
        env = {"REDIS_URL": redis_url, "GATEWAY_DATA_DIR": str(tmp_path / "data")}
        with gateway_process(routes_path, providers_path, env=env) as (a, _), \
                gateway_process(routes_path, providers_path, env=env) as (b, _):
            yield a, b, chat, (routes_path, providers_path, env)


def ask(url: str, text: str):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": text}], temperature=0)


def test_replica_b_serves_a_paraphrase_of_what_replica_a_stored(fleet):
    a, b, chat, config = fleet
    stored = ask(a, QUESTION)
    assert stored.headers["x-gateway-cache"] == "miss"
    calls = len(chat.requests)
    time.sleep(WAIT)
    served = ask(b, PARAPHRASE)
    assert served.headers["x-gateway-cache"] == "semantic-hit"
    assert served.headers["x-gateway-cache-similarity"] == "0.97"
    assert served.parse().id == stored.parse().id  # replica a's answer, not one of b's own
    assert len(chat.requests) == calls
    # A replica started afterwards reads the entries stored before it came up.
    routes_path, providers_path, env = config
    with gateway_process(routes_path, providers_path, env=env) as (c, _):
        time.sleep(WAIT)
        late = ask(c, REWORDED)
        assert late.headers["x-gateway-cache"] == "semantic-hit"
        assert late.parse().id == stored.parse().id
    assert len(chat.requests) == calls
