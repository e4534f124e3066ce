"""The shape of a pack file, as pydantic models.

A pack is data: where to send a call, how to authenticate, and templates that turn an
OpenAI request into the provider's body and the provider's answers, stream events and
errors back into OpenAI's shapes. These models are the single source of truth for that
format: packs are validated with them and `schemas/pack.schema.json` is generated from
them, so an editor checks a pack file as it is written.

Templates are Jinja. Two kinds exist and the field says which:
- *text* templates (URL paths, header and query values) render to a string;
- *value* templates (bodies, answers, stream events, errors) output values with
  `{{ ... }}`: each output is one dict, list, number or string, never text to parse.
A field left out means "already OpenAI-shaped": no template runs for it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TextTemplate = str
ValueTemplate = str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(Strict):
    """How the provider's `api_key` is sent; nothing is sent when the provider has no key."""

    style: Literal["bearer", "header", "query", "none", "sigv4", "google-oauth"] = Field(
        "bearer",
        description="bearer: `Authorization: Bearer KEY`; header: `<name>: KEY`; query: `?<name>=KEY`; none; "
        "sigv4: AWS Signature V4 with credentials from the AWS chain (`name` is the service, e.g. bedrock; "
        "needs gateway[aws]); google-oauth: a Google access token from ADC or a service-account file (needs gateway[gcp])",
    )
    name: str | None = Field(None, description="the header or query parameter that carries the key (sigv4: the service)")


class Stream(Strict):
    """How a streamed answer arrives and how each upstream event becomes OpenAI chunks."""

    url: TextTemplate | None = Field(None, description="path for streamed calls; absent: the call's `url`")
    query: dict[str, TextTemplate] = Field(default_factory=dict, description="extra query parameters for streamed calls")
    framing: Literal["sse", "ndjson", "aws-eventstream"] = Field(
        "sse",
        description="sse: `event:`/`data:` blocks; ndjson: one JSON object a line; aws-eventstream: AWS's binary "
        "frames, each named by its `:event-type` header (exceptions arrive as the event `error`)",
    )
    done: str | None = Field(None, description="a data payload that ends the stream (OpenAI: `[DONE]`); absent: the stream ends when the upstream closes it")
    skip_empty_chunks: bool = Field(False, description="for OpenAI-shaped streams: drop chunks with no choices and no usage (Azure's content-filter chunks)")
    events: dict[str, ValueTemplate] = Field(
        default_factory=dict,
        description="event name (the SSE `event:` line) -> value template outputting zero or more chunks; `default` serves events without a template of their own; empty: the events already are OpenAI chunks",
    )
    end: ValueTemplate | None = Field(None, description="value template run when the upstream closes the stream; outputs the last chunks")


class Call(Strict):
    """One kind of upstream call: where it goes, its body, and how its answer reads."""

    method: Literal["POST", "PUT"] = "POST"
    url: TextTemplate = Field(description="path appended to the provider's base_url")
    query: dict[str, TextTemplate] = Field(default_factory=dict, description="query parameters")
    headers: dict[str, TextTemplate] = Field(default_factory=dict, description="headers for this call only")
    body: ValueTemplate | None = Field(None, description="value template for the upstream body; absent: the client's body with only `model` replaced")
    answer: ValueTemplate | None = Field(None, description="value template for the OpenAI answer; absent: the answer already is OpenAI-shaped")


class Chat(Call):
    stream: Stream = Field(default_factory=Stream)


class RateLimits(Strict):
    """Which headers of the provider's answers state its rate limits.

    The gateway passes them on as OpenAI's `x-ratelimit-*` headers, so a client's SDK
    paces itself the same way whichever provider answered. A header the answer lacks is
    left out.
    """

    limit_requests: str | None = Field(None, description="header with the request limit (x-ratelimit-limit-requests)")
    remaining_requests: str | None = Field(None, description="header with the requests left (x-ratelimit-remaining-requests)")
    reset_requests: str | None = Field(None, description="header saying when the request limit resets (x-ratelimit-reset-requests)")
    limit_tokens: str | None = Field(None, description="header with the token limit (x-ratelimit-limit-tokens)")
    remaining_tokens: str | None = Field(None, description="header with the tokens left (x-ratelimit-remaining-tokens)")
    reset_tokens: str | None = Field(None, description="header saying when the token limit resets (x-ratelimit-reset-tokens)")
    reset_format: Literal["duration", "rfc3339", "seconds"] = Field(
        "duration",
        description="how the reset headers say when: duration (`20ms`, `1.5s`, `6m0s`: OpenAI's, passed on as is), rfc3339 (a moment: Anthropic's), seconds (a number of seconds)",
    )


