"""Golden request shapes: the exact upstream URL, auth header and body each built-in pack
renders for a set of OpenAI requests (plain with sampling options, tools with a named
tool_choice and a tool round trip in the history, an image streamed with usage).

Each expectation was checked against the provider's documented format; a change to a
pack that changes what goes on the wire shows up here first.
"""

from __future__ import annotations

import dataclasses
import functools
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from gateway.config.snapshot import Limits, Price, Target
from gateway.providers.packs._templates import Origin, compile_text
from gateway.providers.packs.loader import load_pack

REQUESTS = {'plain': {'model': 'alias',
           'messages': [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}],
           'temperature': 0.2,
           'top_p': 0.9,
           'max_tokens': 100,
           'stop': 'END',
           'user': 'u-1',
           'seed': 7},
 'tools': {'model': 'alias',
           'messages': [{'role': 'developer', 'content': 'Use tools.'},
                        {'role': 'user', 'content': 'Weather in Paris?'},
                        {'role': 'assistant',
                         'content': None,
                         'tool_calls': [{'id': 'call_1',
                                         'type': 'function',
                                         'function': {'name': 'weather', 'arguments': '{"city": "Paris"}'}}]},
                        {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'sunny'}],
           'tools': [{'type': 'function',
                      'function': {'name': 'weather',
                                   'description': 'Weather for a city',
                                   'parameters': {'type': 'object',
                                                  'properties': {'city': {'type': 'string'}},
                                                  'required': ['city']}}}],
           'tool_choice': {'type': 'function', 'function': {'name': 'weather'}},
           'parallel_tool_calls': False},
 'image_stream': {'model': 'alias',
                  'stream': True,
                  'stream_options': {'include_usage': True},
                  'messages': [{'role': 'user',
                                'content': [{'type': 'text', 'text': 'What is this?'},
                                            {'type': 'image_url',
                                             'image_url': {'url': 'data:image/png;base64,iVBORw0KGgo='}}]}],
                  'max_completion_tokens': 20}}

