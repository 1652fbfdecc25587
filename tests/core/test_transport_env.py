"""The aiohttp transport trusts the CAs and proxies the environment names, exactly as httpx would."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from core.aiohttp_transport import AiohttpTransport
from core.llm import LLMClient
from tests.core.conftest import make_settings
from tests.core.test_llm_errors import ask
from tests.fakes.openai_fake import FakeOpenAI

CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no public CA bundle trusts, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def trusted(_request: web.Request) -> web.Response:
    return web.Response(text="trusted")


@pytest.fixture
async def https_url(self_signed: tuple[Path, Path]) -> AsyncIterator[str]:
    cert, key = self_signed
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/", trusted)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def get(url: str) -> str:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        response = await client.get(url)
        return response.text


async def test_a_private_ca_is_refused_by_default(https_url: str, monkeypatch):
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(httpx.ConnectError):
        await get(https_url)


async def test_ssl_cert_file_adds_the_ca_it_names(https_url: str, self_signed, monkeypatch):
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed[0]))
    assert await get(https_url) == "trusted"


@pytest.fixture
def ca_dir(self_signed: tuple[Path, Path], tmp_path: Path) -> Path:
    """A CA directory in OpenSSL's hashed layout holding the self-signed certificate."""
    (tmp_path / "ca.pem").write_bytes(self_signed[0].read_bytes())
    subprocess.run(["openssl", "rehash", str(tmp_path)], check=True, capture_output=True, timeout=60)
    return tmp_path


async def test_ssl_cert_dir_adds_the_cas_it_holds(https_url: str, ca_dir: Path, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_dir))
    assert await get(https_url) == "trusted"


async def test_all_proxy_is_used_when_no_scheme_proxy_is_set(fake: FakeOpenAI, monkeypatch):
    # As in the HTTP_PROXY test: the LLM's host does not resolve, only the proxy (the fake) can answer.
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", fake.base_url.removesuffix("/v1"))
    fake.enqueue_text("via ALL_PROXY")
    client = LLMClient(make_settings("http://llm.invalid/v1"))
    try:
        assert await ask(client) == "via ALL_PROXY"
    finally:
        await client.aclose()
