"""A PostgreSQL cluster of one test's own, which the test may stop and start (the shared one it must not).

Built from Debian's server binaries (`.ci/postgres.sh` installs them): initdb into a temporary
directory, trust authentication on 127.0.0.1 only, fsync off (a test's data need not survive a power
cut). As root the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops.process import free_port


def _bin_dir() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@dataclass
class PrivateCluster:
    bin: Path
    root: Path
    port: int
    as_user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://codebot@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str, timeout_s: float = 120, check: bool = True) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_user is not None:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        assert proc.returncode == 0 or not check, f"{args[0]} failed: {out.decode(errors='replace')}"

    async def start(self) -> None:
        """Start the server and wait until it accepts connections (pg_ctl -w)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"),
                        "-o", options, "-w", "-t", "100", "start")  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" drops every connection at once, as a restart does."""
        await self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "-t", "100", "stop")


@asynccontextmanager
async def private_cluster() -> AsyncIterator[PrivateCluster]:
    """Yield a running cluster of this test's own; stop it and remove its files afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("PostgreSQL's server binaries are missing in CI: .ci/run must source .ci/postgres.sh")
        pytest.skip("needs PostgreSQL's server binaries (apt-get install postgresql)")
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="codebot-pg-"))
    if as_user is not None:
        entry = pwd.getpwnam(as_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PrivateCluster(bin_dir, root, free_port(), as_user)
    try:
        await cluster._run("initdb", "-D", str(root / "data"), "-U", "codebot", "-A", "trust",
                           "-E", "UTF8", "--no-sync")  # fmt: skip
        await cluster.start()
        try:
            yield cluster
        finally:
            # Not checked: the test may have left it stopped.
            await cluster._run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "stop", check=False)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)
