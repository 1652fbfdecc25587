"""Kept Python state in the real sandbox: the names a run leaves are there in the next run of the thread."""

from __future__ import annotations

import pickle
from collections.abc import Callable

from sandbox import RunLimits, Sandbox
from sandbox.types import OutputFile, RunResult, RunWorkspace
from sandbox.workspace_box import MAGIC
from tests.sandbox.conftest import wait_pool_ready

SLOW = RunLimits(timeout_s=60, cpu_s=30, memory_mb=512)  # pandas on a loaded 2-core machine


def keep(state: bytes = b"", **changes: object) -> RunWorkspace:
    return RunWorkspace(state=state, keep_state=True, **changes)  # type: ignore[arg-type]


def reasons(result: RunResult) -> dict[str, str]:
    return dict(result.dropped)


async def test_variables_and_modules_from_one_run_are_there_in_the_next(cold: Sandbox) -> None:
    first = await cold.run("import math as m\nn = 41\nwords = {'a': [1, 2]}\ntext = 'hi'", workspace=keep())
    assert first.ok and first.state_saved, first.error
    assert [(k.name, k.type) for k in first.kept] == [
        ("m", "module"),
        ("n", "int"),
        ("words", "dict"),
        ("text", "str"),
    ]
    assert {k.name: k.summary for k in first.kept}["words"] == "{'a': [1, 2]}"
    second = await cold.run("result = (n + 1, words['a'], text, m.floor(m.pi))", workspace=keep(first.state))
    assert second.ok, second.error
    assert second.result == "(42, [1, 2], 'hi', 3)"


async def test_a_dataframe_built_from_a_file_is_used_again_without_the_file(cold: Sandbox) -> None:
    csv = OutputFile("sales.csv", b"month,sales\njan,10\nfeb,20\nmar,60\n")
    build = "import pandas as pd\ndf = pd.read_csv('sales.csv')\nimport numpy as np\narr = np.arange(4)"
    first = await cold.run(build, SLOW, workspace=keep(files=(csv,)))
    assert first.ok and first.state_saved, first.error
    kept = {k.name: k for k in first.kept}
    assert kept["df"].type == "DataFrame" and "shape (3, 2)" in kept["df"].summary
    assert "columns month, sales" in kept["df"].summary and len(kept["df"].summary) <= 200
    assert kept["arr"].type == "ndarray"
    follow = "import os\nresult = (float(df['sales'].mean()), int(arr.sum()), os.listdir('.'))"
    second = await cold.run(follow, SLOW, workspace=keep(first.state))
    assert second.ok, second.error
    assert second.result == "(30.0, 6, [])"


async def test_what_cannot_be_kept_is_dropped_with_a_reason(cold: Sandbox) -> None:
    code = (
        "import socket\n"
        "fh = open('/dev/null')\n"
        "gen = (i for i in range(3))\n"
        "sock = socket.socket()\n"
        "def helper(x):\n    return x\n"
        "class Point:\n    pass\n"
        "p = Point()\n"
        "fine = [1, 2, 3]\n"
    )
    got = await cold.run(code, workspace=keep())
    assert got.ok and got.state_saved, got.error
    why = reasons(got)
    assert {"fh", "gen", "sock", "helper", "Point", "p"} <= set(why)
    assert "TextIOWrapper" in why["fh"] and "generator" in why["gen"] and "socket" in why["sock"]
    assert "defined in the code" in why["helper"] and "defined in the code" in why["Point"]
    assert "instance of a class defined in the code" in why["p"]
    assert {k.name for k in got.kept} == {"socket", "fine"}
    assert all(len(reason) <= 200 for reason in why.values())


async def test_names_over_the_state_cap_are_dropped_and_the_rest_kept(cold: Sandbox) -> None:
    code = "big = b'x' * 200_000\nsmall = 7"
    got = await cold.run(code, workspace=keep(max_state_bytes=10_000))
    assert got.ok and got.state_saved, got.error
    assert [k.name for k in got.kept] == ["small"]
    assert "over the state cap of 10000 bytes" in reasons(got)["big"]
    assert len(got.state) <= 10_000


async def test_a_state_over_the_cap_is_not_sent_in(cold: Sandbox) -> None:
    first = await cold.run("big = b'x' * 50_000", workspace=keep())
    second = await cold.run("result = 'big' in dir()", workspace=keep(first.state, max_state_bytes=1000))
    assert second.ok and second.result == "False"
    assert "over the cap" in reasons(second)["(state)"]


