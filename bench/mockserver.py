"""The mock upstream: nginx with inlined answers, rendered into a temporary prefix.

nginx answers a request in a few microseconds of CPU, so whatever latency and cost the
benchmark sees above "direct to mock" belongs to the server under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from string import Template

import deps
import procs

TEMPLATE = Path(__file__).parent / "mock" / "nginx.conf.in"
STREAM_CHUNKS = 20
CHUNK_GAP_S = 0.010
WORDS = "The quick brown fox jumps over the lazy dog and keeps running far away".split()


def _openai_events() -> list[str]:
    """20 chat.completion.chunk events; the last carries finish_reason and usage."""
    events = []
    for index in range(STREAM_CHUNKS):
        delta: dict[str, str] = {"content": WORDS[index % len(WORDS)] + " "}
        if index == 0:
            delta = {"role": "assistant", "content": ""}
        last = index == STREAM_CHUNKS - 1
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "delta": {} if last else delta,
                 "finish_reason": "stop" if last else None}
            ],
        }
        if last:
            chunk["usage"] = {"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}
        text = f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
        if last:
            text += "data: [DONE]\n\n"
        events.append(text)
    return events


def _sse(event: str, data: dict[str, object]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _anthropic_events() -> list[str]:
    """Anthropic's Messages event sequence, cut into 20 paced writes."""
    deltas = STREAM_CHUNKS - 4
    message = {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events = [
        _sse("message_start", {"type": "message_start", "message": message}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
    ]
    for index in range(deltas):
        events.append(_sse("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": WORDS[index % len(WORDS)] + " "}}))
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        _sse("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": deltas}})
        + _sse("message_stop", {"type": "message_stop"}))
    return events


def _echo_block(events: list[str]) -> str:
    """nginx echo directives: write, flush, sleep 10 ms, ... (no sleep after the last)."""
    lines = []
    for index, text in enumerate(events):
        quoted = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        lines.append(f"            echo -n '{quoted}';")
        lines.append("            echo_flush;")
        if index < len(events) - 1:
            lines.append(f"            echo_sleep {CHUNK_GAP_S};")
    return "\n".join(lines)


def render(prefix: Path, port: int) -> Path:
    """Write nginx.conf for this run into prefix and return its path."""
    module = deps.echo_module_path()
    if module is None:
        raise RuntimeError("nginx echo module missing; deps.ensure_tools() installs it")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    text = Template(TEMPLATE.read_text()).substitute(
        PREFIX=str(prefix), PORT=port, ECHO_MODULE=str(module),
        OPENAI_STREAM=_echo_block(_openai_events()),
        ANTHROPIC_STREAM=_echo_block(_anthropic_events()),
    )
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def start(workdir: Path, cores: set[int]) -> tuple[procs.Proc, str]:
    """Run the mock as the current user (no daemon, one process); return it and its URL."""
    prefix = workdir / "mock"
    prefix.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    conf = render(prefix, port)
    nginx = shutil.which("nginx") or "nginx"
    argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = procs.spawn("mock", argv, cores, workdir)
    url = f"http://127.0.0.1:{port}"
    procs.wait_http_ok(proc, url + "/health", timeout=10)
    return proc, url
