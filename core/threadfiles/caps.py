"""The size caps of a thread's workspace, in bytes, from the workspace's (Slack/Discord) limits."""

from __future__ import annotations

from dataclasses import dataclass

from core.limits import EffectiveLimits

MiB = 1024 * 1024


@dataclass(frozen=True)
class ThreadCaps:
    file_bytes: int = 20 * MiB  # one attached file (limit `file_size`)
    files_bytes: int = 100 * MiB  # all the thread's files together (limit `thread_files`)
    state_bytes: int = 50 * MiB  # the kept Python state (limit `thread_state`)

    @classmethod
    def of(cls, limits: EffectiveLimits) -> ThreadCaps:
        return cls(limits.file_size_mb * MiB, limits.thread_files_mb * MiB, limits.thread_state_mb * MiB)

    @property
    def file_mb(self) -> int:
        return self.file_bytes // MiB

    @property
    def files_mb(self) -> int:
        return self.files_bytes // MiB

    @property
    def state_mb(self) -> int:
        return self.state_bytes // MiB
