"""The LLM client loads the SDK's code while the bot starts, not on the event loop at the first question."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.process_env import REPO

# A fresh interpreter: this one has long imported the SDK's resources through other tests.
PROBE = """
import json, sys
from core.llm import LLMClient
from core.settings import Settings
loaded = lambda: [m for m in ("openai.resources.chat", "openai.resources.responses") if m in sys.modules]
seen = {"before": loaded()}
LLMClient(Settings(_env_file=None, openai_base_url="http://127.0.0.1:9/v1", model="openai/test-model"))
seen["compatible server"] = loaded()
LLMClient(Settings(_env_file=None, openai_api_key="sk-test-not-a-real-key", model="openai/gpt-4o-mini"))
seen["openai"] = loaded()
print(json.dumps(seen))
"""


def test_the_sdk_resources_are_imported_when_the_client_is_built():
    # The SDK imports them on first use: a quarter of a second that held the loop, and with it every turn,
    # ack and store call in flight, when the first question arrived.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "before": [],  # importing codebot alone does not load them: the client must
        "compatible server": ["openai.resources.chat"],
        "openai": ["openai.resources.chat", "openai.resources.responses"],
    }
