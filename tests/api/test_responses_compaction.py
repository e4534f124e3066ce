"""POST /v1/responses/compact and the compaction items it makes, through the official
openai SDK: the summary comes from the route's model; the item it travels in is read back
on chat targets and on targets that speak the Responses API alike; another key's stored
conversation cannot be compacted; assistant `phase` labels are kept; cancel answers as
the API does for a response that is not a background one."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.responses import CompactedResponse

from gateway.api.openai.compaction import INSTRUCTIONS, PREAMBLE
from tests.api import test_responses as shared
from tests.api.test_responses import KEY_A, KEY_B, client

site = shared.site  # the same gateway and upstreams as the Responses tests (one per module)

TOOL_TURNS = [
    {"role": "user", "content": "My name is Alice and I need the weather in Paris."},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
    {"role": "assistant", "content": "It is sunny in Paris.", "phase": "final_answer"},
]


def compact(url: str, key: str = KEY_A, **body) -> CompactedResponse:
    return client(url, key).responses.compact(**body)


def test_compact_asks_the_routes_model_and_keeps_the_users_messages(site):
    url, chat, _, _ = site
    raw = httpx.post(f"{url}/v1/responses/compact", headers={"authorization": f"Bearer {KEY_A}"},
                     json={"model": "chat", "input": TOOL_TURNS}).json()
    # The Open Responses spec's CompactResource: its required fields, and each item's.
    assert {"id", "object", "output", "created_at", "usage"} <= raw.keys()
    assert {"type", "id", "status", "role", "content"} <= raw["output"][0].keys()
    assert raw["output"][0]["content"] == [{"type": "input_text", "text": TOOL_TURNS[0]["content"]}]
    assert raw["output"][1].keys() == {"type", "id", "encrypted_content"}
    compacted = compact(url, model="chat", input=TOOL_TURNS, instructions="be helpful")
    assert isinstance(compacted, CompactedResponse)
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    assert [item.type for item in compacted.output] == ["message", "compaction"]
    assert compacted.output[0].role == "user"
    assert compacted.output[0].content[0].text == TOOL_TURNS[0]["content"]
    item = compacted.output[1]
    assert item.id.startswith("cmp_") and item.encrypted_content.startswith("gw-compaction-1.")
    assert compacted.usage.input_tokens == 11 and compacted.usage.output_tokens == 7
    asked = chat.requests[-1].body
    assert asked["model"] == "good" and asked["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
    transcript = asked["messages"][1]["content"]
    for piece in ("be helpful", "My name is Alice", "get_weather", '{"city": "Paris"}', "sunny, 21C",
                  "It is sunny in Paris."):
        assert piece in transcript
    assert "tools" not in asked  # a transcript: no tool call left without its result, whatever the target


def test_the_compacted_list_continues_on_a_chat_target_with_the_summary(site):
    url, chat, _, _ = site
    compacted = compact(url, model="chat", input=TOOL_TURNS)
    summary = "Upstream good: " + chat.requests[-1].body["messages"][-1]["content"]
    follow = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    answer = client(url).responses.create(model="chat", input=[*follow, {"role": "user", "content": "And my name?"}])
    assert answer.output_text == "Upstream good: And my name?"
    assert chat.requests[-1].body["messages"] == [
        {"role": "user", "content": TOOL_TURNS[0]["content"]},
        {"role": "system", "content": PREAMBLE + summary},
        {"role": "user", "content": "And my name?"},
    ]
    kinds = [item.type for item in client(url).responses.input_items.list(answer.id, order="asc")]
    assert kinds == ["message", "compaction", "message"]  # stored as the client sent it


def test_a_stored_conversation_is_compacted_and_a_responses_target_reads_the_summary(site):
    url, chat, _, native = site
    first = client(url).responses.create(model="chat", input="Remember the code word: heron.")
    compacted = compact(url, model="chat", previous_response_id=first.id, input="Got it?")
    transcript = chat.requests[-1].body["messages"][-1]["content"]
    assert "heron" in transcript and "Upstream good: Remember the code word" in transcript and "Got it?" in transcript
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    follow = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    client(url).responses.create(model="native", input=[*follow, {"role": "user", "content": "The word?"}])
    sent = native.requests[-1].body["input"]
    assert [(i.get("type"), i.get("role")) for i in sent] == [
        ("message", "user"), ("message", "user"), ("message", "system"), ("message", "user")]
    assert sent[2]["content"][0]["text"].startswith(PREAMBLE)
    assert "encrypted_content" not in str(sent)


def test_another_keys_conversation_cannot_be_compacted(site):
    url, _, _, _ = site
    mine = client(url, KEY_A).responses.create(model="chat", input="private to alpha")
    with pytest.raises(openai.NotFoundError):
        compact(url, KEY_B, model="chat", previous_response_id=mine.id)
    assert compact(url, KEY_A, model="chat", previous_response_id=mine.id).output[0].content[0].text == "private to alpha"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi"}, "model"),
    ({"model": "chat"}, "input"),
    ({"model": "chat", "input": "hi", "instructions": 5}, "instructions"),
    ({"model": "chat", "input": [{"type": "compaction"}]}, "input[0].encrypted_content"),
    ({"model": "chat", "input": [{"type": "compaction", "encrypted_content": "gw-compaction-1.%%%"}]},
     "input[0].encrypted_content"),
    ({"model": "chat", "input": [{"type": "message", "role": "assistant", "content": "x", "phase": "draft"}]},
     "input[0].phase"),
])
def test_bad_compact_bodies_are_400s_naming_the_field(site, body, param):
    url, chat, _, _ = site
    before = len(chat.requests)
    answer = httpx.post(f"{url}/v1/responses/compact", json=body, headers={"authorization": f"Bearer {KEY_A}"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param
    assert len(chat.requests) == before


def test_an_items_from_another_service_goes_only_to_a_responses_target(site):
    url, chat, _, native = site
    theirs = {"type": "compaction", "encrypted_content": "gAAAAB-made-by-openai"}
    with pytest.raises(openai.BadRequestError) as refused:
        client(url).responses.create(model="chat", input=[theirs, {"role": "user", "content": "go on"}])
    assert refused.value.body["param"] == "input[0]"
    client(url).responses.create(model="native", input=[theirs, {"role": "user", "content": "go on"}])
    assert native.requests[-1].body["input"][0] == theirs


def test_assistant_phase_is_kept_and_sent_back_to_a_responses_target(site):
    url, _, _, native = site
    first = client(url).responses.create(model="native", input=TOOL_TURNS[3:] + [{"role": "user", "content": "ok"}])
    stored = list(client(url).responses.input_items.list(first.id, order="asc"))
    assert stored[0].phase == "final_answer"
    client(url).responses.create(model="native", input="next", previous_response_id=first.id)
    assert native.requests[-1].body["input"][0]["phase"] == "final_answer"


def test_a_compaction_trigger_on_a_chat_route_answers_with_the_compaction_item(site):
    url, chat, _, _ = site
    sdk = client(url)
    compacted = sdk.responses.create(model="chat", input=[*TOOL_TURNS, {"type": "compaction_trigger"}])
    assert compacted.status == "completed" and [item.type for item in compacted.output] == ["compaction"]
    assert compacted.output[0].encrypted_content.startswith("gw-compaction-1.")
    assert compacted.usage.input_tokens == 11
    assert "sunny, 21C" in chat.requests[-1].body["messages"][-1]["content"]
    kept = [item.type for item in sdk.responses.input_items.list(compacted.id, order="asc")]
    assert kept == ["message"]  # the stored conversation is the compacted one: the user's message
    sdk.responses.create(model="chat", input="and now?", previous_response_id=compacted.id)
    assert [m["role"] for m in chat.requests[-1].body["messages"]] == ["user", "system", "user"]
    assert chat.requests[-1].body["messages"][1]["content"].startswith(PREAMBLE)
    with sdk.responses.stream(model="chat", input=[TOOL_TURNS[0], {"type": "compaction_trigger"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.output_item.done", "response.completed"]
    assert [item.type for item in final.output] == ["compaction"]


def test_a_compaction_trigger_goes_as_written_to_a_responses_target_and_must_come_last(site):
    url, _, _, native = site
    client(url).responses.create(model="native", input=[TOOL_TURNS[0], {"type": "compaction_trigger"}])
    assert native.requests[-1].body["input"][-1] == {"type": "compaction_trigger"}
    with pytest.raises(openai.BadRequestError) as refused:
        client(url).responses.create(model="chat", input=[{"type": "compaction_trigger"}, TOOL_TURNS[0]])
    assert refused.value.body["param"] == "input[0]"


def test_cancel_is_the_apis_400_for_a_stored_response_and_404_for_another_keys(site):
    url, _, _, _ = site
    mine = client(url, KEY_A).responses.create(model="chat", input="not in the background")
    with pytest.raises(openai.BadRequestError) as refused:
        client(url, KEY_A).responses.cancel(mine.id)
    assert "background" in refused.value.message
    with pytest.raises(openai.NotFoundError):
        client(url, KEY_B).responses.cancel(mine.id)
    assert client(url, KEY_A).responses.retrieve(mine.id).status == "completed"