GOLDEN = {('anthropic', 'plain'): ('https://api.example.test/v1/messages',
                          {'anthropic-version': '2023-06-01', 'x-api-key': 'sk-test'},
                          {'model': 'model-x',
                           'system': 'Be brief.',
                           'messages': [{'role': 'user', 'content': [{'type': 'text', 'text': 'Hi'}]}],
                           'max_tokens': 100,
                           'temperature': 0.2,
                           'top_p': 0.9,
                           'stop_sequences': ['END'],
                           'metadata': {'user_id': 'u-1'}}),
 ('anthropic', 'tools'): ('https://api.example.test/v1/messages',
                          {'anthropic-version': '2023-06-01', 'x-api-key': 'sk-test'},
                          {'model': 'model-x',
                           'system': 'Use tools.',
                           'messages': [{'role': 'user', 'content': [{'type': 'text', 'text': 'Weather in Paris?'}]},
                                        {'role': 'assistant',
                                         'content': [{'type': 'tool_use',
                                                      'id': 'call_1',
                                                      'name': 'weather',
                                                      'input': {'city': 'Paris'}}]},
                                        {'role': 'user',
                                         'content': [{'type': 'tool_result',
                                                      'tool_use_id': 'call_1',
                                                      'content': 'sunny'}]}],
                           'max_tokens': 4096,
                           'tools': [{'name': 'weather',
                                      'description': 'Weather for a city',
                                      'input_schema': {'type': 'object',
                                                       'properties': {'city': {'type': 'string'}},
                                                       'required': ['city']}}],
                           'tool_choice': {'type': 'tool', 'name': 'weather', 'disable_parallel_tool_use': True}}),
 ('anthropic', 'image_stream'): ('https://api.example.test/v1/messages',
                                 {'anthropic-version': '2023-06-01', 'x-api-key': 'sk-test'},
                                 {'model': 'model-x',
                                  'messages': [{'role': 'user',
                                                'content': [{'type': 'text', 'text': 'What is this?'},
                                                            {'type': 'image',
                                                             'source': {'type': 'base64',
                                                                        'media_type': 'image/png',
                                                                        'data': 'iVBORw0KGgo='}}]}],
                                  'max_tokens': 20,
                                  'stream': True}),
 ('gemini', 'plain'): ('https://api.example.test/v1beta/models/model-x:generateContent',
                       {'x-goog-api-key': 'sk-test'},
                       {'systemInstruction': {'parts': [{'text': 'Be brief.'}]},
                        'contents': [{'role': 'user', 'parts': [{'text': 'Hi'}]}],
                        'generationConfig': {'temperature': 0.2,
                                             'topP': 0.9,
                                             'maxOutputTokens': 100,
                                             'stopSequences': ['END'],
                                             'seed': 7}}),
 ('gemini', 'tools'): ('https://api.example.test/v1beta/models/model-x:generateContent',
                       {'x-goog-api-key': 'sk-test'},
                       {'systemInstruction': {'parts': [{'text': 'Use tools.'}]},
                        'contents': [{'role': 'user', 'parts': [{'text': 'Weather in Paris?'}]},
                                     {'role': 'model',
                                      'parts': [{'functionCall': {'name': 'weather', 'args': {'city': 'Paris'}}}]},
                                     {'role': 'user',
                                      'parts': [{'functionResponse': {'name': 'weather',
                                                                      'response': {'output': 'sunny'}}}]}],
                        'tools': [{'functionDeclarations': [{'name': 'weather',
                                                             'description': 'Weather for a city',
                                                             'parameters': {'type': 'object',
                                                                            'properties': {'city': {'type': 'string'}},
                                                                            'required': ['city']}}]}],
                        'toolConfig': {'functionCallingConfig': {'mode': 'ANY', 'allowedFunctionNames': ['weather']}}}),
 ('gemini', 'image_stream'): ('https://api.example.test/v1beta/models/model-x:streamGenerateContent?alt=sse',
                              {'x-goog-api-key': 'sk-test'},
                              {'contents': [{'role': 'user',
                                             'parts': [{'text': 'What is this?'},
                                                       {'inlineData': {'mimeType': 'image/png',
                                                                       'data': 'iVBORw0KGgo='}}]}],
                               'generationConfig': {'maxOutputTokens': 20}}),
 ('ollama', 'plain'): ('https://api.example.test/api/chat',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}],
                        'stream': False,
                        'options': {'num_predict': 100, 'stop': ['END'], 'temperature': 0.2, 'top_p': 0.9, 'seed': 7}}),
 ('ollama', 'tools'): ('https://api.example.test/api/chat',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'system', 'content': 'Use tools.'},
                                     {'role': 'user', 'content': 'Weather in Paris?'},
                                     {'role': 'assistant',
                                      'content': '',
                                      'tool_calls': [{'function': {'name': 'weather',
                                                                   'arguments': {'city': 'Paris'}}}]},
                                     {'role': 'tool', 'content': 'sunny', 'tool_name': 'weather'}],
                        'tools': [{'type': 'function',
                                   'function': {'name': 'weather',
                                                'description': 'Weather for a city',
                                                'parameters': {'type': 'object',
                                                               'properties': {'city': {'type': 'string'}},
                                                               'required': ['city']}}}],
                        'stream': False}),
 ('ollama', 'image_stream'): ('https://api.example.test/api/chat',
                              {'authorization': 'Bearer sk-test'},
                              {'model': 'model-x',
                               'messages': [{'role': 'user', 'content': 'What is this?', 'images': ['iVBORw0KGgo=']}],
                               'stream': True,
                               'options': {'num_predict': 20}}),
 ('cohere', 'plain'): ('https://api.example.test/v2/chat',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}],
                        'stream': False,
                        'max_tokens': 100,
                        'temperature': 0.2,
                        'p': 0.9,
                        'seed': 7,
                        'stop_sequences': ['END']}),
 ('cohere', 'tools'): ('https://api.example.test/v2/chat',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'system', 'content': 'Use tools.'},
                                     {'role': 'user', 'content': 'Weather in Paris?'},
                                     {'role': 'assistant',
                                      'tool_calls': [{'id': 'call_1',
                                                      'type': 'function',
                                                      'function': {'name': 'weather',
                                                                   'arguments': '{"city": "Paris"}'}}]},
                                     {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'sunny'}],
                        'tools': [{'type': 'function',
                                   'function': {'name': 'weather',
                                                'description': 'Weather for a city',
                                                'parameters': {'type': 'object',
                                                               'properties': {'city': {'type': 'string'}},
                                                               'required': ['city']}}}],
                        'stream': False}),
 ('cohere', 'image_stream'): ('https://api.example.test/v2/chat',
                              {'authorization': 'Bearer sk-test'},
                              {'model': 'model-x',
                               'messages': [{'role': 'user',
                                             'content': [{'type': 'text', 'text': 'What is this?'},
                                                         {'type': 'image_url',
                                                          'image_url': {'url': 'data:image/png;base64,iVBORw0KGgo='}}]}],
                               'stream': True,
                               'max_tokens': 20}),
 ('azure-openai', 'plain'): ('https://api.example.test/openai/deployments/model-x/chat/completions?api-version=2024-10-21',
                             {'api-key': 'sk-test'},
                             {'model': 'model-x',
                              'messages': [{'role': 'system', 'content': 'Be brief.'},
                                           {'role': 'user', 'content': 'Hi'}],
                              'temperature': 0.2,
                              'top_p': 0.9,
                              'max_tokens': 100,
                              'stop': 'END',
                              'user': 'u-1',
                              'seed': 7}),
 ('azure-openai', 'tools'): ('https://api.example.test/openai/deployments/model-x/chat/completions?api-version=2024-10-21',
                             {'api-key': 'sk-test'},
                             {'model': 'model-x',
                              'messages': [{'role': 'developer', 'content': 'Use tools.'},
                                           {'role': 'user', 'content': 'Weather in Paris?'},
                                           {'role': 'assistant',
                                            'content': None,
                                            'tool_calls': [{'id': 'call_1',
                                                            'type': 'function',
                                                            'function': {'name': 'weather',
                                                                         'arguments': '{"city": "Paris"}'}}]},
                                           {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'sunny'}],
                              'tools': [{'type': 'function',
                                         'function': {'name': 'weather',
                                                      'description': 'Weather for a city',
                                                      'parameters': {'type': 'object',
                                                                     'properties': {'city': {'type': 'string'}},
                                                                     'required': ['city']}}}],
                              'tool_choice': {'type': 'function', 'function': {'name': 'weather'}},
                              'parallel_tool_calls': False}),
 ('azure-openai', 'image_stream'): ('https://api.example.test/openai/deployments/model-x/chat/completions?api-version=2024-10-21',
                                    {'api-key': 'sk-test'},
                                    {'model': 'model-x',
                                     'stream': True,
                                     'stream_options': {'include_usage': True},
                                     'messages': [{'role': 'user',
                                                   'content': [{'type': 'text', 'text': 'What is this?'},
                                                               {'type': 'image_url',
                                                                'image_url': {'url': 'data:image/png;base64,iVBORw0KGgo='}}]}],
                                     'max_completion_tokens': 20}),
 ('openai', 'plain'): ('https://api.example.test/chat/completions',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}],
                        'temperature': 0.2,
                        'top_p': 0.9,
                        'max_tokens': 100,
                        'stop': 'END',
                        'user': 'u-1',
                        'seed': 7}),
 ('openai', 'tools'): ('https://api.example.test/chat/completions',
                       {'authorization': 'Bearer sk-test'},
                       {'model': 'model-x',
                        'messages': [{'role': 'developer', 'content': 'Use tools.'},
                                     {'role': 'user', 'content': 'Weather in Paris?'},
                                     {'role': 'assistant',
                                      'content': None,
                                      'tool_calls': [{'id': 'call_1',
                                                      'type': 'function',
                                                      'function': {'name': 'weather',
                                                                   'arguments': '{"city": "Paris"}'}}]},
                                     {'role': 'tool', 'tool_call_id': 'call_1', 'content': 'sunny'}],
                        'tools': [{'type': 'function',
                                   'function': {'name': 'weather',
                                                'description': 'Weather for a city',
                                                'parameters': {'type': 'object',
                                                               'properties': {'city': {'type': 'string'}},
                                                               'required': ['city']}}}],
                        'tool_choice': {'type': 'function', 'function': {'name': 'weather'}},
                        'parallel_tool_calls': False}),
 ('openai', 'image_stream'): ('https://api.example.test/chat/completions',
                              {'authorization': 'Bearer sk-test'},
                              {'model': 'model-x',
                               'stream': True,
                               'stream_options': {'include_usage': True},
                               'messages': [{'role': 'user',
                                             'content': [{'type': 'text', 'text': 'What is this?'},
                                                         {'type': 'image_url',
                                                          'image_url': {'url': 'data:image/png;base64,iVBORw0KGgo='}}]}],
                               'max_completion_tokens': 20})}