class Completions(Strict):
    """The legacy text completions call (OpenAI's POST /v1/completions), for upstreams that
    still serve it. The client's body is sent as it is, with only `model` replaced."""

    method: Literal["POST"] = "POST"
    url: TextTemplate = Field(description="path appended to the provider's base_url")
    query: dict[str, TextTemplate] = Field(default_factory=dict, description="query parameters")
    headers: dict[str, TextTemplate] = Field(default_factory=dict, description="headers for this call only")


class Responses(Completions):
    """OpenAI's Responses API call (POST /v1/responses), for upstreams that serve it. A
    Responses client's body is sent as it is, with only `model` replaced (and the
    conversation the gateway keeps written out in `input`); answers and stream events
    come back in the Responses API's own shape."""


class PackSpec(Strict):
    """A provider's wire format."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    extends: str | None = Field(
        None, description="a built-in pack this one starts from: mappings merge key by key, anything else given here replaces",
    )
    base_url: TextTemplate | None = Field(
        None, description="text template for the endpoint root when the provider gives no base_url (reads `params`)",
    )
    by_model: dict[str, str] | None = Field(
        None,
        description="model-name glob -> built-in pack serving those models (first match wins): one `api:` for a "
        "cloud that serves several vendors' formats",
    )
    local: Literal["echo"] | None = Field(None, description="answered in-process by a built-in implementation; no HTTP")
    speaks: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_-]*$",
        description="the client API whose requests this provider takes as they are (`anthropic`): a client of that API "
        "has its own body sent with only `model` replaced, and gets the provider's answer and stream bytes unchanged",
    )
    constants: dict[str, Any] = Field(default_factory=dict, description="values every template reads as `constants` (mapping tables, defaults)")
    auth: Auth = Field(default_factory=Auth)
    headers: dict[str, TextTemplate] = Field(default_factory=dict, description="headers sent on every call")
    chat: Chat | None = None
    embeddings: Call | None = None
    completions: Completions | None = Field(
        None,
        description="the legacy POST /v1/completions, passed through; absent: /v1/completions requests are "
        "translated to this pack's chat call",
    )
    responses: Responses | None = Field(
        None,
        description="OpenAI's POST /v1/responses, passed through: the pack then speaks the Responses API; "
        "absent: /v1/responses requests are translated to this pack's chat call",
    )
    maps: list[str] | None = Field(
        None,
        description="the OpenAI request fields the chat call carries to the provider (`images` for image parts, "
        "`tool_choice.function` for a tool_choice naming one function); "
        "a request using a field that changes the answer's meaning (response_format, tools, tool_choice, n > 1, "
        "logprobs, stop, ...) skips targets whose pack does not list it; absent: every field is passed on",
    )
    rate_limits: RateLimits | None = Field(None, description="where the provider's answers state its rate limits; absent: none are passed on")
    error: ValueTemplate | None = Field(
        None,
        description="value template: a non-2xx upstream answer -> {message, type, code, param, status?, class?, retry_after?}; absent: OpenAI's error shape",
    )


TEMPLATE_FIELDS: dict[str, str] = {
    # Names used by providers.yaml `templates:` overrides, and whether each is text or value.
    "chat.url": "text",
    "chat.body": "value",
    "chat.answer": "value",
    "chat.stream.url": "text",
    "chat.stream.end": "value",
    "embeddings.url": "text",
    "embeddings.body": "value",
    "embeddings.answer": "value",
    "error": "value",
}
