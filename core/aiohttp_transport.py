"""An httpx transport that sends requests with aiohttp, for the openai SDK's async client.

httpx's own connection pool scans every pooled connection for every request. With a few hundred questions
in flight that scan, and anyio's socket layer under it, cost more CPU than the rest of a turn together.
aiohttp's pool does not, and aiohttp is already a dependency. The SDK keeps its own behaviour (headers,
errors, parsing): only the bytes travel differently.

Failures map onto httpx's exception types the way httpx itself reports them, so the SDK still tells a
timeout (APITimeoutError) from a refused connection (APIConnectionError).
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc


class _Body(httpx.AsyncByteStream):
    """The response body, read from aiohttp as httpx asks for it; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one aiohttp session, created on first use inside the event loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        # Built here, at start-up: loading the CA bundle reads a file, which must not happen on a request.
        # httpx's own choice of CAs: SSL_CERT_FILE, else SSL_CERT_DIR, else certifi's bundle.
        self._tls = httpx.create_ssl_context(trust_env=True)
        # HTTP(S)_PROXY, ALL_PROXY and NO_PROXY (either case), as httpx honours them.
        self._proxies = urllib.request.getproxies()
        self._proxy_for: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy for this URL's scheme and host, decided once per host (NO_PROXY applies)."""
        key = (url.scheme, url.host)
        if key not in self._proxy_for:
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
            bypass = proxy is None or urllib.request.proxy_bypass(url.host)
            self._proxy_for[key] = None if bypass else proxy
        return self._proxy_for[key]

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._tls),
                auto_decompress=False,  # httpx decodes, as it would for its own transport
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request; the body is streamed back through httpx."""
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=limits.get("connect"), sock_read=limits.get("read")
        )
        body = await request.aread()
        with _as_httpx_errors(request):
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                proxy=self._proxy(request.url),
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return httpx.Response(
            response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