@functools.cache
def compiled(pack_name: str) -> Any:
    return load_pack(pack_name, ".")


def target_for(pack_name: str, **overrides: Any) -> Target:
    pack = compiled(pack_name)
    fields: dict[str, Any] = dict(
        id="p/model-x", provider="p", model="model-x", kind="chat", pack=pack, base_url="https://api.example.test",
        api_key="sk-test", headers=MappingProxyType({"x-extra": "1"}), connect_timeout=1.0, read_timeout=1.0,
        price=Price(), context_window=None, supports=None, tier=None, limits=Limits(), params=MappingProxyType({}),
    )
    fields.update(overrides)
    return Target(**fields)


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "unprepared"])
@pytest.mark.parametrize(("pack_name", "request_name"), list(GOLDEN))
def test_request_shape_matches_the_golden(pack_name, request_name, prepared):
    """The same bytes whether the snapshot prepared the target (URL and headers rendered
    once) or not (everything rendered for the request)."""
    target = target_for(pack_name)
    if prepared:
        target.pack.prepare(target)
    body = REQUESTS[request_name]
    rendered = target.pack.chat_request(target, body, bool(body.get("stream")))
    url, auth, expected = GOLDEN[(pack_name, request_name)]
    assert rendered.method == "POST"
    assert rendered.url == url
    assert rendered.headers["content-type"] == "application/json"
    assert rendered.headers["x-extra"] == "1", "a provider's own headers are always sent"
    assert {k: v for k, v in rendered.headers.items() if k not in ("content-type", "x-extra")} == auth
    assert orjson.loads(rendered.body) == expected


