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

from core.wire import wire_messages

_OPTION_KEYS = ("extra_headers", "extra_query", "extra_body", "timeout")


class _Completions:
    def __init__(self, client: AsyncOpenAI, sdk: Any) -> None:
        self._client = client
        self._sdk = sdk

    async def create(self, **kwargs: Any) -> Any:
        """Same contract as the SDK's create for non-streaming calls."""
        kwargs = compatible_request(kwargs)
        if kwargs.get("stream") or any(k in kwargs for k in _OPTION_KEYS):
            return await self._sdk.create(**kwargs)
        return await self._client.post(
            "/chat/completions",
            body=kwargs,
            cast_to=ChatCompletion,
            options={"security": {"bearer_auth": True}},
        )


def compatible_request(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request as every OpenAI-compatible server reads it the way OpenAI does.

    History entries are made acceptable (see core.wire), and `tool_choice` is explicit whenever tools are
    offered: llama-cpp-python's server takes a missing one as "none" and never calls a tool.
    """
    messages = kwargs.get("messages")
    fixed = wire_messages(messages)
    if fixed is not messages:
        kwargs = {**kwargs, "messages": fixed}
    if kwargs.get("tools") and "tool_choice" not in kwargs:
        kwargs = {**kwargs, "tool_choice": "auto"}
    return kwargs


class _Chat:
    def __init__(self, client: AsyncOpenAI, sdk: Any) -> None:
        self.completions = _Completions(client, sdk.completions)


class LeanAsyncOpenAI(AsyncOpenAI):
    """AsyncOpenAI with the lean chat.completions.create above."""

    @cached_property
    def chat(self) -> Any:
        return _Chat(self, super().chat)
