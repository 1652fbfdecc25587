"""Discord shards split across processes: CODEBOT_DISCORD_SHARDS, the fake's IDENTIFY and routing."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, DiscordShards, load_settings


@pytest.mark.parametrize(
    ("text", "ids", "count"),
    [("0,1/4", (0, 1), 4), ("3/4", (3,), 4), ("0-2,5/8", (0, 1, 2, 5), 8), (" 0 / 1 ", (0,), 1)],
)
def test_the_shards_setting_names_shard_ids_of_a_count(text: str, ids: tuple[int, ...], count: int) -> None:
    assert load_settings(None, CODEBOT_DISCORD_SHARDS=text).discord_shards == DiscordShards(ids, count)


def test_unset_shards_leave_sharding_to_discord_py() -> None:
    assert load_settings(None).discord_shards is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("4/4", "shard ids must be 0 to 3"),
        ("0,0/2", "names a shard twice"),
        ("1", "is not IDS/COUNT"),
        ("/4", "is not IDS/COUNT"),
        ("0/0", "shard count must be 1 to"),
        ("a/2", "'a' is not a shard number"),
        ("-1/2", "is not a shard number"),
        ("2-1/4", "shard ids must be 0 to 3"),
    ],
)
def test_a_bad_shards_setting_is_a_clear_config_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, CODEBOT_DISCORD_SHARDS=text)
    assert "CODEBOT_DISCORD_SHARDS" in str(err.value) and says in str(err.value)
    assert "0,1/4" in str(err.value)  # the message shows how to write it