async def test_a_corrupt_or_hostile_state_starts_a_fresh_namespace(cold: Sandbox) -> None:
    evil = pickle.dumps(int)[:-1]  # cut short: loading it raises
    raising = b"%s p %d\n%s" % (b"eA==", len(evil), evil)  # name "x"
    blobs = {
        b"\x80\x04garbage that is not a state": "(state)",
        MAGIC + b"eA== p 99999999\nshort": "(state)",
        MAGIC + raising: "x",
    }
    for blob, culprit in blobs.items():
        got = await cold.run(
            "y = 1\nresult = sorted(n for n in dir() if not n.startswith('_'))", workspace=keep(blob)
        )
        assert got.ok, got.error
        assert got.result == "['y']"
        assert "could not be restored" in reasons(got)[culprit]
        assert got.state_saved


async def test_a_run_that_raises_still_keeps_its_state(cold: Sandbox) -> None:
    got = await cold.run("x = 5\nraise ValueError('late')", workspace=keep())
    assert not got.ok and got.state_saved
    assert [k.name for k in got.kept] == ["x"]
    exited = await cold.run("z = 2\nraise SystemExit(3)", workspace=keep())
    assert exited.exit_code == 3 and [k.name for k in exited.kept] == ["z"]


async def test_a_killed_run_returns_no_state_and_says_so(cold: Sandbox) -> None:
    got = await cold.run("x = 1\nwhile True:\n    pass", RunLimits(timeout_s=1.0), workspace=keep())
    assert got.timed_out
    assert not got.state_saved and got.state == b"" and got.kept == ()
    assert "previous state is unchanged" in reasons(got)["(state)"]


async def test_without_keep_state_nothing_is_saved(cold: Sandbox) -> None:
    got = await cold.run("x = 1", workspace=RunWorkspace())
    assert got.ok and not got.state_saved and got.state == b"" and got.dropped == ()


async def test_state_is_restored_in_a_warm_slot(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=1, preimport=("numpy",)) as sb:
        await wait_pool_ready(sb, 1)
        first = await sb.run("import numpy as np\na = np.ones(3)", workspace=keep())
        await wait_pool_ready(sb, 1)
        second = await sb.run(
            "import sys\nresult = float(a.sum()), 'numpy' in sys.modules", workspace=keep(first.state)
        )
    assert first.state_saved, first.error
    assert second.ok and second.result == "(3.0, True)", second.error


async def test_a_large_state_survives_the_trip(cold: Sandbox) -> None:
    first = await cold.run("blob = bytes(range(256)) * 8192", SLOW, workspace=keep())  # 2 MB
    assert first.state_saved and len(first.state) > 2 * 1024 * 1024, first.dropped
    second = await cold.run("result = len(blob), blob[:3]", SLOW, workspace=keep(first.state))
    assert second.ok and second.result == "(2097152, b'\\x00\\x01\\x02')", second.error


async def test_odd_names_and_huge_values_do_not_lose_the_rest_of_the_state(cold: Sandbox) -> None:
    code = "globals()['not a name'] = 1\nglobals()[3] = 4\ntext = 'x' * 1_000_000\nkeep_me = 5"
    first = await cold.run(code, workspace=keep())
    assert first.ok and first.state_saved, (first.error, first.dropped)
    summaries = {k.name: k.summary for k in first.kept}
    assert set(summaries) == {"text", "keep_me"} and len(summaries["text"]) <= 200
    second = await cold.run("result = keep_me, len(text)", workspace=keep(first.state))
    assert second.ok and second.result == "(5, 1000000)", (second.error, second.dropped)


class _Exits:
    """Unpickling this calls os._exit(0): a state that would end every later run before its code."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        import os

        return (os._exit, (0,))


async def test_a_state_whose_restore_ends_the_run_is_cleared(cold: Sandbox) -> None:
    evil = pickle.dumps(_Exits())
    blob = MAGIC + b"eA== p %d\n" % len(evil) + evil  # x = <os._exit(0) on load>
    got = await cold.run("print('ran')", workspace=keep(blob))
    assert got.stdout == ""  # the code never ran
    assert got.state_saved and got.state == b""  # so the next run starts fresh instead of dying too
    assert "restoring the saved state ended the run" in reasons(got)["(state)"]
    after = await cold.run("print('ran')", workspace=keep(got.state))
    assert after.ok and after.stdout == "ran\n"
    plain = await cold.run("print('ran')", workspace=RunWorkspace(state=blob))  # keep_state off: untouched
    assert not plain.state_saved and plain.state == b""


async def test_result_is_each_runs_own_and_is_not_kept(cold: Sandbox) -> None:
    first = await cold.run("result = 30\nother = 1", workspace=keep())
    assert first.result == "30" and [k.name for k in first.kept] == ["other"]
    second = await cold.run("print(other)", workspace=keep(first.state))
    assert second.ok and second.stdout == "1\n" and second.result is None
