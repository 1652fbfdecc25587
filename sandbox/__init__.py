"""Isolated, limited, fast execution of untrusted Python (bubblewrap), usable on its own.

async with Sandbox(SandboxConfig.from_env()) as sb:
    result = await sb.run("print(1)")
"""

from sandbox.api import Sandbox
from sandbox.config import SandboxConfig
from sandbox.types import OutputFile, RunLimits, RunResult, SandboxUnavailable

__all__ = ["OutputFile", "RunLimits", "RunResult", "Sandbox", "SandboxConfig", "SandboxUnavailable"]
