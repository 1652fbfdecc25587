"""The agent core's fixtures, with the real sandbox."""

from tests.core.conftest import client, fake, sandbox, sandbox_config  # noqa: F401
