"""JSON codec for mirascope messages: one message per JSON document, restored exactly.

mirascope 2.x has no serializer for its message dataclasses (and pydantic cannot build one), so this
codec names every field explicitly. The assistant's `raw_message` (the provider's own encoding) is kept
so a restored history produces the same request bytes as the in-memory one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mirascope import llm

from core.text import scrub_surrogates
from core.wire import repair_message

_PARTS: dict[str, type] = {
    "text": llm.Text,
    "thought": llm.Thought,
    "tool_call": llm.ToolCall,
    "tool_output": llm.ToolOutput,
}


class CodecError(ValueError):
    """A stored message cannot be decoded (corrupt row or an unsupported content part)."""


def _encode_part(part: Any) -> dict[str, Any]:
    kind = getattr(part, "type", None)
    if kind not in _PARTS:
        raise CodecError(f"cannot store a message part of type {kind!r}")
    data = {f.name: getattr(part, f.name) for f in dataclasses.fields(part)}
    if kind == "tool_output" and part.error is not None:
        data["error"] = str(part.error)  # exceptions are not JSON; the text is what the model saw
    return data


def _decode_part(data: dict[str, Any]) -> Any:
    data = dict(data)
    cls = _PARTS.get(data.get("type", ""))
    if cls is None:
        raise CodecError(f"unknown message part type {data.get('type')!r}")
    if data["type"] == "tool_output" and data.get("error") is not None:
        data["error"] = llm.ToolExecutionError(data["error"])
    return cls(**data)


def encode_message(m: llm.Message) -> str:
    """Serialise one message to a JSON string (tool-call arguments made valid JSON first)."""
    m = repair_message(m)
    if m.role == "system":
        doc: dict[str, Any] = {"role": "system", "content": _encode_part(m.content)}
    elif m.role == "user":
        doc = {"role": "user", "name": m.name, "content": [_encode_part(p) for p in m.content]}
    else:
        doc = {
            "role": "assistant",
            "name": m.name,
            "provider_id": m.provider_id,
            "model_id": m.model_id,
            "provider_model_name": m.provider_model_name,
            "raw_message": m.raw_message,
            "content": [_encode_part(p) for p in m.content],
        }
    # A lone surrogate from the model can be neither stored as UTF-8 nor sent back to it (the SDK
    # encodes requests as UTF-8), so the stored history carries U+FFFD instead, as the user saw it.
    return scrub_surrogates(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))


def decode_message(s: str) -> llm.Message:
    """Restore one message from `encode_message` output; raises CodecError for bad input."""
    try:
        doc = json.loads(s)
        role = doc["role"]
        if role == "system":
            return llm.SystemMessage(content=_decode_part(doc["content"]))
        content = [_decode_part(p) for p in doc["content"]]
        if role == "user":
            return llm.UserMessage(content=content, name=doc["name"])
        if role == "assistant":
            # Rows stored before arguments were repaired on the way in are repaired on the way out.
            return repair_message(
                llm.AssistantMessage(
                    content=content,
                    name=doc["name"],
                    provider_id=doc["provider_id"],
                    model_id=doc["model_id"],
                    provider_model_name=doc["provider_model_name"],
                    raw_message=doc["raw_message"],
                )
            )
    except CodecError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"corrupt stored message: {exc}") from None
    raise CodecError(f"unknown message role {role!r}")
