"""`validate_output: true` on a route: answers to json_schema requests are checked.

Providers honour `response_format` with different strength (constrained decoding, a
forced tool, a hint in the prompt), so a route may ask the gateway to check. For a
request whose `response_format` is `json_schema`, each choice's content must be JSON
that conforms to the schema (the `jsonschema` library, the draft the schema names).

- A plain answer that does not conform is a failure of class `invalid_output`: it falls
  back to the next target when the route lists `invalid_output` in `fallback_on`, else
  the client gets a 502 listing the attempt. It is never retried on the same target.
- A stream is checked when it ends (its content has already been sent): a failure turns
  its complete `End` into a failed one, which the client's writer sends as an error
  event (OpenAI's shape: no `[DONE]`), so a client can tell the answer was not what it
  asked for. Such a stream is not cached.

Every failure is counted in `gateway_invalid_output_total{route, target}`.

`jsonschema` (about 3 MiB of memory with the packages under it) is imported only by a
gateway whose config has a route with `validate_output`, when that config is installed
(`pipeline/runtime.py`), never by the first request that needs it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from gateway.config.snapshot import Route, Target
from gateway.errors import BadRequest
from gateway.observe import metrics
from gateway.pipeline.request import ModelRequest
from gateway.providers.events import FAILED, End, Event, EventStream, TextDelta
from gateway.providers.packs.wire import UpstreamFailure

INVALID_OUTPUT = "invalid_output"
_CACHE_SIZE = 256  # compiled validators kept, by schema text: clients repeat their schemas


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


_validators: OrderedDict[bytes, Any] = OrderedDict()


def validator(schema: dict[str, Any]) -> Any:
    """The compiled validator for a schema; a schema that is not valid JSON Schema is the client's 400."""
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    found = _validators.get(key)
    if found is not None:
        _validators.move_to_end(key)
        return found
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise BadRequest(
            f"response_format.json_schema.schema is not a valid JSON Schema: {exc.message}",
            param="response_format", code="invalid_schema",
        ) from None
    found = _validators[key] = cls(schema)
    if len(_validators) > _CACHE_SIZE:
        _validators.popitem(last=False)
    return found


def problem(check: Any, text: Any) -> str | None:
    """Why `text` is not a conforming answer, or None when it is."""
    if not isinstance(text, str) or not text.strip():
        return "the answer has no text content"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "the answer is not JSON"
    from jsonschema.exceptions import best_match

    error = best_match(check.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:200]}"


def answer_problem(check: Any, answer: dict[str, Any]) -> str | None:
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        text = message.get("content") if isinstance(message, dict) else choice.get("text") if isinstance(choice, dict) else None
        found = problem(check, text)
        if found is not None:
            return found
    return None


def _message(target: Target, detail: str) -> str:
    return f"{target.id} answered output that does not conform to the requested schema ({detail})"


Call = Callable[[Target, Any], Awaitable[None]]


def guarded(route: Route, request: ModelRequest, call: Call) -> Call:
    """`call` with each plain answer checked, when the route validates and the request has a schema."""
    schema = requested_schema(request.body) if route.validate_output else None
    if schema is None:
        return call
    check = validator(schema)

    async def checked(target: Target, outcome: Any) -> None:
        await call(target, outcome)
        if outcome.stream is not None or outcome.answer is None:
            return
        detail = answer_problem(check, outcome.answer.body)
        if detail is None:
            return
        metrics.invalid_output(route.alias, target.id)
        outcome.answer = None  # the next target starts clean
        raise UpstreamFailure(
            502,
            {"message": _message(target, detail), "type": "upstream_error", "param": None, "code": INVALID_OUTPUT},
            INVALID_OUTPUT,
        )

    return checked


def checked(route: Route, request: ModelRequest, outcome: Any) -> Any:
    """The outcome with its stream checked at its end (see the module doc)."""
    if outcome.stream is None or outcome.target is None:
        return outcome
    schema = requested_schema(request.body) if route.validate_output else None
    if schema is not None:
        stream = outcome.stream
        outcome.stream = EventStream(_checked_events(stream.events, validator(schema), route, outcome.target), stream.wire)
    return outcome


async def _checked_events(
    events: AsyncIterator[Event], check: Any, route: Route, target: Target
) -> AsyncIterator[Event]:
    """Events pass as they come; a complete `End` is held until the text collected on the
    way has been checked, and becomes a failed one when it does not conform."""
    texts: dict[int, list[str]] = {}
    try:
        async for event in events:
            if isinstance(event, TextDelta) and event.field == "content":
                texts.setdefault(event.choice, []).append(event.text)
            elif isinstance(event, End) and event.complete:
                detail = None
                for index in sorted(texts) or [0]:
                    detail = problem(check, "".join(texts.get(index, ())))
                    if detail is not None:
                        break
                if detail is not None:
                    metrics.invalid_output(route.alias, target.id)
                    error = {"message": _message(target, detail), "type": "upstream_error", "code": INVALID_OUTPUT}
                    event = End(FAILED, error)
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