def test_no_key_sends_no_auth_header():
    target = target_for("anthropic", api_key=None)
    rendered = target.pack.chat_request(target, REQUESTS["plain"], False)
    assert "x-api-key" not in rendered.headers


def test_params_reach_templates():
    target = target_for("azure-openai", params=MappingProxyType({"api_version": "2025-01-01-preview"}))
    rendered = target.pack.chat_request(target, REQUESTS["plain"], False)
    assert rendered.url.endswith("?api-version=2025-01-01-preview")
    anthropic = target_for("anthropic", params=MappingProxyType({"max_tokens": 1000}))
    body = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    assert orjson.loads(anthropic.pack.chat_request(anthropic, body, False).body)["max_tokens"] == 1000


def test_openai_pass_through_replaces_only_the_model():
    target = target_for("openai")
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], "some_future_field": {"x": [1, None]}}
    sent = orjson.loads(target.pack.chat_request(target, body, False).body)
    assert sent == {**body, "model": "model-x"}


@pytest.mark.parametrize("pack_name", ["anthropic", "gemini", "ollama"])
def test_malformed_tool_arguments_in_history_are_a_400(pack_name):
    from gateway.errors import BadRequest

    target = target_for(pack_name)
    body = {"model": "a", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]}
    with pytest.raises(BadRequest) as caught:
        target.pack.chat_request(target, body, False)
    assert "tool call arguments is not valid JSON" in caught.value.message


@pytest.mark.parametrize("pack_name", ["gemini", "ollama"])
def test_tool_result_without_a_matching_call_is_a_400(pack_name):
    from gateway.errors import BadRequest

    target = target_for(pack_name)
    body = {"model": "a", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]}
    with pytest.raises(BadRequest) as caught:
        target.pack.chat_request(target, body, False)
    assert "nope" in caught.value.message


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.mark.parametrize(("pack_name", "kind", "expected"), [
    ("gemini", "json_object", {"responseMimeType": "application/json"}),
    ("gemini", "json_schema", {"responseMimeType": "application/json", "responseSchema": SCHEMA}),
    ("ollama", "json_object", "json"),
    ("ollama", "json_schema", SCHEMA),
    ("cohere", "json_object", {"type": "json_object"}),
    ("cohere", "json_schema", {"type": "json_object", "json_schema": SCHEMA}),
])
def test_response_format_becomes_the_providers_json_mode(pack_name, kind, expected):
    target = target_for(pack_name)
    response_format: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        response_format["json_schema"] = {"name": "place", "schema": SCHEMA}
    body = {"model": "a", "messages": [{"role": "user", "content": "x"}], "response_format": response_format}
    sent = orjson.loads(target.pack.chat_request(target, body, False).body)
    got = {"gemini": lambda s: s["generationConfig"], "ollama": lambda s: s["format"], "cohere": lambda s: s["response_format"]}[pack_name](sent)
    assert got == expected


