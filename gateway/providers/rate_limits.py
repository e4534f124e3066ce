"""OpenAI's `x-ratelimit-*` answer headers, which OpenAI's SDKs and many clients pace themselves by.

The gateway writes them for its own key and route limits (`admit.rate_headers`) and, for
routes without limits of their own, passes on the answering provider's, read by the
pack's `rate_limits` under whatever names and time format that provider uses.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

RESET_PREFIX = "x-ratelimit-reset-"


def duration(seconds: float) -> str:
    """A reset time the way OpenAI writes it: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(math.ceil(seconds)), 60)
    return f"{minutes}m{rest}s"


def reset_duration(value: str, reset_format: str, now: float | None = None) -> str | None:
    """A provider's reset time as a `duration`; None when it cannot be read.

    `reset_format` is `seconds` (a number of seconds from now) or `rfc3339` (the moment
    the limit resets, as Anthropic sends it); a `duration` needs no conversion.
    """
    try:
        if reset_format == "seconds":
            seconds = float(value)
        else:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if moment.tzinfo is None:
                return None  # a moment without a zone could be any moment
            seconds = moment.timestamp() - (time.time() if now is None else now)
    except ValueError:
        return None
    if math.isnan(seconds):
        return None
    return duration(max(seconds, 0.0))
