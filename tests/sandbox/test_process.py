"""The sandbox's outer process: spawned with only the fds it is given, its exit seen through a pidfd."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import threading
from collections.abc import Callable

import pytest

from sandbox import Sandbox, process

if __package__:  # tests/sandbox is a package
    from .conftest import eventually
else:  # pytest put this directory on sys.path
    from conftest import eventually

COUNT_STDIN = "import sys; print(len(sys.stdin.buffer.read()))"


async def run(code: str, payload: bytes = b"", pass_fds: tuple[int, ...] = ()) -> tuple[int, bytes]:
    """Run `python -c code` with payload on stdin; return (returncode, stdout)."""
    out_r, out_w = os.pipe()
    try:
        proc = process.start(
            [sys.executable, "-c", code], stdout=out_w, stderr=2, env={}, cwd="/", pass_fds=pass_fds
        )
    finally:
        os.close(out_w)
    try:
        proc.stdin.write(payload)
        await proc.stdin.drain()
        proc.stdin.close()
        code_ = await asyncio.wait_for(proc.wait(), 60)
        return code_, await asyncio.to_thread(os.read, out_r, 1 << 20)
    finally:
        os.close(out_r)


async def test_stdin_larger_than_a_pipe_is_written_without_blocking_and_the_exit_is_seen() -> None:
    code, out = await run(COUNT_STDIN + "; raise SystemExit(3)", b"x" * (4 << 20))
    assert (code, out.strip()) == (3, b"4194304")


async def test_pieces_written_one_after_another_arrive_whole_and_in_order() -> None:
    out_r, out_w = os.pipe()
    code = "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"
    proc = process.start([sys.executable, "-c", code], stdout=out_w, stderr=2, env={}, cwd="/", pass_fds=())
    os.close(out_w)
    pieces = [b"head\n", b"", bytes(range(256)) * 5000, b"tail"]
    for piece in pieces:
        proc.stdin.write(piece)
    await proc.stdin.drain()
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    out = await asyncio.to_thread(os.read, out_r, 1000)
    os.close(out_r)
    assert out.strip().decode() == hashlib.sha256(b"".join(pieces)).hexdigest()


async def test_a_signal_death_reads_as_minus_the_signal() -> None:
    code, _ = await run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert code == -signal.SIGKILL


async def test_only_the_passed_fds_reach_the_child() -> None:
    kept_r, kept_w = os.pipe()
    other_r, other_w = os.pipe()
    os.set_inheritable(other_w, True)  # inheritable, but not passed: still closed in the child
    try:
        probe = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')"
        probe += f" if int(f) in ({kept_w}, {other_w})))"
        code, out = await run(probe, pass_fds=(kept_w,))
    finally:
        for fd in (kept_r, kept_w, other_r, other_w):
            os.close(fd)
    assert code == 0 and out.strip() == f"[{kept_w}]".encode()


async def test_writing_to_a_child_that_closed_its_stdin_is_a_broken_pipe() -> None:
    out_r, out_w = os.pipe()
    proc = process.start(
        [sys.executable, "-c", "import os; os.close(0); input"],
        stdout=out_w,
        stderr=2,
        env={},
        cwd="/",
        pass_fds=(),
    )
    os.close(out_w)
    os.close(out_r)
    await proc.wait()
    proc.stdin.write(b"x" * 100_000)
    with pytest.raises(BrokenPipeError):
        await proc.stdin.drain()
    proc.stdin.close()


async def test_without_pidfds_a_thread_waits_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    def old_kernel(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", old_kernel)  # what Linux before 5.3 answers
    code, out = await run(COUNT_STDIN, b"abc")
    assert (code, out.strip()) == (0, b"3")


def _watcher_threads() -> list[str]:
    # asyncio's ThreadedChildWatcher (3.11) names its per-process threads asyncio-waitpid-N
    return [
        t.name for t in threading.enumerate() if t.name.startswith(("asyncio-waitpid-", "sandbox-reaper"))
    ]


async def test_idle_warm_sandboxes_hold_no_thread_of_the_bot(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=2) as sb:
        assert sb.pool is not None
        assert await eventually(lambda: sb.pool is not None and sb.pool.ready == 2, 60.0)
        assert _watcher_threads() == []
        result = await sb.run("print(1)")
        assert result.ok and result.stdout == "1\n"