@pytest.mark.parametrize("pack_name", ["ollama", "cohere"])
def test_stream_is_always_sent_explicitly(pack_name):
    target = target_for(pack_name)
    body = {"model": "a", "messages": [{"role": "user", "content": "x"}]}
    assert orjson.loads(target.pack.chat_request(target, body, False).body)["stream"] is False
    assert orjson.loads(target.pack.chat_request(target, body, True).body)["stream"] is True


def test_http_image_urls_where_only_base64_is_taken_are_a_400():
    from gateway.errors import BadRequest

    target = target_for("ollama")
    content = [{"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}]
    with pytest.raises(BadRequest) as caught:
        target.pack.chat_request(target, {"model": "a", "messages": [{"role": "user", "content": content}]}, False)
    assert "base64" in caught.value.message


def test_anthropic_takes_image_urls_as_url_sources():
    target = target_for("anthropic")
    content = [{"type": "image_url", "image_url": {"url": "https://example.test/cat.png", "detail": "high"}}]
    sent = orjson.loads(target.pack.chat_request(target, {"model": "a", "messages": [{"role": "user", "content": content}]}, False).body)
    assert sent["messages"][0]["content"] == [{"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}}]


@pytest.mark.parametrize("pack_name", ["anthropic", "gemini", "ollama", "cohere"])
def test_more_than_one_choice_is_refused_where_the_provider_gives_one(pack_name):
    from gateway.errors import BadRequest

    target = target_for(pack_name)
    body = {"model": "a", "messages": [{"role": "user", "content": "x"}]}
    assert target.pack.chat_request(target, {**body, "n": 1}, False)
    with pytest.raises(BadRequest) as caught:
        target.pack.chat_request(target, {**body, "n": 2}, False)
    assert "'n' must be 1" in caught.value.message


def test_config_only_parts_are_rendered_once_per_target_each_with_its_own_params():
    pack = compiled("anthropic")
    old = target_for("anthropic", id="p/old", params=MappingProxyType({"anthropic_version": "2023-01-01"}))
    new = target_for("anthropic", id="p/new")
    for target in (old, new):
        pack.prepare(target)
    assert pack.chat_request(old, REQUESTS["plain"], False).headers["anthropic-version"] == "2023-01-01"
    assert pack.chat_request(new, REQUESTS["plain"], False).headers["anthropic-version"] == "2023-06-01"
    # A different target object under a prepared id is rendered for itself, never from another's parts.
    other = target_for("anthropic", id="p/old", params=MappingProxyType({"anthropic_version": "2024-02-02"}))
    assert pack.chat_request(other, REQUESTS["plain"], False).headers["anthropic-version"] == "2024-02-02"


def test_a_prepared_targets_key_and_headers_are_its_own_on_every_request():
    """URL and headers are rendered once per target with its key in place; each request gets
    its own copy, and a target made from another (a new key) is rendered for itself."""
    pack = compiled("openai")
    first, second = target_for("openai", id="p/a", api_key="sk-key-a"), target_for("openai", id="p/b", api_key="sk-key-b")
    for target in (first, second):
        pack.prepare(target)
    sent = pack.chat_request(first, REQUESTS["plain"], False)
    sent.headers["authorization"] = "changed by a signer"
    assert pack.chat_request(first, REQUESTS["plain"], False).headers["authorization"] == "Bearer sk-key-a"
    assert pack.chat_request(second, REQUESTS["plain"], False).headers["authorization"] == "Bearer sk-key-b"
    rotated = dataclasses.replace(first, api_key="sk-key-new")
    assert pack.chat_request(rotated, REQUESTS["plain"], False).headers["authorization"] == "Bearer sk-key-new"


@pytest.mark.parametrize(("source", "config_only"), [
    ("/v1/messages", True),
    ("{{ params.anthropic_version | default('2023-06-01') }}", True),
    ("/models/{{ target.model }}:{{ constants.verb }}", True),
    ("/models/{{ target.model }}:{{ 'stream' if stream else 'generate' }}", False),
    ("{{ body.model }}", False),
    ("{{ new_id('req-') }}", False),
])
def test_which_text_templates_read_only_the_targets_config(source, config_only):
    assert compile_text(source, Origin("pack.yaml", 1, 1, False)).config_only is config_only
