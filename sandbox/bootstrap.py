"""Start the supervisor from a code object compiled once, not from source every sandbox compiles again.

Compiling supervisor.py costs every cold start 3-7 ms on a loaded 2-core machine (a third of a bare
`python3 -c`); unmarshalling the same code object costs under 0.1 ms. The code object is made once, at
start-up, by the sandbox's own interpreter (bytecode belongs to one interpreter version, so the bot's own
Python cannot make it), and each sandbox gets it in a memfd of its own: nothing is written to disk, and
the supervisor's first statement reads and closes the fd, before any code of the run exists. If the
compile fails, sandboxes start from the source as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)
COMPILE_TIMEOUT_S = 60.0  # once at start-up; a loaded machine must not fail it
MAX_CODE_BYTES = 1 << 20  # the supervisor's code object is ~25 KB
SUPERVISOR_FILENAME = "<supervisor>"
_COMPILE = (
    "import marshal,sys;sys.stdout.buffer.write(marshal.dumps("
    f"compile(sys.stdin.buffer.read(),{SUPERVISOR_FILENAME!r},'exec')))"
)
_FAILED = "cannot precompile the sandbox supervisor with %s (cold starts are slower): %s"


def compile_supervisor(python: Path, source: str) -> bytes | None:
    """Return the supervisor's code object marshalled by `python`, or None (then the source is used)."""
    argv = [str(python), "-I", "-S", "-B", "-c", _COMPILE]
    try:
        done = subprocess.run(
            argv,
            input=source.encode(),
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning(_FAILED, python, exc)
        return None
    if done.returncode != 0 or not 0 < len(done.stdout) <= MAX_CODE_BYTES:
        detail = done.stderr.decode("utf-8", "replace").strip()[-500:] or f"{len(done.stdout)} bytes"
        log.warning(_FAILED, python, detail)
        return None
    return done.stdout


def code_fd(code: bytes) -> int:
    """Return a fresh memfd holding code, positioned at 0 (the caller passes it on, then closes it)."""
    fd = os.memfd_create("codebot-supervisor", os.MFD_CLOEXEC)  # inheritable only via pass_fds
    try:
        view = memoryview(code)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def loader(fd: int, size: int) -> str:
    """Return the `python -c` text that runs the code object in fd (closed before the supervisor runs)."""
    return f"import marshal,os;c=marshal.loads(os.pread({fd},{size},0));os.close({fd});del marshal;exec(c)"
