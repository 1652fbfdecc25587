"""The host side of a run's directory: only `out` belongs to the sandbox user."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from sandbox.hostfs import make_run_dir, remove_run_dir
from sandbox.locate import Identity


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership can only be handed to another uid as root")
def test_the_run_base_stays_the_bots_and_only_out_is_the_sandbox_users():
    nobody = pwd.getpwnam("nobody")
    run_dir = make_run_dir(Identity(nobody.pw_uid, nobody.pw_gid, drop=True))
    try:
        base, out = os.stat(run_dir.base), os.stat(run_dir.out)
        assert base.st_uid == 0 and stat.S_IMODE(base.st_mode) == 0o711  # searchable, not writable
        assert out.st_uid == nobody.pw_uid and stat.S_IMODE(out.st_mode) == 0o700
    finally:
        remove_run_dir(run_dir)
    assert not run_dir.base.exists()
