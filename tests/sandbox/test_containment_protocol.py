"""Containment suite, part 4: the result protocol. Nothing the code writes changes how the host accounts
the run: the exit status is the host's own wait, every byte of stdout and stderr counts against the output
cap, and whatever comes from inside is parsed as untrusted. The abuse program digs through frames, gc,
inspect and /proc for a reporting secret or channel and writes forged reports and end marks everywhere.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from sandbox import Sandbox, supervisor

if __package__:  # tests/sandbox is a package
    from . import test_containment as kit
    from .test_cli import sandbox_cli
else:  # pytest put this directory on sys.path
    import test_containment as kit
    from test_cli import sandbox_cli

canary, cold, either = kit.canary, kit.cold, kit.either  # shared fixtures, found by name
FORGED_RESULT = base64.b64encode(b"'forged'").decode()


async def test_a_report_with_a_non_integer_exit_field_changes_nothing(either: Sandbox) -> None:
    result = await kit.run(either, kit.program("forge_report", mode="bad_exit"))
    assert result.ok and result.exit_code == 0, result.to_json()
    assert result.result == "'real'", result.to_json()
    assert FORGED_RESULT in result.stdout, "the forged report was not counted as the program's output"
    await kit.assert_run_left_nothing(either)


async def test_codebot_run_survives_a_forged_report(tmp_path: Path) -> None:
    script = tmp_path / "forge.py"
    script.write_text(kit.program("forge_report", mode="bad_exit"))
    code, out, err = await sandbox_cli("run", str(script), "--json")
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert code == 0 and data["exit_code"] == 0 and data["result"] == "'real'", data


async def test_a_forged_exit_status_is_not_believed(either: Sandbox) -> None:
    result = await kit.run(either, kit.program("forge_report", mode="fake_exit", real_exit=7))
    assert result.exit_code == 7 and not result.ok, result.to_json()
    assert result.result is None, "a forged result was believed"
    assert kit.report(result)["mode"] == "fake_exit", "output after the forged report was lost"
    await kit.assert_run_left_nothing(either)


async def test_a_forged_end_mark_does_not_stop_stderr_counting(either: Sandbox) -> None:
    limits = kit.LIMITS.replace(timeout_s=20.0, cpu_s=20.0)
    started = time.monotonic()
    result = await kit.run(either, kit.program("forge_report", mode="stderr_flood", flood_mb=64), limits)
    elapsed = time.monotonic() - started
    assert result.killed_reason == "output" and result.truncated, result.to_json()["killed_reason"]
    assert len(result.stdout) + len(result.stderr) <= limits.max_output_bytes
    assert elapsed < limits.timeout_s / 2, f"the flood ran {elapsed:.1f} s before it was stopped"
    await kit.assert_run_left_nothing(either)


async def test_writes_to_every_fd_and_every_proc_fd_change_nothing(either: Sandbox) -> None:
    result = await kit.run(either, kit.program("forge_report", mode="every_fd"))
    found = kit.report(result)
    assert result.ok and result.exit_code == 0 and result.result == "'real'", result.to_json()
    assert found["/proc/1/mem"].startswith("ERR"), "pid 1's memory is readable"
    assert not [p for p in found["opened"] if p.startswith("/proc/1/")], found["opened"]
    await kit.assert_run_left_nothing(either)


async def test_a_flood_of_empty_files_keeps_the_report_bounded(cold: Sandbox) -> None:
    code = "for i in range(20000):\n    open(f'f{i:05d}', 'w').close()\nresult = 'made'"
    limits = kit.LIMITS.replace(timeout_s=30.0, cpu_s=30.0, max_files=5)
    result = await kit.run(cold, code, limits)
    assert result.ok and result.result == "'made'", result.to_json()["error"]
    assert len(result.files) == limits.max_files
    assert limits.max_files < len(result.skipped_files) <= limits.max_files + supervisor.LIST_EXTRA
    await kit.assert_run_left_nothing(cold)
