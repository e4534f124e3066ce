"""What the fake native upstreams answer, decided once for all of them.

Each fake speaks one provider's wire format, but what it says is the same script:
a plain question gets `<Provider> <model>: <question>`; a request offering tools gets a
short text and one call per offered tool (at most two, so indexes are exercised); a
request whose last message is a tool result gets a text quoting that result. Faults are
chosen by the model name, as for the OpenAI fake:

  fail-429*  rate limited      fail-500*  server error      overloaded*  provider-specific overload
  context*   prompt too long   garbage*   200 that is not JSON   missing*  200 JSON missing fields
  midstream* a stream that sends an error event after some content
  cut*       a stream that stops before its last event
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Script:
    text: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    prompt_tokens: int = 11
    completion_tokens: int = 7


def script_for(provider: str, model: str, question: str, tool_names: list[str], tool_result: str | None) -> Script:
    if tool_result is not None:
        return Script(f"The tool said {tool_result}")
    if tool_names:
        return Script("Let me check.", [(name, {"query": question, "n": i}) for i, name in enumerate(tool_names[:2])])
    return Script(f"{provider} {model}: {question}")


def words(text: str) -> list[str]:
    pieces = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]
