"""Fallback classes, retries with backoff and Retry-After, the deadline, and the outcome statuses."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.configs import openai_provider

HI = [{"role": "user", "content": "hi"}]
ALL_CLASSES = ["rate_limit", "server_error", "timeout", "connection", "context_length", "content_filter"]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


# (model at the fake upstream, the class it produces)
FAULTS = [
    ("fail-500", "server_error"),
    ("fail-503", "server_error"),
    ("overload", "server_error"),
    ("garbage", "server_error"),
    ("fail-429", "rate_limit"),
    ("hang", "timeout"),
    ("context", "context_length"),
    ("refuse", "content_filter"),
]


def providers(base: str, failing: str) -> dict:
    return {
        "bad": openai_provider(base, [failing], timeout={"connect": 1, "read": 0.3}),
        "dead": openai_provider("http://127.0.0.1:9", ["gone"]),
        "up": openai_provider(base, ["good"]),
    }


@pytest.mark.parametrize("failing, cls", FAULTS + [("gone", "connection")])
def test_each_class_falls_back_when_listed(gateway, upstream, failing, cls):
    base, fake = upstream
    first = "dead/gone" if failing == "gone" else f"bad/{failing}"
    url = gateway({"routes": {"r": {"targets": [first, "up/good"], "retry": {"attempts": 1}, "fallback_on": [cls]}}},
                  providers(base, failing))
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-target"] == "up/good"
    assert raw.headers["x-gateway-attempts"] == "2"


@pytest.mark.parametrize("failing, cls", FAULTS + [("gone", "connection")])
def test_a_class_not_listed_does_not_fall_back(gateway, upstream, failing, cls):
    base, fake = upstream
    first = "dead/gone" if failing == "gone" else f"bad/{failing}"
    others = [c for c in ALL_CLASSES if c != cls]
    url = gateway({"routes": {"r": {"targets": [first, "up/good"], "retry": {"attempts": 1}, "fallback_on": others}}},
                  providers(base, failing))
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="r", messages=HI)
    assert "good" not in fake.models_called()
    expected = {"rate_limit": 429, "context_length": 400, "content_filter": 400}.get(cls, 502)
    assert caught.value.status_code == expected
    assert caught.value.body["attempts"][0]["class"] == cls


def test_a_client_error_never_falls_back_nor_retries(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/bad-request", "up/good"], "retry": {"attempts": 3},
                                    "fallback_on": ALL_CLASSES}}},
                  {"up": openai_provider(base, ["bad-request", "good"])})
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).chat.completions.create(model="r", messages=HI)
    assert caught.value.code == "invalid_value"
    assert fake.models_called() == ["bad-request"]


def test_retries_count_per_target_with_growing_jittered_backoff(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/flaky-2-500-a"],
                                    "retry": {"attempts": 3, "backoff": 0.1, "max_backoff": 0.15}}}},
                  {"up": openai_provider(base, ["flaky-2-500-a"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-attempts"] == "3"
    assert raw.headers["x-gateway-target"] == "up/flaky-2-500-a"
    t = fake.times_called("flaky-2-500-a")
    first_wait, second_wait = t[1] - t[0], t[2] - t[1]
    # The gateway waited at least the lower bounds: backoff 0.1 with equal jitter is [0.05, 0.1],
    # then doubled to 0.2 and capped at 0.15, [0.075, 0.15]. The exact upper bounds are proved
    # by tests/unit/test_plan_backoff.py; wall-clock upper bounds here only catch runaway waits.
    assert 0.05 <= first_wait < 1
    assert 0.075 <= second_wait < 1


def test_retries_are_spent_before_moving_to_the_next_target(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/fail-500", "up/good"],
                                    "retry": {"attempts": 3, "backoff": 0.01, "max_backoff": 0.01}}}},
                  {"up": openai_provider(base, ["fail-500", "good"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert fake.models_called() == ["fail-500"] * 3 + ["good"]
    assert raw.headers["x-gateway-attempts"] == "4"


def test_retry_after_is_honoured_when_it_fits_the_deadline(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/flaky-1-429-ra0.4-b"], "timeout": 3,
                                    "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, ["flaky-1-429-ra0.4-b"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-attempts"] == "2"
    t = fake.times_called("flaky-1-429-ra0.4-b")
    assert 0.4 <= t[1] - t[0] < 0.9


def test_retry_after_beyond_the_deadline_moves_on_at_once(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/flaky-1-429-ra30-c", "up/good"], "timeout": 2,
                                    "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, ["flaky-1-429-ra30-c", "good"])})
    started = time.monotonic()
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert time.monotonic() - started < 1.5  # not the 30 s it asked for
    assert raw.headers["x-gateway-target"] == "up/good"
    assert fake.models_called() == ["flaky-1-429-ra30-c", "good"]


def test_529_overload_is_retried_then_answers(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/flaky-1-529-d"], "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, ["flaky-1-529-d"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-attempts"] == "2"


def test_the_deadline_bounds_all_attempts_together(gateway, upstream):
    base, fake = upstream
    # Each try would time out at 0.3 s and back off 0.2 s; the route allows 0.7 s in all.
    url = gateway(
        {"routes": {"r": {"targets": ["slow/hang", "slow/hang-2"], "timeout": 0.7,
                          "retry": {"attempts": 3, "backoff": 0.2, "max_backoff": 0.2}}}},
        {"slow": openai_provider(base, ["hang", "hang-2"], timeout={"connect": 1, "read": 0.3})},
    )
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="r", messages=HI)
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert caught.value.code == "deadline_exceeded"
    assert 0.65 <= elapsed < 2
    assert caught.value.body["attempts"] and all(a["class"] == "timeout" for a in caught.value.body["attempts"])


def test_a_read_timeout_longer_than_the_deadline_leaves_the_wait_to_the_deadline(gateway, upstream):
    base, fake = upstream
    # A plain call's read timeout is left out when the deadline comes first: the hang still ends then.
    url = gateway({"routes": {"r": {"targets": ["slow/hang"], "timeout": 0.5, "retry": {"attempts": 1}}}},
                  {"slow": openai_provider(base, ["hang"], timeout={"connect": 1, "read": 30})})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="r", messages=HI)
    assert caught.value.status_code == 504
    assert caught.value.code == "deadline_exceeded"
    assert 0.45 <= time.monotonic() - started < 3
    assert [a["class"] for a in caught.value.body["attempts"]] == ["timeout"]


def test_every_target_failing_is_502_listing_each_try(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/fail-500", "up/overload"],
                                    "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, ["fail-500", "overload"])})
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="r", messages=HI)
    assert caught.value.status_code == 502
    assert [(a["target"], a["status"], a["class"]) for a in caught.value.body["attempts"]] == [
        ("up/fail-500", 500, "server_error"), ("up/fail-500", 500, "server_error"),
        ("up/overload", 529, "server_error"), ("up/overload", 529, "server_error"),
    ]


KEYED_ROUTES = {
    "routes": {
        "mixed": {"targets": [{"target": "up/premium-model", "tier": "premium"},
                              {"target": "up/cheap-model", "tier": "economy"}]},
        "premium": {"targets": [{"target": "up/premium-model", "tier": "premium"}]},
        "tools-only": {"targets": ["up/no-tools"]},
    },
    "keys": [{"name": "capped", "key": "sk-client-capped-0001", "max_tier": "standard"},
             {"name": "free", "key": "sk-client-free-00002"}],
}


def keyed(gateway, base: str) -> str:
    models = {"premium-model": {}, "cheap-model": {}, "no-tools": {"supports": ["json"]}}
    return gateway(KEYED_ROUTES, {"up": openai_provider(base, models)})


def test_key_cap_skips_premium_and_403_when_nothing_is_left(gateway, upstream):
    base, fake = upstream
    url = keyed(gateway, base)
    capped = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-capped-0001", max_retries=0)
    raw = capped.chat.completions.with_raw_response.create(model="mixed", messages=HI)
    assert raw.headers["x-gateway-target"] == "up/cheap-model"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        capped.chat.completions.create(model="premium", messages=HI)
    assert caught.value.code == "tier_not_allowed"
    assert fake.models_called() == ["cheap-model"]


def test_header_lowers_the_cap_and_503_lists_what_was_skipped(gateway, upstream):
    base, fake = upstream
    url = keyed(gateway, base)
    free = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-free-00002", max_retries=0)
    assert free.chat.completions.with_raw_response.create(model="mixed", messages=HI).headers["x-gateway-target"] == "up/premium-model"
    raw = free.chat.completions.with_raw_response.create(model="mixed", messages=HI, extra_headers={"x-gateway-max-tier": "standard"})
    assert raw.headers["x-gateway-target"] == "up/cheap-model"
    with pytest.raises(openai.InternalServerError) as caught:
        free.chat.completions.create(model="premium", messages=HI, extra_headers={"x-gateway-max-tier": "economy"})
    assert caught.value.status_code == 503
    assert caught.value.body["skipped"] == [
        {"target": "up/premium-model", "reason": "tier",
         "detail": "tier 'premium' is above the cap 'economy' set by the request's x-gateway-max-tier"}
    ]
    with pytest.raises(openai.BadRequestError):
        free.chat.completions.create(model="mixed", messages=HI, extra_headers={"x-gateway-max-tier": "gold"})


def test_a_request_with_tools_is_400_naming_them_when_no_target_supports_them(gateway, upstream):
    base, fake = upstream
    url = keyed(gateway, base)
    free = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-free-00002", max_retries=0)
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.BadRequestError) as caught:
        free.chat.completions.create(model="tools-only", messages=HI, tools=[tool])
    assert caught.value.body["param"] == "tools"
    assert caught.value.body["skipped"][0]["reason"] == "capability"
    assert fake.models_called() == []


def test_rejected_provider_credentials_fall_back_without_a_retry(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"r": {"targets": ["up/echo-key", "up/good"], "retry": {"attempts": 3}}}},
                  {"up": openai_provider(base, ["echo-key", "good"])})
    raw = client(url).chat.completions.with_raw_response.create(model="r", messages=HI)
    assert raw.headers["x-gateway-target"] == "up/good"
    assert fake.models_called() == ["echo-key", "good"]


def test_embeddings_retry_and_fall_back_like_chat(gateway, upstream):
    base, fake = upstream
    models = {"fail-500-emb": {"type": "embedding"}, "emb-good": {"type": "embedding"}}
    url = gateway({"routes": {"e": {"targets": ["up/fail-500-emb", "up/emb-good"], "retry": {"attempts": 2, "backoff": 0.01}}}},
                  {"up": openai_provider(base, models)})
    raw = client(url).embeddings.with_raw_response.create(model="e", input="hello")
    assert raw.headers["x-gateway-target"] == "up/emb-good"
    assert raw.headers["x-gateway-attempts"] == "3"
    assert fake.models_called() == ["fail-500-emb", "fail-500-emb", "emb-good"]
