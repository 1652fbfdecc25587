"""What Discord refuses in a message body, so the fake refuses it too (HTTP 400, Discord's error shape).

Limits from Discord's API reference: content 2,000 characters; 10 embeds of title 256, description
4,096, 25 fields (name 256, value 1,024), footer 2,048, author name 256, 6,000 characters in all; an
empty message (no content, embeds or files) is 50006; thread names 1-100 characters; archive durations
60, 1440, 4320 or 10080 minutes; allowed_mentions.parse only "roles", "users", "everyone".
"""

from __future__ import annotations

from typing import Any

MAX_CONTENT = 2000
MAX_EMBEDS = 10
EMBED_TOTAL = 6000
EMBED_FIELDS = 25
EMBED_TEXT = {"title": 256, "description": 4096}
ARCHIVE_MINUTES = (60, 1440, 4320, 10080)
MENTION_PARSE = {"roles", "users", "everyone"}
MAX_ROWS = 5
ROW_ITEMS = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80


def form_errors(errors: dict[str, str]) -> dict[str, Any]:
    """Discord's 50035 body: {"code", "message", "errors": {field: {"_errors": [{code, message}]}}}."""
    nested = {
        field: {"_errors": [{"code": code, "message": message}]}
        for field, (code, message) in ((f, m.split(": ", 1)) for f, m in errors.items())
    }
    return {"message": "Invalid Form Body", "code": 50035, "errors": nested}


def message_problems(body: Any, n_files: int = 0) -> dict[str, str]:
    """Field -> "CODE: message" for every part of a message body Discord would refuse."""
    if not isinstance(body, dict):
        return {"_": "DICT_TYPE_CONVERT: Only dictionaries may be used in a DictType"}
    problems: dict[str, str] = {}
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        problems["content"] = "BASE_TYPE_STRING: Must be a string."
    elif content is not None and len(content) > MAX_CONTENT:
        problems["content"] = f"BASE_TYPE_MAX_LENGTH: Must be {MAX_CONTENT} or fewer in length."
    problems |= _embed_problems(body.get("embeds"))
    problems |= component_problems(body.get("components"))
    mentions = body.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse", []) if isinstance(mentions, dict) else None
        if not isinstance(parse, list) or not set(parse) <= MENTION_PARSE:
            problems["allowed_mentions.parse"] = "ENUM_TYPE_COERCE: Value is not a valid enum value."
    return problems


def is_empty(body: Any, n_files: int) -> bool:
    """Discord's 50006: nothing to show."""
    body = body if isinstance(body, dict) else {}
    return not (body.get("content") or body.get("embeds") or body.get("attachments") or n_files)


def _embed_problems(embeds: Any) -> dict[str, str]:
    if embeds is None:
        return {}
    if not isinstance(embeds, list):
        return {"embeds": "BASE_TYPE_LIST: Must be an array."}
    problems: dict[str, str] = {}
    if len(embeds) > MAX_EMBEDS:
        problems["embeds"] = f"BASE_TYPE_MAX_LENGTH: Must be {MAX_EMBEDS} or fewer in length."
    total = 0
    for i, e in enumerate(embeds):
        for key, limit in EMBED_TEXT.items():
            text = str(e.get(key) or "")
            total += len(text)
            if len(text) > limit:
                problems[f"embeds.{i}.{key}"] = f"BASE_TYPE_MAX_LENGTH: Must be {limit} or fewer in length."
        fields = e.get("fields") or []
        if len(fields) > EMBED_FIELDS:
            problems[f"embeds.{i}.fields"] = f"BASE_TYPE_MAX_LENGTH: Must be {EMBED_FIELDS} or fewer."
        for j, f in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = str(f.get(key) or "")
                total += len(text)
                if not text or len(text) > limit:
                    problems[f"embeds.{i}.fields.{j}.{key}"] = f"BASE_TYPE_BAD_LENGTH: Must be 1-{limit}."
        for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
            text = str((e.get(key) or {}).get(sub) or "")
            total += len(text)
            if len(text) > limit:
                problems[f"embeds.{i}.{key}.{sub}"] = f"BASE_TYPE_MAX_LENGTH: Must be {limit} or fewer."
    if total > EMBED_TOTAL:
        problems["embeds"] = f"MAX_EMBED_SIZE_EXCEEDED: Embed size exceeds maximum size of {EMBED_TOTAL}"
    return problems


def thread_problems(body: Any) -> dict[str, str]:
    """Problems with a start-thread body (name, auto_archive_duration)."""
    body = body if isinstance(body, dict) else {}
    problems: dict[str, str] = {}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        problems["name"] = "BASE_TYPE_BAD_LENGTH: Must be between 1 and 100 in length."
    archive = body.get("auto_archive_duration", 1440)
    if archive not in ARCHIVE_MINUTES:
        problems["auto_archive_duration"] = "BASE_TYPE_CHOICES: Value must be one of (60, 1440, 4320, 10080)."
    return problems


def component_problems(rows: Any) -> dict[str, str]:
    """Action rows of buttons: 5 rows of 5, custom_id 1-100 characters and unique, label up to 80."""
    if rows is None:
        return {}
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        return {"components": f"BASE_TYPE_MAX_LENGTH: Must be {MAX_ROWS} or fewer in length."}
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for r, row in enumerate(rows):
        items = row.get("components") if isinstance(row, dict) and row.get("type") == 1 else None
        if not isinstance(items, list) or not 1 <= len(items) <= ROW_ITEMS:
            problems[f"components.{r}"] = f"COMPONENT_LAYOUT_WIDTH_EXCEEDED: 1 to {ROW_ITEMS} items per row."
            continue
        for i, item in enumerate(items):
            where = f"components.{r}.components.{i}"
            problem = _button_problem(item, seen)
            if problem:
                problems[where] = problem
    return problems


def _button_problem(item: Any, seen: set[str]) -> str:
    if not isinstance(item, dict) or item.get("type") != 2:
        return "UNION_TYPE_CHOICES: only buttons are modelled."
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > BUTTON_LABEL):
        return f"BASE_TYPE_MAX_LENGTH: label must be {BUTTON_LABEL} or fewer in length."
    if item.get("style") == 5:
        return (
            ""
            if item.get("url") and "custom_id" not in item
            else "BUTTON_COMPONENT_INVALID_URL: link button."
        )
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID:
        return f"BASE_TYPE_BAD_LENGTH: custom_id must be between 1 and {CUSTOM_ID} in length."
    if custom_id in seen:
        return "COMPONENT_CUSTOM_ID_DUPLICATED: custom_id must be unique."
    seen.add(custom_id)
    return ""
