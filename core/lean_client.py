"""An AsyncOpenAI client whose chat.completions.create sends mirascope's JSON through `extra_body`.

The SDK walks every request body against its TypedDict annotations before sending it (to rename aliased
keys and encode files). Chat Completions messages and tools have neither, and mirascope already builds
them as plain JSON values, so the walk only costs time: about 2 ms per call for a short conversation,
more as the history grows. `extra_body` is the SDK's documented pass-through: what it holds is merged
into the body as given, after the walk, and takes precedence over the typed arguments. So the bulky
fields travel there and everything else stays the SDK's own path: auth, retries, errors, parsing,
streaming, `with_raw_response`.

On the way back, each streamed chunk is parsed by pydantic's compiled validator instead of the SDK's
lenient construct, which walks the model's annotations in Python: about 90 µs a chunk against 10, on the
event loop, for every token a real model streams. The validator is strict, so it takes only chunks
already of the model's exact shape, where both build the same object; anything else (a server's own
finish_reason, a number sent as a string) takes the SDK's path as before.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import httpx
import pydantic
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from core.wire import wire_messages

# Plain JSON from mirascope, sent as given; `messages` is required by create(), so an empty placeholder
# stays among the typed arguments (extra_body's value replaces it in the body).
_PASS_THROUGH = ("messages", "tools")


class _Proxy:
    def __init__(self, sdk: Any) -> None:
        self._sdk = sdk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)  # with_raw_response, with_streaming_response, parse, ...


class _Completions(_Proxy):
    """The SDK's completions resource, with the request made compatible and lean on the way in."""

    async def create(self, **kwargs: Any) -> Any:
        """Same contract as the SDK's create."""
        return await self._sdk.create(**lean_request(compatible_request(kwargs)))


def lean_request(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Move the already-JSON fields into extra_body, where the SDK does not walk them."""
    moved = {key: kwargs[key] for key in _PASS_THROUGH if key in kwargs}
    if not moved:
        return kwargs
    typed = {key: value for key, value in kwargs.items() if key not in _PASS_THROUGH}
    # A caller's own extra_body still wins, as it would with the bare SDK.
    return {**typed, "messages": [], "extra_body": {**moved, **(kwargs.get("extra_body") or {})}}


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


class _Chat(_Proxy):
    def __init__(self, sdk: Any) -> None:
        super().__init__(sdk)
        self.completions = _Completions(sdk.completions)


class LeanAsyncOpenAI(AsyncOpenAI):
    """AsyncOpenAI with the lean chat.completions.create above."""

    @cached_property
    def chat(self) -> Any:
        return _Chat(super().chat)

    def _process_response_data(self, *, data: object, cast_to: Any, response: httpx.Response) -> Any:
        if cast_to is ChatCompletionChunk and isinstance(data, dict):
            try:
                return ChatCompletionChunk.model_validate(data, strict=True)  # strict: nothing coerced
            except pydantic.ValidationError:
                pass  # what the validator refuses, the SDK's lenient construct takes, as before
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)
