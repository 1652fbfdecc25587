"""The environment of a codebot process a test starts: decided in one place, for every such test.

It inherits only PATH, HOME, LANG and this machine's CODEBOT_SANDBOX_* settings, so nothing else of the
developer's environment (a real token, an .env's values) reaches the process under test.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_INHERITED = ("PATH", "HOME", "LANG")


def process_env(tmp_path: Path, db: str = "bot.db", **settings: str) -> dict[str, str]:
    """The checkout under test on PYTHONPATH (not whichever copy is installed), a database under
    tmp_path, no warm pool (faster to start, nothing left behind); `settings` added last."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("CODEBOT_SANDBOX_")}
    env.update(PYTHONPATH=str(REPO), CODEBOT_DB=str(tmp_path / db), CODEBOT_SANDBOX_POOL_SIZE="0")
    env.update(settings)
    return env
