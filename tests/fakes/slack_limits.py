"""What real Slack refuses in a message, so the fake refuses it too (Block Kit and message limits).

Limits from Slack's Block Kit reference: section text 3,000 and 10 fields of 2,000; context 10 elements
of 3,000; header plain_text 150; 50 blocks per message; text objects need at least one character. A
message's `text` over 40,000 characters is refused with `msg_too_long`. Only the block types and fields
the bot uses are modelled; anything else is refused, as an unknown block type would be.
"""

from __future__ import annotations

import json
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40_000
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
HEADER_TEXT = 150
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
VIEW_BLOCKS = 100
VIEW_TITLE = 24
MARKDOWN_TEXT = 12_000  # the markdown block: standard Markdown, 12,000 characters for all of a message's


def message_error(params: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Return (error, details) for a chat.postMessage / chat.update / response payload Slack refuses."""
    text = params.get("text")
    blocks = params.get("blocks")
    if isinstance(blocks, str):  # form-encoded calls carry blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format", ["blocks is not JSON"]
    if not blocks and not (isinstance(text, str) and text.strip()):
        return "no_text", []
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return "msg_too_long", [f"text is {len(text)} characters; the limit is {MAX_TEXT}"]
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        return "invalid_blocks_format", ["blocks must be an array"]
    problems = [] if len(blocks) <= MAX_BLOCKS else [f"{len(blocks)} blocks; at most {MAX_BLOCKS}"]
    for i, block in enumerate(blocks):
        problems += [f"[{i}] {p}" for p in _block_problems(block)]
    markdown = sum(
        len(str(b.get("text", ""))) for b in blocks if isinstance(b, dict) and b.get("type") == "markdown"
    )
    if markdown > MARKDOWN_TEXT:
        problems.append(f"markdown blocks hold {markdown} characters; at most {MARKDOWN_TEXT} in all")
    return ("invalid_blocks", problems) if problems else None


def _block_problems(block: Any) -> list[str]:
    if not isinstance(block, dict):
        return ["a block must be an object"]
    kind = block.get("type")
    if kind == "section":
        problems = []
        if "text" not in block and "fields" not in block:
            problems.append("section needs text or fields")
        if "text" in block:
            problems += _text_problems(block["text"], SECTION_TEXT, "text")
        fields = block.get("fields", [])
        if len(fields) > SECTION_FIELDS:
            problems.append(f"{len(fields)} fields; at most {SECTION_FIELDS}")
        for n, f in enumerate(fields):
            problems += _text_problems(f, FIELD_TEXT, f"fields[{n}]")
        return problems
    if kind == "context":
        elements = block.get("elements") or []
        problems = [] if 1 <= len(elements) <= CONTEXT_ELEMENTS else [f"{len(elements)} context elements"]
        for n, e in enumerate(elements):
            problems += _text_problems(e, CONTEXT_TEXT, f"elements[{n}]")
        return problems
    if kind == "header":
        return _text_problems(block.get("text"), HEADER_TEXT, "text", plain_only=True)
    if kind == "divider":
        return []
    if kind == "actions":
        return _actions_problems(block)
    if kind == "markdown":
        text = block.get("text")
        return [] if isinstance(text, str) and text.strip() else ["markdown: text must be a non-empty string"]
    return [f"unsupported block type {kind!r}"]


def _actions_problems(block: dict[str, Any]) -> list[str]:
    """An actions block: 1 to 25 buttons, each with a short label, value and action_id."""
    elements = block.get("elements") or []
    problems = [] if 1 <= len(elements) <= ACTIONS_ELEMENTS else [f"{len(elements)} actions elements"]
    if len(str(block.get("block_id", ""))) > BLOCK_ID:
        problems.append(f"block_id longer than {BLOCK_ID}")
    ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    if len(ids) != len(set(ids)):
        problems.append("action_id values must be unique within a block")
    for n, e in enumerate(elements):
        problems += [f"elements[{n}]: {p}" for p in _button_problems(e)]
    return problems


def _button_problems(e: Any) -> list[str]:
    if not isinstance(e, dict) or e.get("type") != "button":
        return ["only buttons are modelled"]
    problems = _text_problems(e.get("text"), BUTTON_TEXT, "text", plain_only=True)
    action_id, value = e.get("action_id"), e.get("value", "")
    if not isinstance(action_id, str) or not 1 <= len(action_id) <= ACTION_ID:
        problems.append(f"action_id must be 1 to {ACTION_ID} characters")
    if not isinstance(value, str) or len(value) > BUTTON_VALUE:
        problems.append(f"value must be at most {BUTTON_VALUE} characters")
    if e.get("style") not in (None, "primary", "danger"):
        problems.append("style must be primary or danger")
    return problems


def view_error(view: Any) -> tuple[str, list[str]] | None:
    """Return (error, details) for a views.open view Slack refuses (modals only)."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            return "invalid_arguments", ["view is not JSON"]
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "invalid_arguments", ["view must be a modal object"]
    problems = _text_problems(view.get("title"), VIEW_TITLE, "title", plain_only=True)
    if "close" in view:
        problems += _text_problems(view["close"], VIEW_TITLE, "close", plain_only=True)
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= VIEW_BLOCKS:
        problems.append(f"a modal needs 1 to {VIEW_BLOCKS} blocks")
        blocks = []
    for i, block in enumerate(blocks):
        problems += [f"[{i}] {p}" for p in _block_problems(block)]
    return ("invalid_arguments", problems) if problems else None


def _text_problems(obj: Any, limit: int, where: str, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: text must be at least 1 character"]
    if len(text) > limit:
        return [f"{where}: must be less than {limit + 1} characters (got {len(text)})"]
    return []
