"""Token estimates made before an upstream answers.

Limits, budgets, cheapest-route choices and context-window checks all need a number
before the call; the real usage settles it afterwards. Roughly four characters per
token is what English text averages across common tokenizers, and being fast matters
more here than being exact.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role markers and separators per message
IMAGE_TOKENS = 765  # a typical high-detail image tile budget


def estimate_text_tokens(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    return survey_prompt(body)[0]


def survey_prompt(body: dict[str, Any]) -> tuple[int, bool]:
    """(the prompt's token estimate, whether a message carries an image), from one walk over
    the messages: a chat request needs both, and walking them once costs half of twice."""
    total = 0
    images = False
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    kind = part.get("type")
                    if kind == "text":
                        total += estimate_text_tokens(str(part.get("text", "")))
                    elif kind == "image_url":
                        total += IMAGE_TOKENS
                        images = True
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    total += estimate_text_tokens(str(call.get("function", "")))
    tools = body.get("tools")
    if tools:
        total += estimate_text_tokens(str(tools))
    return total, images


def requested_output_tokens(body: dict[str, Any], default: int = 256) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) and value > 0 else default


def estimate_input_tokens(value: Any) -> int:
    """Embeddings input: a string, a list of strings, or token arrays (counted exactly)."""
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += estimate_text_tokens(item)
            elif isinstance(item, list):
                total += len(item)
            else:
                total += 1  # one token id
        return total
    return 0
