"""What every OpenAI-compatible server accepts back: one place that makes stored or re-sent messages valid.

A small model can emit tool-call `arguments` that are not JSON (a raw newline inside a string). The call is
refused correctly, but the assistant message keeps those arguments; re-sent verbatim in every later
request, it makes llama.cpp's server answer 500 for the rest of the thread. Likewise llama-cpp-python
refuses an assistant message whose `content` is null beside `tool_calls`. So arguments are always a JSON
object and content is always a string, both in the history we store and in the requests we send.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mirascope import llm

MAX_KEPT_ARGUMENT_CHARS = 4000  # what is kept of unusable arguments, so the model still sees its attempt
INVALID_KEY = "invalid_arguments"


def valid_arguments(args: Any) -> str:
    """`args` unchanged when it is a JSON object; otherwise a JSON object that quotes it."""
    text = args if isinstance(args, str) else ("" if args is None else str(args))
    if not text.strip():
        return "{}"
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return text
    return json.dumps({INVALID_KEY: text[:MAX_KEPT_ARGUMENT_CHARS]}, ensure_ascii=False)


def _fixed_call(call: Any) -> Any:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    args = function.get("arguments")
    fixed = valid_arguments(args)
    if fixed is args:
        return call
    return {**call, "function": {**function, "arguments": fixed}}


def _mapped(fn: Any, items: Any) -> Any:
    fixed = [fn(item) for item in items]  # `items` itself when nothing changed: callers test identity
    return items if all(a is b for a, b in zip(fixed, items, strict=True)) else fixed


def _with_valid_arguments(message: Any) -> Any:
    """An assistant message dict whose tool calls have JSON-object arguments (same object if they do)."""
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return message
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return message
    fixed = _mapped(_fixed_call, calls)
    return message if fixed is calls else {**message, "tool_calls": fixed}


def wire_message(message: Any) -> Any:
    """An assistant message dict as every server accepts it (the same object when nothing changes)."""
    out = _with_valid_arguments(message)
    if isinstance(out, dict) and out.get("role") == "assistant" and out.get("content") is None:
        out = {**out, "content": ""}  # null or absent beside tool_calls
    return out


def wire_messages(messages: Any) -> Any:
    """The request's messages with every assistant message made acceptable (see `wire_message`)."""
    return _mapped(wire_message, messages) if isinstance(messages, list) else messages


def repair_message(message: llm.Message) -> llm.Message:
    """A message whose tool calls carry valid JSON arguments, in its parts and in its raw encoding."""
    if message.role != "assistant":
        return message
    parts = _mapped(_repaired_part, message.content)
    raw = message.raw_message
    fixed_raw = _with_valid_arguments(raw)  # content stays as received: the wire fixes null
    if fixed_raw is raw and parts is message.content:
        return message
    return dataclasses.replace(message, content=parts, raw_message=fixed_raw)


def _repaired_part(part: Any) -> Any:
    if getattr(part, "type", "") != "tool_call":
        return part
    args = valid_arguments(part.args)
    return part if args == part.args else dataclasses.replace(part, args=args)
