"""The app manifest users paste: it must grant what the adapter calls and subscribe to what it handles."""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "slack-manifest.yaml"


def list_items(text: str, key: str) -> set[str]:
    """The `- item` lines under `key:` (the manifest is simple YAML; no YAML library needed)."""
    block = re.search(rf"^(\s*){key}:\n((?:\1\s+-[^\n]*\n|\s*#[^\n]*\n)+)", text, re.MULTILINE)
    assert block, f"{key} missing"
    return {m.group(1) for m in re.finditer(r"-\s+(?:command:\s+)?([\w:./]+)", block.group(2))}


def test_manifest_grants_the_scopes_events_and_command_the_adapter_uses():
    text = MANIFEST.read_text()
    assert list_items(text, "bot") == {
        "app_mentions:read",
        "chat:write",
        "reactions:write",
        "channels:history",
        "groups:history",
        "im:history",
        "users:read",
        "channels:read",
        "groups:read",
        "files:write",
        "files:read",
        "commands",
    }
    assert list_items(text, "bot_events") == {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    assert list_items(text, "slash_commands") == {"/codebot"}
    assert re.search(r"^\s+socket_mode_enabled: true$", text, re.MULTILINE)
    assert re.search(r"^\s+messages_tab_enabled: true$", text, re.MULTILINE)  # DMs to the bot
