"""Compaction: a long Responses conversation folded into one item the next request sends back.

`POST /v1/responses/compact` (OpenAI's, and the Open Responses spec's) takes a conversation
and answers with its user messages followed by one `compaction` item; a client then
continues with that list instead of the whole history. OpenAI's item holds an encrypted
state only OpenAI reads. The gateway makes its own, on any route: the route's model is asked,
through the whole pipeline (keys, limits, budgets, fallbacks, the ledger), for a summary
of a transcript of the conversation, and the summary travels in the item's
`encrypted_content`, sealed with the prefix `gw-compaction-1.` (base64 of JSON: encoded,
not encrypted, since it only holds what the client already sent and was answered).

When such an item comes back in a later request's input, it becomes a system message
carrying the summary, for every target: chat targets and those that speak the Responses
API natively alike, which could not read it. A `compaction` item made by anyone else (an
OpenAI one) is passed only to a target that speaks the Responses API.

The same summary answers a `/v1/responses` call whose input ends with a
`compaction_trigger` (OpenAI's other way to compact) on a route with no target that speaks
the Responses API: the response's one output item is the compaction item.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gateway.errors import BadRequest

SEAL = "gw-compaction-1."
PREAMBLE = "Summary of the conversation before this point (earlier turns were compacted):\n\n"
# What the route's model is asked to write: the state a later turn needs, not a retelling.
INSTRUCTIONS = (
    "You compact conversations between a user and an AI assistant. The transcript below is the "
    "conversation so far. Write a summary from which the assistant can continue the conversation "
    "without the transcript: the user's goals and constraints, facts and names established, decisions "
    "made, what tools were called and what their results showed, work finished and work still open, "
    "and the last thing the user asked. Be complete but brief. Reply with the summary only."
)
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


def triggered(body: dict[str, Any]) -> bool:
    """Whether a /v1/responses body asks for compaction: its input ends with a
    `compaction_trigger` item (OpenAI's compaction inside a response). One anywhere else
    is refused, as the API refuses it."""
    items = body.get("input")
    if not isinstance(items, list) or not items:
        return False
    for index, item in enumerate(items[:-1]):
        if isinstance(item, dict) and item.get("type") == "compaction_trigger":
            raise BadRequest(f"input[{index}]: a compaction_trigger must be the last input item",
                             param=f"input[{index}]")
    last = items[-1]
    return isinstance(last, dict) and last.get("type") == "compaction_trigger"


def seal(summary: str) -> str:
    """A compaction item's `encrypted_content` carrying `summary`."""
    packed = base64.urlsafe_b64encode(orjson.dumps({"summary": summary})).decode().rstrip("=")
    return SEAL + packed


def is_ours(item: dict[str, Any]) -> bool:
    content = item.get("encrypted_content")
    return item.get("type") == "compaction" and isinstance(content, str) and content.startswith(SEAL)


def summary_of(item: dict[str, Any], where: str) -> str:
    """The summary a gateway-made compaction item carries; a damaged one is the client's 400."""
    packed = str(item["encrypted_content"])[len(SEAL):]
    try:
        data = orjson.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        summary = data["summary"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        summary = None
    if not isinstance(summary, str):
        raise BadRequest(f"{where}.encrypted_content is damaged: send the compaction item as the gateway made it",
                         param=f"{where}.encrypted_content")
    return summary


def summary_message(item: dict[str, Any], where: str) -> dict[str, Any]:
    """The chat message a gateway-made compaction item stands for."""
    return {"role": "system", "content": PREAMBLE + summary_of(item, where)}


def summary_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    """The same as a Responses input item, for a target that speaks the Responses API."""
    return {"type": "message", "role": "system",
            "content": [{"type": "input_text", "text": PREAMBLE + summary_of(item, where)}]}


def chat_body(alias: str, instructions: str | None, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request asking the route's model for the summary: the conversation goes as
    a transcript in one user message, which any target takes whatever the items are (a tool
    call left without its result, images, hosted tools)."""
    lines = []
    if instructions:
        lines.append(f"[Instructions the assistant was given]\n{instructions}")
    for index, item in enumerate(items):
        line = _transcript_line(item, f"input[{index}]")
        if line:
            lines.append(line)
    if not lines:
        raise BadRequest("'input' has nothing to compact: give at least one message", param="input")
    return {"model": alias, "messages": [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "\n\n".join(lines)},
    ]}


def _transcript_line(item: dict[str, Any], where: str) -> str:
    kind = item.get("type")
    if kind == "message":
        return f"[{item.get('role')}]\n{_text(item.get('content'))}"
    if kind == "function_call":
        return f"[assistant called tool {item.get('name')} (call {item.get('call_id')})]\n{item.get('arguments') or '{}'}"
    if kind == "function_call_output":
        return f"[result of tool call {item.get('call_id')}]\n{_text(item.get('output'))}"
    if is_ours(item):
        return f"[summary of what came before]\n{summary_of(item, where)}"
    return ""  # reasoning, hosted tool calls, another service's compaction: nothing readable


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    pieces = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            pieces.append(part["refusal"])
        elif part.get("type") == "input_image":
            pieces.append("[an image]")
        elif part.get("type") == "input_file":
            pieces.append(f"[a file: {part.get('filename') or 'unnamed'}]")
    return "\n".join(pieces)


def kept_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a compacted conversation keeps besides its summary: the user's own messages."""
    return [item for item in items if item.get("type") == "message" and item.get("role") == "user"]


def compaction_item(item_id: str, summary: str) -> dict[str, Any]:
    return {"id": item_id, "type": "compaction", "encrypted_content": seal(summary)}
