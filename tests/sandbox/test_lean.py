"""The lean warm slot: code that needs no pre-imported package runs on a slot that imported nothing.

Such a slot's child exits in a fraction of the time a child of a numpy/matplotlib interpreter takes (the
page tables it inherits are small), and the supervisor reports only after that exit. Everything else
keeps running where its packages are already loaded.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import Sandbox, lean
from sandbox.types import RunWorkspace
from tests.sandbox.conftest import eventually

SEEN = "import sys\nresult = 'numpy' in sys.modules"
HEAVY = "import sys\nloaded = 'numpy' in sys.modules\nimport numpy\nresult = loaded"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("print(1)", True),
        ("import math\nprint(math.pi)", True),
        ("from math import sqrt", True),
        ("import os, sys, time as t", True),
        ("import numpy as np", False),
        ("import os, numpy", False),
        ("x = 1; import json", False),
        ("import builtins\nimport json\nimport os", False),  # every statement counts, not only the first
        ("import os, \\\n    numpy", False),
        ("import os\nimport sys\nfrom time import sleep", True),
        ("from . import sibling", False),
        ("from os.path import join", True),
        ("__import__('numpy')", False),
        ("import importlib", False),
        ("exec('import numpy')", False),
        ("print('import pandas')", False),  # a word in a string counts: slower, never wrong
        ("print(1)\n" + "#" * lean.MAX_SCAN_CHARS, False),
    ],
)
def test_only_code_importing_what_a_lean_slot_holds_is_lean(code: str, expected: bool) -> None:
    assert lean.is_lean(code) is expected


def test_a_lean_slot_exists_only_beside_a_pool_that_pre_imports() -> None:
    assert lean.slots(2, ("numpy",)) == 1
    assert lean.slots(0, ("numpy",)) == 0  # pool_size 0: every run starts cold
    assert lean.slots(2, ()) == 0  # the pool itself is lean


async def _ready(sb: Sandbox) -> None:
    pools = [p for p in (sb.pool, sb.lean_pool) if p is not None]
    assert len(pools) == 2, "expected a pre-imported pool and a lean slot"
    assert await eventually(lambda: all(p.ready >= 1 for p in pools), 60.0), "the pools never filled"


async def test_plain_code_runs_on_the_lean_slot_and_numpy_code_where_numpy_is_loaded(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    async with open_sandbox(pool_size=1, preimport=("numpy",)) as sb:
        await _ready(sb)
        assert sb.pool is not None and sb.lean_pool is not None
        plain = await sb.run(SEEN)
        assert plain.result == "False", plain.to_json()  # nothing pre-imported where it ran
        assert (sb.pool.ready, sb.lean_pool.ready) == (1, 0), "the plain run must take the lean slot"
        await _ready(sb)
        heavy = await sb.run(HEAVY)
        assert heavy.result == "True", heavy.to_json()  # numpy was already there
        assert sb.lean_pool.ready == 1, "numpy code must not take the lean slot"
        await _ready(sb)
        again = await sb.run("import os\nresult = os.path.exists('left.txt')\nopen('left.txt', 'w').close()")
        assert again.ok and again.result == "False", again.to_json()
        await _ready(sb)
        third = await sb.run("import os\nresult = os.path.exists('left.txt')")
        assert third.result == "False", "a lean slot was used twice"
        assert sb.lean_pool.spawned >= 3, sb.lean_pool.spawned


async def test_a_workspace_run_never_takes_the_lean_slot(open_sandbox: Callable[..., Sandbox]) -> None:
    """Restoring a kept state may unpickle numpy arrays: such runs go where numpy is loaded."""
    async with open_sandbox(pool_size=1, preimport=("numpy",)) as sb:
        await _ready(sb)
        assert sb.lean_pool is not None
        result = await sb.run(SEEN, workspace=RunWorkspace(keep_state=True))
        assert result.ok and result.result == "True", result.to_json()
        assert sb.lean_pool.ready == 1 and sb.lean_pool.spawned == 1
