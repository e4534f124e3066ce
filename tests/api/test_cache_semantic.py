"""The semantic cache answers a question asked in other words, and only where it is safe:
above the threshold, within the caller's scope and system prompt, never for tools or a
high temperature; an embeddings route that fails or is slow is a plain miss. In both
store homes, through the official SDKs against a local chat upstream and a local
embeddings upstream whose vectors each test chooses."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.support.configs import openai_provider
from tests.support.scrape import scrape, total
from tests.support.servers import serve_app
from tests.support.vector_upstream import BASE, DIMENSION, VectorUpstream, at_similarity

KEYS = {"alpha": "sk-alpha-semantic-0001", "beta": "sk-beta-semantic-0002"}
QUESTION = "how do I reset my password"
PARAPHRASE = "password reset steps?"
DISTANT = "how do I change my email address"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def axis(i: int) -> list[float]:
    vector = [0.0] * DIMENSION
    vector[i] = 1.0
    return vector


@pytest.fixture
def vectors() -> Iterator[tuple[str, VectorUpstream]]:
    fake = VectorUpstream({QUESTION: BASE, PARAPHRASE: at_similarity(0.97), DISTANT: at_similarity(0.9)})
    with serve_app(fake.app()) as url:
        yield url, fake


@pytest.fixture
def semantic(gateway, upstream, vectors, store_home):
    base, chat = upstream
    vector_base, embedder = vectors
    providers = {
        "up": openai_provider(base, ["gpt-x"], responses="translate"),
        # Priced so that the embedding's cost shows in the caller's usage ($4 for its 4 tokens).
        "vec": openai_provider(vector_base, {"embed-small": {"type": "embedding", "input_per_1m": 1_000_000}}),
    }
    # A generous embedding timeout: a loaded test machine must not turn a store into a miss.
    semantic = {"embed": "embed", "threshold": 0.95, "timeout": 5}
    routes = {
        "routes": {
            "support": {"targets": ["up/gpt-x"], "cache": {"ttl": 60, "semantic": semantic}},
            "small": {"targets": ["up/gpt-x"],
                      "cache": {"ttl": 60, "semantic": {**semantic, "max_entries": 2}}},
            "whole": {"targets": ["up/gpt-x"],
                      "cache": {"ttl": 60, "semantic": {**semantic, "compare": "messages"}}},
            "quick": {"targets": ["up/gpt-x"], "cache": {"ttl": 60, "semantic": {"embed": "embed"}}},  # 300 ms
            "embed": {"targets": ["vec/embed-small"]},
        },
        "keys": [{"name": name, "sha256": _digest(secret)} for name, secret in KEYS.items()],
        "store": store_home,
    }
    url = gateway(routes, providers)

    def client(name: str = "alpha") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[name], max_retries=0)

    return client, chat, embedder, url


def ask(c: openai.OpenAI, text: str, model: str = "support", system: str | None = None, **extra):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    extra.setdefault("temperature", 0)
    return c.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)


def chat_calls(chat) -> int:
    return sum(1 for r in chat.requests if r.path.endswith("/chat/completions"))


def test_a_paraphrase_above_the_threshold_is_answered_from_the_cache(semantic):
    client, chat, embedder, _ = semantic
    first = ask(client(), QUESTION)
    assert first.headers["x-gateway-cache"] == "miss"
    again = ask(client(), PARAPHRASE)
    assert again.headers["x-gateway-cache"] == "semantic-hit"
    assert again.headers["x-gateway-cache-similarity"] == "0.97"
    assert again.headers["x-gateway-cost-usd"] == "0"
    assert again.parse().id == first.parse().id
    assert chat_calls(chat) == 1
    assert embedder.inputs == [QUESTION, PARAPHRASE]


def test_a_paraphrase_streamed_is_the_cached_answer_replayed(semantic):
    client, chat, _, _ = semantic
    first = ask(client(), QUESTION).parse()
    raw = ask(client(), PARAPHRASE, stream=True)
    assert raw.headers["x-gateway-cache"] == "semantic-hit"
    chunks = list(raw.parse())
    assert {c.id for c in chunks} == {first.id}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == first.choices[0].message.content
    assert chat_calls(chat) == 1


def test_a_question_below_the_threshold_goes_to_the_model(semantic):
    client, chat, _, _ = semantic
    ask(client(), QUESTION)
    other = ask(client(), DISTANT)
    assert other.headers["x-gateway-cache"] == "miss"
    assert "x-gateway-cache-similarity" not in other.headers
    assert chat_calls(chat) == 2


def test_tools_and_a_high_or_unset_temperature_bypass_the_semantic_cache(semantic):
    client, chat, embedder, url = semantic
    ask(client(), QUESTION)
    assert ask(client(), PARAPHRASE, tools=TOOLS).headers["x-gateway-cache"] == "miss"
    assert ask(client(), PARAPHRASE, temperature=0.9).headers["x-gateway-cache"] == "miss"
    unset = client().chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": PARAPHRASE}])
    assert unset.headers["x-gateway-cache"] == "miss"
    assert ask(client(), PARAPHRASE, n=2).headers["x-gateway-cache"] == "miss"
    assert chat_calls(chat) == 5
    assert embedder.inputs == [QUESTION]  # never embedded, never stored
    text = scrape(url)
    for reason in ("tools", "temperature", "choices"):
        assert total(text, "gateway_semantic_bypassed_total", route="support", reason=reason) >= 1
    # The bypassed answers were not stored: the paraphrase still finds the first answer.
    assert ask(client(), PARAPHRASE).headers["x-gateway-cache"] == "semantic-hit"


def test_two_keys_never_share_an_entry(semantic):
    client, chat, _, _ = semantic
    ask(client("alpha"), QUESTION)
    assert ask(client("beta"), PARAPHRASE).headers["x-gateway-cache"] == "miss"
    assert ask(client("alpha"), PARAPHRASE).headers["x-gateway-cache"] == "semantic-hit"
    assert chat_calls(chat) == 2


def test_a_different_system_prompt_never_matches(semantic):
    client, chat, _, _ = semantic
    ask(client(), QUESTION, system="You are the billing assistant.")
    assert ask(client(), PARAPHRASE, system="You are the security assistant.").headers["x-gateway-cache"] == "miss"
    assert ask(client(), PARAPHRASE).headers["x-gateway-cache"] == "miss"  # no system prompt is another one too
    hit = ask(client(), PARAPHRASE, system="You are the billing assistant.")
    assert hit.headers["x-gateway-cache"] == "semantic-hit"
    assert chat_calls(chat) == 3


def test_the_embeddings_upstream_down_is_a_miss_and_the_request_succeeds(semantic):
    client, chat, embedder, url = semantic
    embedder.failing = True
    first = ask(client(), QUESTION)
    assert first.headers["x-gateway-cache"] == "miss"
    assert first.parse().choices[0].message.content
    assert ask(client(), PARAPHRASE).headers["x-gateway-cache"] == "miss"
    assert chat_calls(chat) == 2
    text = scrape(url)
    assert total(text, "gateway_semantic_embedding_failures_total", route="support", reason="error") == 2
    # The embedding call was a request of its own, refused by its upstream (a 502 in its log line).
    assert total(text, "gateway_requests_total", endpoint="embeddings", route="embed", target="",
                  status="502") == 2


def test_a_slow_embeddings_upstream_is_a_miss_after_its_timeout(semantic):
    client, chat, embedder, url = semantic
    embedder.delay = 3.0  # the route's semantic timeout is the default 300 ms
    started = time.monotonic()
    slow = ask(client(), QUESTION, model="quick")
    assert time.monotonic() - started < 2.5  # the answer did not wait for the embedding
    assert slow.headers["x-gateway-cache"] == "miss"
    assert slow.parse().choices[0].message.content
    assert chat_calls(chat) == 1
    text = scrape(url)
    assert total(text, "gateway_semantic_embedding_failures_total", route="quick", reason="timeout") == 1


def test_the_least_recently_used_entry_goes_past_max_entries(semantic):
    client, chat, embedder, _ = semantic
    for i, text in enumerate(("first", "second", "third")):
        embedder.vectors[text] = axis(i + 2)
        embedder.vectors[text + "?"] = axis(i + 2)
    ask(client(), "first", model="small")
    ask(client(), "second", model="small")
    assert ask(client(), "first?", model="small").headers["x-gateway-cache"] == "semantic-hit"  # now the most recent
    ask(client(), "third", model="small")  # the bound is 2: "second" is the least recently used
    assert ask(client(), "third?", model="small").headers["x-gateway-cache"] == "semantic-hit"
    assert ask(client(), "first?", model="small").headers["x-gateway-cache"] == "semantic-hit"
    assert ask(client(), "second?", model="small").headers["x-gateway-cache"] == "miss"
    assert chat_calls(chat) == 4


def test_compare_messages_embeds_the_whole_conversation(semantic):
    client, chat, embedder, _ = semantic
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": QUESTION}]
    embedder.vectors["user: hi\nassistant: hello\nuser: " + QUESTION] = BASE
    embedder.vectors["user: hi\nassistant: hello\nuser: " + PARAPHRASE] = at_similarity(0.99)
    client().chat.completions.create(model="whole", messages=turns, temperature=0)
    again = client().chat.completions.with_raw_response.create(
        model="whole", messages=turns[:2] + [{"role": "user", "content": PARAPHRASE}], temperature=0)
    assert again.headers["x-gateway-cache"] == "semantic-hit"
    assert again.headers["x-gateway-cache-similarity"] == "0.99"
    assert chat_calls(chat) == 1


def test_anthropic_messages_are_answered_from_the_semantic_cache_too(semantic):
    _, chat, _, url = semantic
    client = anthropic.Anthropic(base_url=url, api_key=KEYS["alpha"], max_retries=0)

    def ask_messages(text: str):
        return client.messages.with_raw_response.create(
            model="support", max_tokens=100, messages=[{"role": "user", "content": text}],
            extra_body={"temperature": 0})

    first = ask_messages(QUESTION)
    assert first.headers["x-gateway-cache"] == "miss"
    again = ask_messages(PARAPHRASE)
    assert again.headers["x-gateway-cache"] == "semantic-hit"
    assert again.parse().content[0].text == first.parse().content[0].text
    assert chat_calls(chat) == 1


def test_semantic_lookups_and_similarity_are_in_the_metrics(semantic):
    client, _, _, url = semantic
    ask(client(), QUESTION)
    ask(client(), PARAPHRASE)
    ask(client(), DISTANT)
    text = scrape(url)
    assert total(text, "gateway_semantic_lookups_total", route="support", result="hit") == 1
    assert total(text, "gateway_semantic_lookups_total", route="support", result="miss") == 2
    assert total(text, "gateway_semantic_similarity_count", route="support") == 2  # the first found nothing
    assert total(text, "gateway_semantic_embedding_seconds_count", route="support") == 3


def test_responses_are_answered_from_the_semantic_cache_too(semantic):
    client, chat, _, _ = semantic
    first = client().responses.with_raw_response.create(
        model="support", instructions="Answer briefly.", input=QUESTION, temperature=0)
    assert first.headers["x-gateway-cache"] == "miss"
    again = client().responses.with_raw_response.create(
        model="support", instructions="Answer briefly.", input=PARAPHRASE, temperature=0)
    assert again.headers["x-gateway-cache"] == "semantic-hit"
    assert again.parse().output_text == first.parse().output_text
    other = client().responses.with_raw_response.create(
        model="support", instructions="Answer at length.", input=PARAPHRASE, temperature=0)
    assert other.headers["x-gateway-cache"] == "miss"  # another system prompt (instructions)
    assert chat_calls(chat) == 2


def test_the_embedding_is_the_callers_own_embeddings_request(semantic):
    client, _, _, url = semantic
    ask(client(), QUESTION)
    ask(client(), PARAPHRASE)
    usage = httpx.get(f"{url}/v1/usage", headers={"authorization": f"Bearer {KEYS['alpha']}"}).json()
    day = usage["key"]["usage"]["day"]
    # Two chat requests (one answered from the cache) and two embeddings, each charged to the key.
    assert day["requests"] == 4 and day["cache_hits"] == 1
    assert day["cost_usd"] == pytest.approx(8.0, rel=0.01)
    others = httpx.get(f"{url}/v1/usage", headers={"authorization": f"Bearer {KEYS['beta']}"}).json()
    assert others["key"]["usage"]["day"]["requests"] == 0
