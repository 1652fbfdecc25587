"""The Sandbox API through the real sandbox: outcomes as values, limits, files, isolation checks."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import RunLimits, Sandbox, SandboxConfig, SandboxUnavailable, seccomp
from tests.sandbox.conftest import (
    daemon_code,
    eventually,
    expected_isolation,
    host_uids,
    processes_with,
    wait_gone,
)

FAST = RunLimits(timeout_s=5.0, cpu_s=5.0)


async def test_print_and_result_variable_come_back(cold: Sandbox) -> None:
    r = await cold.run("print('hello', 6 * 7)\nresult = {'answer': 42}")
    assert r.stdout == "hello 42\n"
    assert r.result == "{'answer': 42}"
    isolation = expected_isolation()
    assert (r.ok, r.exit_code, r.error, r.killed_reason, r.isolation) == (True, 0, None, None, isolation)
    assert cold.isolation == isolation


async def test_stderr_is_kept_apart_from_stdout(cold: Sandbox) -> None:
    r = await cold.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


async def test_exception_gives_error_with_user_traceback_only(cold: Sandbox) -> None:
    r = await cold.run("def f():\n    return 1 / 0\n\nprint('before')\nf()\n")
    assert r.stdout == "before\n"
    assert r.exit_code == 1 and not r.ok
    assert r.error is not None and r.error.endswith("ZeroDivisionError: division by zero\n")
    assert 'File "<code>", line 5, in <module>' in r.error and "line 2, in f" in r.error
    assert "harness" not in r.error and "<string>" not in r.error  # the harness's own frames are gone


async def test_syntax_error_is_reported_not_raised(cold: Sandbox) -> None:
    r = await cold.run("def broken(:\n    pass")
    assert r.exit_code == 1 and r.error is not None
    assert "SyntaxError" in r.error and "line 1" in r.error


async def test_sys_exit_code_is_the_exit_code(cold: Sandbox) -> None:
    r = await cold.run("import sys\nprint('bye')\nsys.exit(3)")
    assert (r.stdout, r.exit_code, r.error, r.killed_reason) == ("bye\n", 3, None, None)


async def test_wall_timeout_kills_at_the_configured_value(cold: Sandbox) -> None:
    r = await cold.run("import time\nprint('start', flush=True)\ntime.sleep(60)", FAST.replace(timeout_s=1.0))
    assert r.timed_out and r.killed_reason == "timeout"
    assert r.exit_code == 137  # 128 + SIGKILL
    assert 1000 <= r.duration_ms < 1600
    assert r.stdout == "start\n"  # output before the kill is kept


async def test_cpu_limit_stops_a_busy_loop(cold: Sandbox) -> None:
    r = await cold.run("while True:\n    pass", RunLimits(timeout_s=10.0, cpu_s=1.0))
    assert r.killed_reason == "cpu" and r.exit_code == 152  # 128 + SIGXCPU
    # no wall-clock bound beyond "before the timeout": on a loaded machine 1 s of CPU takes longer
    assert not r.timed_out and r.duration_ms < 10_000


async def test_memory_limit_stops_a_big_allocation(cold: Sandbox) -> None:
    small = await cold.run("a = bytearray(32 * 1024 * 1024)\nprint(len(a))", FAST.replace(memory_mb=128))
    assert small.ok and small.stdout == "33554432\n"
    big = await cold.run("a = bytearray(400 * 1024 * 1024)\nprint('survived')", FAST.replace(memory_mb=128))
    assert big.killed_reason == "memory" and not big.ok
    assert "survived" not in big.stdout


async def test_output_flood_is_cut_at_the_cap_and_killed(cold: Sandbox) -> None:
    started = time.monotonic()
    r = await cold.run("while True:\n    print('x' * 1000)", FAST.replace(max_output_bytes=4096))
    assert r.truncated and r.killed_reason == "output"
    assert len(r.stdout) + len(r.stderr) <= 4096 and r.stdout.startswith("x" * 1000)
    assert time.monotonic() - started < 3  # killed on overflow, not at the timeout


async def test_output_just_under_the_cap_is_whole(cold: Sandbox) -> None:
    r = await cold.run("print('y' * 999)", FAST.replace(max_output_bytes=1000))
    assert r.ok and not r.truncated and r.stdout == "y" * 999 + "\n"


async def test_invalid_utf8_is_replaced_not_fatal(cold: Sandbox) -> None:
    code = (
        "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')\nsys.stderr.buffer.write(b'\\xc3(\\n')"
    )
    r = await cold.run(code)
    assert r.ok
    assert r.stdout == "ok \ufffd\ufffd end\n"
    assert r.stderr.startswith("\ufffd(")


async def test_printed_fake_trailer_cannot_forge_the_result(cold: Sandbox) -> None:
    fake = "\\x00\\x1ecodebot-" + "0" * 32 + "\\x1e"
    r = await cold.run(f"import sys\nsys.stdout.write('{fake}MA== - - -\\n')\nresult = 'real'")
    assert r.result == "'real'" and r.ok
    assert "codebot-" + "0" * 32 in r.stdout  # shown as the program's own output


async def test_forked_child_does_not_disturb_the_result(cold: Sandbox) -> None:
    code = (
        "import os\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\nresult = 'parent' if pid else 'child'"
    )
    r = await cold.run(code)
    assert r.ok and r.result == "'parent'"


async def test_files_and_a_matplotlib_png_come_back(cold: Sandbox) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.savefig('plot.png')\n"
        "open('data.csv', 'w').write('a,b\\n1,2\\n')\n"
        "open('we ird<name>.txt', 'w').write('w')\n"
    )
    r = await cold.run(code, RunLimits(timeout_s=20.0, cpu_s=20.0))
    assert r.ok, r.error
    files = {f.name: f for f in r.files}
    assert set(files) == {"plot.png", "data.csv", "we_ird_name_.txt"}
    assert files["plot.png"].data.startswith(b"\x89PNG\r\n\x1a\n") and files["plot.png"].is_image
    assert files["data.csv"].data == b"a,b\n1,2\n"


async def test_links_fifos_and_directories_are_skipped(cold: Sandbox) -> None:
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'link')\n"
        "os.mkfifo('fifo')\n"
        "os.mkdir('sub')\n"
        "open('real.txt', 'w').write('r')\n"
    )
    r = await cold.run(code)
    assert [f.name for f in r.files] == ["real.txt"]
    assert set(r.skipped_files) == {"link", "fifo", "sub"}


async def test_file_count_and_size_caps(cold: Sandbox) -> None:
    code = "for i in range(5):\n    open(f'f{i}.txt', 'w').write('x' * 100)\n"
    code += "open('big.bin', 'wb').write(b'b' * 5000)"
    r = await cold.run(code, FAST.replace(max_files=3, max_file_bytes=1000))
    assert [f.name for f in r.files] == ["f0.txt", "f1.txt", "f2.txt"]
    assert set(r.skipped_files) == {"big.bin", "f3.txt", "f4.txt"}


async def test_output_directory_total_size_is_bounded(cold: Sandbox) -> None:
    code = (
        "import errno\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(100):\n"
        "        with open(f'fill{i}', 'wb') as f:\n"
        "            f.write(b'z' * (1024 * 1024))\n"
        "        written += 1\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
        "result = written\n"
    )
    r = await cold.run(code, FAST.replace(output_dir_mb=4, max_files=200))
    assert r.stdout.strip() in ("ENOSPC", "EFBIG")
    assert r.result is not None and int(r.result) < 5


async def test_concurrency_cap_queues_runs(open_sandbox: Callable[..., Sandbox]) -> None:
    code = "import time\nstart = time.time()\ntime.sleep(0.4)\nresult = (start, time.time())"
    async with open_sandbox(pool_size=0, max_concurrent=2) as sb:
        results = await asyncio.gather(*(sb.run(code) for _ in range(4)))
    spans = [ast.literal_eval(r.result or "") for r in results]
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 2, f"more than 2 runs at once: {spans}"
    assert max(e for _, e in spans) - min(s for s, _ in spans) >= 0.8  # two waves


async def test_cancelled_run_leaves_no_process_behind(cold: Sandbox, token: str) -> None:
    code = daemon_code(token) + "import time\ntime.sleep(60)\n"
    task = asyncio.create_task(cold.run(code, FAST.replace(timeout_s=30.0)))
    assert await eventually(lambda: bool(processes_with(token))), "the daemon never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(token) == []


async def test_double_forked_daemon_dies_with_the_run(cold: Sandbox, token: str) -> None:
    r = await cold.run(daemon_code(token))
    assert r.ok and r.stdout == "started\n"
    assert await wait_gone(token) == []


async def test_invalid_limits_are_rejected_clearly(cold: Sandbox) -> None:
    with pytest.raises(ValueError, match="TIMEOUT_S"):
        await cold.run("print(1)", RunLimits(timeout_s=0))


async def test_missing_bwrap_refuses_with_a_clear_reason(cfg: SandboxConfig) -> None:
    broken = dataclasses.replace(cfg, bwrap="/nonexistent/bwrap", pool_size=0)
    with pytest.raises(SandboxUnavailable, match=r"/nonexistent/bwrap.*codebot setup"):
        async with Sandbox(broken):
            pass


async def test_unprepared_env_dir_refuses_and_says_run_setup(cfg: SandboxConfig, tmp_path: Path) -> None:
    broken = dataclasses.replace(cfg, env_dir=tmp_path / "never-set-up", pool_size=0)
    with pytest.raises(SandboxUnavailable, match="not prepared: run `codebot setup`"):
        async with Sandbox(broken):
            pass


async def test_weak_mode_is_used_only_by_name_and_says_so(cfg: SandboxConfig) -> None:
    weak = dataclasses.replace(
        cfg, bwrap="/nonexistent/bwrap", pool_size=0, weak_mode="no-userns-rlimits-only"
    )
    async with Sandbox(weak) as sb:
        r = await sb.run("print('weak')\nresult = 1")
    assert sb.cfg.weak_mode and r.isolation == "no-userns-rlimits-only"
    assert r.stdout == "weak\n" and r.result == "1"


async def test_run_before_start_is_a_programming_error(cfg: SandboxConfig) -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await Sandbox(cfg).run("print(1)")


async def test_code_runs_as_an_unprivileged_host_user(cold: Sandbox, token: str) -> None:
    # As root, a uid mapped inside a user namespace would still be root outside; it must be a real drop.
    task = asyncio.create_task(cold.run(daemon_code(token, double_fork=False) + "time.sleep(5)\n"))
    assert await eventually(lambda: bool(processes_with(token))), "the probe process never started"
    for pid in processes_with(token):
        uids = host_uids(pid)
        assert uids and 0 not in uids, uids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_seccomp_filter_blocks_ptrace_and_io_uring(cold: Sandbox) -> None:
    if not seccomp.supported():
        pytest.skip("the seccomp filter has a syscall table for x86_64 only")
    code = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def call(nr, *args):\n"
        "    return 'ok' if libc.syscall(nr, *args) != -1 else errno.errorcode[ctypes.get_errno()]\n"
        "status = open('/proc/self/status').read()\n"
        "result = (call(101, 16, 1, 0, 0), call(425, 1, 0), call(39), 'Seccomp:\\t2' in status)\n"
    )
    r = await cold.run(code)
    assert r.result == "('EPERM', 'EPERM', 'ok', True)", r.error  # ptrace(ATTACH, 1), io_uring_setup, getpid


async def test_multiprocessing_pool_works_inside(cold: Sandbox) -> None:
    code = (
        "import multiprocessing\n"
        "def square(x):\n"
        "    return x * x\n"
        "with multiprocessing.Pool(2) as pool:\n"
        "    result = pool.map(square, range(5))\n"
    )
    r = await cold.run(code)
    assert r.ok and r.result == "[0, 1, 4, 9, 16]", r.error


async def test_interpreter_that_cannot_start_refuses_with_the_reason(cfg: SandboxConfig) -> None:
    broken = dataclasses.replace(cfg, python=Path("/usr/bin/false"), pool_size=0)
    with pytest.raises(SandboxUnavailable, match=r"sandbox failed to start: .*exited before it was ready"):
        async with Sandbox(broken):
            pass


async def test_oversized_code_is_an_outcome_not_a_crash(cold: Sandbox) -> None:
    r = await cold.run("x = 1\n" * 200_000)
    assert not r.ok and r.error is not None and "limit is 1000000" in r.error
