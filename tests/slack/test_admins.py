"""Workspace admins from users.info, cached briefly, over real HTTP to the fake Slack."""

from __future__ import annotations

from bot.slack.admins import UserDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_admins_owners_and_members_are_told_apart_and_cached(slack, web_client):
    slack.admins.add("UADMIN")
    slack.names["UADMIN"] = "Ada"
    clock = Clock()
    users = UserDirectory(web_client, ttl_s=300, clock=clock)
    admin = await users.lookup("UADMIN")
    assert (admin.is_admin, admin.name) == (True, "Ada")
    assert (await users.lookup("U2")).is_admin is False
    await users.lookup("UADMIN")
    assert len(slack.calls_to("users.info")) == 2  # the second UADMIN lookup came from the cache
    slack.admins.discard("UADMIN")  # demoted: noticed once the entry expires
    clock.now += 301
    assert (await users.lookup("UADMIN")).is_admin is False
    assert len(slack.calls_to("users.info")) == 3


async def test_a_failed_lookup_is_not_an_admin_and_is_not_cached(slack, web_client):
    slack.admins.add("UADMIN")
    slack.fail_next("users.info", status=200, retry_after=None, error="user_not_found")
    users = UserDirectory(web_client)
    assert (await users.lookup("UADMIN")).is_admin is False
    assert (await users.lookup("UADMIN")).is_admin is True
