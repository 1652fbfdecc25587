"""Stored history in a format codebot owns: a small versioned record per message.

A stored row is `{"v": 2, "role", "name", "parts", "replay"}`: parts are `{"text"}`, `{"thought"}`,
`{"call": {id, name, args}}` or `{"result": {id, name, value, error}}`, all plain JSON. mirascope's
message classes appear only at the edge (`_to_mirascope`, `_from_mirascope`), so a library upgrade
changes those two functions, never the rows. Rows written before this format (v1: mirascope's own field
names, no "v") are read into the same record, so old threads keep their history; rows are never
rewritten in place.

`replay` keeps the provider's own encoding of an assistant message (mirascope's raw_message) so a
restored history sends the same request bytes as the in-memory one. It is a hint, not the message:
mirascope reuses it only for the same provider and model, and otherwise encodes the parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mirascope import llm

from core.text import scrub_surrogates
from core.wire import repair_message

VERSION = 2

Role = Literal["system", "user", "assistant"]


class CodecError(ValueError):
    """A stored message cannot be decoded (corrupt row, unknown part, or a newer format)."""


@dataclass(frozen=True)
class Record:
    """One message as codebot stores it."""

    role: Role
    parts: tuple[dict[str, Any], ...]
    name: str | None = None
    replay: dict[str, Any] | None = None  # assistant only: provider, model, provider_model, raw


def encode_message(m: llm.Message) -> str:
    """Serialise one message to a JSON string (tool-call arguments made valid JSON first)."""
    rec = _from_mirascope(repair_message(m))
    doc = {"v": VERSION, "role": rec.role, "name": rec.name, "parts": list(rec.parts), "replay": rec.replay}
    # A lone surrogate from the model can be neither stored as UTF-8 nor sent back to it (the SDK
    # encodes requests as UTF-8), so the stored history carries U+FFFD instead, as the user saw it.
    return scrub_surrogates(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))


def decode_message(s: str) -> llm.Message:
    """Restore one message stored by `encode_message` (or by the v1 codec); CodecError for bad input."""
    try:
        doc = json.loads(s)
        if not isinstance(doc, dict):
            raise CodecError("a stored message is not a JSON object")
        rec = _read_v1(doc) if "v" not in doc else _read(doc)
        message = _to_mirascope(rec)
    except CodecError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CodecError(f"corrupt stored message: {exc}") from None
    # Rows stored before arguments were repaired on the way in are repaired on the way out.
    return repair_message(message) if rec.role == "assistant" else message


# ---- rows -> Record --------------------------------------------------------------------------------


def _read(doc: dict[str, Any]) -> Record:
    if doc["v"] != VERSION:
        raise CodecError(f"stored message format v{doc['v']} is not one this version reads")
    parts = tuple(_checked_part(p) for p in doc["parts"])
    return Record(_role(doc["role"]), parts, doc.get("name"), doc.get("replay"))


def _read_v1(doc: dict[str, Any]) -> Record:
    """Rows of the first codec: mirascope's field names (`content` parts with a `type`)."""
    role = _role(doc["role"])
    content = [doc["content"]] if role == "system" else doc["content"]
    parts = tuple(_v1_part(p) for p in content)
    if role != "assistant":
        return Record(role, parts, doc.get("name"))
    replay = _replay(doc["provider_id"], doc["model_id"], doc["provider_model_name"], doc["raw_message"])
    return Record(role, parts, doc.get("name"), replay)


def _replay(provider: Any, model: Any, provider_model: Any, raw: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, "provider_model": provider_model, "raw": raw}


def _v1_part(data: dict[str, Any]) -> dict[str, Any]:
    kind = data.get("type")
    if kind == "text":
        return {"text": data["text"]}
    if kind == "thought":
        return {"thought": data["thought"]}
    if kind == "tool_call":
        return {"call": {"id": data["id"], "name": data["name"], "args": data["args"]}}
    if kind == "tool_output":
        value = {"id": data["id"], "name": data["name"], "value": data["result"], "error": data.get("error")}
        return {"result": value}
    raise CodecError(f"unknown message part type {kind!r}")


def _role(value: Any) -> Role:
    if value not in ("system", "user", "assistant"):
        raise CodecError(f"unknown message role {value!r}")
    return value


def _checked_part(part: Any) -> dict[str, Any]:
    if not isinstance(part, dict) or len(part) != 1 or next(iter(part)) not in _KINDS:
        raise CodecError(f"unknown message part {str(part)[:80]!r}")
    return part


_KINDS = ("text", "thought", "call", "result")


# ---- the edge: Record <-> mirascope ----------------------------------------------------------------


def _from_mirascope(m: llm.Message) -> Record:
    if m.role == "system":
        return Record("system", (_part_of(m.content),))
    parts = tuple(_part_of(p) for p in m.content)
    if m.role == "user":
        return Record("user", parts, m.name)
    replay = _replay(m.provider_id, m.model_id, m.provider_model_name, m.raw_message)
    return Record("assistant", parts, m.name, replay)


def _part_of(part: Any) -> dict[str, Any]:
    if isinstance(part, llm.Text):
        return {"text": part.text}
    if isinstance(part, llm.Thought):
        return {"thought": part.thought}
    if isinstance(part, llm.ToolCall):
        return {"call": {"id": part.id, "name": part.name, "args": part.args}}
    if isinstance(part, llm.ToolOutput):
        # Exceptions are not JSON; the text is what the model saw.
        error = None if part.error is None else str(part.error)
        return {"result": {"id": part.id, "name": part.name, "value": part.result, "error": error}}
    raise CodecError(f"cannot store a message part of type {getattr(part, 'type', type(part).__name__)!r}")


def _to_mirascope(rec: Record) -> llm.Message:
    parts = [_mirascope_part(p) for p in rec.parts]
    if rec.role == "system":
        (text,) = parts
        return llm.SystemMessage(content=text)
    if rec.role == "user":
        return llm.UserMessage(content=parts, name=rec.name)
    replay = rec.replay or {}
    return llm.AssistantMessage(
        content=parts,
        name=rec.name,
        provider_id=replay.get("provider"),
        model_id=replay.get("model"),
        provider_model_name=replay.get("provider_model"),
        raw_message=replay.get("raw"),
    )


def _mirascope_part(part: dict[str, Any]) -> Any:
    ((kind, value),) = part.items()
    if kind == "text":
        return llm.Text(text=value)
    if kind == "thought":
        return llm.Thought(thought=value)
    if kind == "call":
        return llm.ToolCall(id=value["id"], name=value["name"], args=value["args"])
    error = value.get("error")
    return llm.ToolOutput(
        id=value["id"],
        name=value["name"],
        result=value["value"],
        error=None if error is None else llm.ToolExecutionError(error),
    )
