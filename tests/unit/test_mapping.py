"""Which request fields change an answer's meaning, and the plan's 400 when no target carries one."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest, NoTargetAvailable
from gateway.ops.diff import diff_snapshots
from gateway.ops.revision import compile_dir
from gateway.pipeline.mapping import used_fields
from gateway.pipeline.plan import CAPABILITY, Plan, Skipped, usable
from tests.support.configs import write_config

HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


@pytest.mark.parametrize("extra, used", [
    ({}, set()),
    ({"response_format": {"type": "text"}, "n": 1, "logprobs": False, "stop": [], "temperature": 0.3}, set()),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, {"response_format"}),
    ({"n": 3, "logprobs": True, "top_logprobs": 2}, {"n", "logprobs", "top_logprobs"}),
    ({"tools": TOOLS, "tool_choice": "auto"}, {"tools"}),
    ({"tools": TOOLS, "tool_choice": "required"}, {"tools", "tool_choice"}),
    ({"tool_choice": "required"}, set()),  # without tools there is nothing to force
    ({"modalities": ["text"]}, set()),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy"}}, {"modalities", "audio"}),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]}, {"images"}),
])
def test_used_fields(extra, used):
    assert used_fields({"model": "m", "messages": HI, **extra}) == used


def test_only_capability_gaps_are_a_400_naming_the_field():
    plan = Plan(route=_Route(), candidates=(), skipped=(
        Skipped("a/x", CAPABILITY, "its pack 'a' does not carry logprobs to the provider", "logprobs"),
        Skipped("b/y", "context_window", "too long"),
    ))
    with pytest.raises(BadRequest) as caught:
        usable(plan)
    assert caught.value.param == "logprobs" and caught.value.code == "unsupported_parameter"


def test_a_capability_gap_beside_an_open_circuit_stays_a_503():
    plan = Plan(route=_Route(), candidates=(), skipped=(
        Skipped("a/x", CAPABILITY, "no logprobs", "logprobs"), Skipped("b/y", "circuit", "open"),
    ))
    with pytest.raises(NoTargetAvailable):
        usable(plan)


def test_gateway_diff_reports_validate_output(tmp_path):
    providers = {"echo": {"api": "echo", "models": {"echo-1": {}}}}
    write_config(tmp_path / "old", {"routes": {"r": {"targets": ["echo/echo-1"]}}}, providers)
    write_config(tmp_path / "new", {"routes": {"r": {"targets": ["echo/echo-1"], "validate_output": True}}}, providers)
    result = diff_snapshots(compile_dir(tmp_path / "old", "routes.yaml", "providers.yaml"),
                            compile_dir(tmp_path / "new", "routes.yaml", "providers.yaml"))
    assert [c.text for c in result.changes] == ["`r` validate_output false → true"]
    assert result.summaries == {"r": "json_schema answers are checked against the schema"}


class _Route:
    alias = "r"
