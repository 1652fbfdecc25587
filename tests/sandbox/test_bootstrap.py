"""The supervisor starts from a code object compiled once, handed over in a memfd (sandbox/bootstrap.py)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxConfig, bootstrap, command

SOURCE = Path(bootstrap.__file__).with_name("supervisor.py").read_text()


def test_the_sandbox_interpreter_compiles_the_supervisor_once(cfg: SandboxConfig) -> None:
    code = bootstrap.compile_supervisor(cfg.python, SOURCE)
    assert code is not None and 0 < len(code) <= bootstrap.MAX_CODE_BYTES


def test_an_interpreter_that_cannot_compile_means_starting_from_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert bootstrap.compile_supervisor(tmp_path / "no-python", SOURCE) is None
    assert bootstrap.compile_supervisor(Path("/bin/false"), SOURCE) is None
    assert "cold starts are slower" in caplog.text


def test_the_command_line_carries_the_loader_with_code_and_the_source_without() -> None:
    layout = command.Layout(
        bwrap=None, python=Path("/usr/bin/python3"), site_dir=Path("/site"), fontlist=None, supervisor=SOURCE
    )
    assert SOURCE in command.python_args(layout, "/site", "", 5, code_fd=7)  # nothing precompiled
    compiled = dataclasses.replace(layout, supervisor_code=b"x" * 100)
    args = command.python_args(compiled, "/site", "", 5, code_fd=7)
    assert SOURCE not in args
    assert args[args.index("-c") + 1] == bootstrap.loader(7, 100)
    assert args[-3:] == ["/site", "", "5"]


def test_the_memfd_holds_the_code_and_is_not_inherited_by_default() -> None:
    fd = bootstrap.code_fd(b"abc" * 10_000)
    try:
        assert os.pread(fd, 100_000, 0) == b"abc" * 10_000
        assert not os.get_inheritable(fd)  # only pass_fds hands it to the sandbox
    finally:
        os.close(fd)


PROBE = """
import json, os
fds = {}
for name in os.listdir('/proc/self/fd'):
    try:
        fds[name] = os.readlink('/proc/self/fd/' + name)
    except OSError:
        pass
with open('/proc/1/cmdline', 'rb') as f:
    cmdline = f.read()
print(json.dumps({'fds': fds, 'cmdline_bytes': len(cmdline), 'source': b'def _child' in cmdline}))
"""


async def test_a_cold_sandbox_runs_the_precompiled_supervisor_and_never_sees_its_fd(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    async with open_sandbox(pool_size=0) as sb:
        result = await sb.run(PROBE)
    assert result.ok, result.to_json()
    seen = json.loads(result.stdout)
    # pid 1's command line is the few-line loader, not the supervisor's ~14 KB of source
    assert not seen["source"] and seen["cmdline_bytes"] < 2000
    assert not any("codebot-supervisor" in target for target in seen["fds"].values())
