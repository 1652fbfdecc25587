"""An AsyncOpenAI client whose chat.completions.create skips the SDK's request transform.

The SDK walks every request body against its TypedDict annotations before sending it (to rename aliased
keys and encode files). Chat Completions bodies have neither, and mirascope already builds them as plain
JSON values, so the walk only costs time: about 2 ms per call for a short conversation, more as the history
grows. Everything else stays the SDK's: the HTTP client, auth headers, errors and response parsing.
Streaming calls go through the SDK unchanged.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

_OPTION_KEYS = ("extra_headers", "extra_query", "extra_body", "timeout")


class _Completions:
    def __init__(self, client: AsyncOpenAI, sdk: Any) -> None:
        self._client = client
        self._sdk = sdk

    async def create(self, **kwargs: Any) -> Any:
        """Same contract as the SDK's create for non-streaming calls."""
        if kwargs.get("stream") or any(k in kwargs for k in _OPTION_KEYS):
            return await self._sdk.create(**kwargs)
        return await self._client.post(
            "/chat/completions",
            body=kwargs,
            cast_to=ChatCompletion,
            options={"security": {"bearer_auth": True}},
        )


class _Chat:
    def __init__(self, client: AsyncOpenAI, sdk: Any) -> None:
        self.completions = _Completions(client, sdk.completions)


class LeanAsyncOpenAI(AsyncOpenAI):
    """AsyncOpenAI with the lean chat.completions.create above."""

    @cached_property
    def chat(self) -> Any:
        return _Chat(self, super().chat)
