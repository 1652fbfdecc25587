"""A run's workspace in the real sandbox: the thread's files in its working directory, changed files out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from sandbox import RunLimits, Sandbox
from sandbox import workspace as host_workspace
from sandbox.types import OutputFile, RunWorkspace
from tests.sandbox.conftest import wait_pool_ready

CSV = b"month,sales\njan,10\nfeb,20\nmar,60\n"
MEAN = "import csv\nresult = sum(float(r['sales']) for r in csv.DictReader(open('sales.csv'))) / 3"


def files(**named: bytes) -> tuple[OutputFile, ...]:
    return tuple(OutputFile(name.replace("_dot_", "."), data) for name, data in named.items())


async def test_a_file_in_the_workspace_is_read_by_the_code(cold: Sandbox) -> None:
    got = await cold.run(MEAN, workspace=RunWorkspace(files=files(sales_dot_csv=CSV)))
    assert got.ok, got.error
    assert got.result == "30.0"
    assert got.files == ()  # the input came back unchanged: not returned, so not uploaded again


async def test_a_file_written_in_one_run_is_read_in_the_next(cold: Sandbox) -> None:
    first = await cold.run("open('notes.txt', 'w').write('from run 1')", workspace=RunWorkspace())
    assert [(f.name, f.data) for f in first.files] == [("notes.txt", b"from run 1")]
    second = await cold.run("result = open('notes.txt').read()", workspace=RunWorkspace(files=first.files))
    assert second.ok and second.result == "'from run 1'", second.error
    assert second.files == ()


async def test_only_created_or_changed_files_come_back_and_deleted_ones_are_named(cold: Sandbox) -> None:
    code = (
        "open('changed.txt', 'w').write('v2')\n"
        "open('same_size.txt', 'w').write('XX')\n"  # same size, other content: the hash tells
        "open('new.txt', 'w').write('new')\n"
        "import os; os.remove('gone.txt')\n"
    )
    ws = RunWorkspace(
        files=files(
            kept_dot_txt=b"kept",
            changed_dot_txt=b"v1 longer",
            same_size_dot_txt=b"ab",
            gone_dot_txt=b"bye",
        )
    )
    got = await cold.run(code, workspace=ws)
    assert got.ok, got.error
    back = {f.name: f.data for f in got.files}
    assert back == {"changed.txt": b"v2", "same_size.txt": b"XX", "new.txt": b"new"}
    assert got.deleted_files == ("gone.txt",)
    assert got.skipped_files == ()


async def test_unchanged_inputs_do_not_use_up_the_returned_file_caps(cold: Sandbox) -> None:
    limits = RunLimits(max_files=1, max_file_bytes=1024, max_files_total_bytes=1024)
    big = b"x" * 4096  # over max_file_bytes, yet it went in and is unchanged: neither returned nor skipped
    small = (OutputFile(f"f{i}.txt", b"%d" % i) for i in range(5))
    ws = RunWorkspace(files=(*files(big_dot_bin=big), *small))
    got = await cold.run("open('out.txt', 'w').write('o')", limits, workspace=ws)
    assert got.ok, got.error
    assert [f.name for f in got.files] == ["out.txt"] and got.skipped_files == ()


async def test_a_path_like_name_never_escapes_the_working_directory(cold: Sandbox) -> None:
    code = "import os\nresult = sorted(os.listdir('.')), os.path.exists('/tmp/x.csv')"
    bad = (*files(ok_dot_csv=b"1"), OutputFile("../../x.csv", b"evil"), OutputFile(".hidden", b"h"))
    got = await cold.run(code, workspace=RunWorkspace(files=bad))
    assert got.ok, got.error
    assert got.result == "(['ok.csv'], False)"
    assert {name for name, _ in got.unplaced} == {"../../x.csv", ".hidden"}


async def test_the_sandbox_refuses_a_bad_name_even_if_the_host_let_it_through(
    cold: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_workspace, "safe_name", lambda name: True)  # a host-side bug
    code = "import os\nresult = sorted(os.listdir('.')), os.path.exists('/tmp/x.csv')"
    bad = (OutputFile("../x.csv", b"evil"), OutputFile("a/b", b"evil"), *files(ok_dot_csv=b"1"))
    got = await cold.run(code, workspace=RunWorkspace(files=bad))
    assert got.ok, got.error
    assert got.result == "(['ok.csv'], False)"
    assert {name for name, _ in got.unplaced} == {"../x.csv", "a/b"}


async def test_files_over_the_disk_cap_fail_clearly_before_the_code_runs(cold: Sandbox) -> None:
    limits = RunLimits(output_dir_mb=1)
    ws = RunWorkspace(files=files(a_dot_bin=b"a" * (700 * 1024), b_dot_bin=b"b" * (700 * 1024)))
    got = await cold.run("print('ran')", limits, workspace=ws)
    assert not got.ok and got.stdout == ""
    assert got.error is not None and "output_dir_mb = 1 MB" in got.error


async def test_the_sandbox_itself_stops_files_that_do_not_fit_its_disk(
    cold: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_workspace, "MiB", 1 << 40)  # the host's own check misses it
    limits = RunLimits(output_dir_mb=1)
    ws = RunWorkspace(files=files(a_dot_bin=b"a" * (700 * 1024), b_dot_bin=b"b" * (700 * 1024)))
    got = await cold.run("print('ran')", limits, workspace=ws)
    assert not got.ok and got.stdout == ""
    assert got.error is not None and "do not fit in the working directory" in got.error


async def test_a_warm_slot_runs_a_workspace_and_two_workspaces_never_meet(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    see = "import os, sys\nresult = sorted(os.listdir('.')), 'secret' in dir(), 'numpy' in sys.modules"
    async with open_sandbox(pool_size=2, preimport=("numpy",)) as sb:
        await wait_pool_ready(sb, 2)
        first = RunWorkspace(files=files(one_dot_csv=b"1"), keep_state=True)
        one = await sb.run("secret = 'thread one'\n" + see, workspace=first)
        await wait_pool_ready(sb, 1)
        two = await sb.run(see, workspace=RunWorkspace(files=files(two_dot_csv=b"2"), keep_state=True))
    assert one.ok and two.ok, (one.error, two.error)
    assert one.result == "(['one.csv'], True, True)"  # numpy pre-imported: it ran in a warm slot
    assert two.result == "(['two.csv'], False, True)"
    assert "secret" not in {k.name for k in two.kept}


async def test_a_workspace_larger_than_a_pipe_arrives_whole(cold: Sandbox) -> None:
    data = bytes(range(256)) * (20 * 1024)  # 5 MB: past SHA_FROM, so the sha256 path compares it too
    code = "import hashlib\nresult = hashlib.sha256(open('big.bin', 'rb').read()).hexdigest()"
    ws = RunWorkspace(files=files(big_dot_bin=data, small_dot_txt=b"s"))
    got = await cold.run(code + "\nopen('small.txt', 'w').write('t')", RunLimits(timeout_s=60), workspace=ws)
    assert got.ok, got.error
    assert got.result == repr(hashlib.sha256(data).hexdigest())
    assert [(f.name, f.data) for f in got.files] == [("small.txt", b"t")]  # big.bin came back unchanged


async def test_a_workspace_works_in_weak_mode_too(open_sandbox: Callable[..., Sandbox]) -> None:
    weak = open_sandbox(bwrap="/nonexistent/bwrap", pool_size=0, weak_mode="no-userns-rlimits-only")
    async with weak as sb:
        ws = RunWorkspace(files=files(sales_dot_csv=CSV), keep_state=True)
        first = await sb.run(MEAN + "\nmean = result\nopen('out.txt', 'w').write('o')", workspace=ws)
        second = await sb.run("result = mean * 2", workspace=RunWorkspace(state=first.state, keep_state=True))
    assert first.isolation == "no-userns-rlimits-only"
    assert first.ok and first.result == "30.0" and [f.name for f in first.files] == ["out.txt"], first.error
    assert second.ok and second.result == "60.0", second.error
