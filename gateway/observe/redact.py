"""Keeping secrets out of anything the gateway writes: error bodies, logs, admin output.

Upstreams sometimes echo the key they were sent ("Incorrect API key provided: sk-…"),
so every upstream text that reaches a client or a log passes through `redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Common shapes of provider keys, caught even when they are not ours.
_KEY_SHAPES = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?:Bearer|bearer)\s+[A-Za-z0-9._\-]{8,})"
)
MASK = "[redacted]"
SHORTEST_SECRET = 4  # shorter values are not masked by value: they would mask ordinary text
# Every key shape above starts with "sk-", "AIza" or "[Bb]earer"; checking for those first
# keeps the regex off the log and error lines that hold no key at all (nearly all of them).


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= SHORTEST_SECRET and secret in text:
            text = text.replace(secret, MASK)
    if "sk-" in text or "AIza" in text or "earer" in text:  # written out: cheaper than any() over a tuple
        text = _KEY_SHAPES.sub(MASK, text)
    return text
