"""A reply sink that records what the core sends to a thread (the adapter side of the boundary)."""

from __future__ import annotations

import asyncio

from core.types import AnswerReply, NoticeReply, Progress, Reply


class RecordingSink:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.replies: list[Reply] = []
        self.progress_states: list[Progress] = []
        self._delay_s = delay_s
        self.changed = asyncio.Event()

    async def progress(self, state: Progress, detail: str = "") -> None:
        self.progress_states.append(state)

    async def post(self, reply: Reply) -> None:
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        self.replies.append(reply)
        self.changed.set()

    def of(self, kind: type) -> list:
        return [r for r in self.replies if isinstance(r, kind)]

    @property
    def answers(self) -> list[str]:
        return [r.text for r in self.of(AnswerReply)]

    @property
    def notices(self) -> list[NoticeReply]:
        return self.of(NoticeReply)

    async def wait_for(self, kind: type, timeout: float = 10.0) -> Reply:
        async with asyncio.timeout(timeout):
            while True:
                found = self.of(kind)
                if found:
                    return found[-1]
                self.changed.clear()
                await self.changed.wait()
