"""The scripted OpenAI-compatible fake, a real LLM client and the real sandbox (shared with tests/core)."""

from tests.core.conftest import client, fake, sandbox, sandbox_config  # noqa: F401
