"""LLM access: one client per process, provider set-up, and our own retry wrapper with a deadline.

Models are bound to a provider instance owned by the client instead of mirascope's global registry, so
several clients (tests against different fakes) never see each other's endpoint or key.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import openai
from mirascope import llm
from mirascope.llm.providers import BaseOpenAICompletionsProvider, OpenAIProvider
from mirascope.llm.providers.openai.completions._utils import (
    CompletionsModelFeatureInfo,
    feature_info_for_openai_model,
)
from mirascope.llm.providers.openai.model_id import OPENAI_KNOWN_MODELS
from openai import OpenAI

from core.aiohttp_transport import AiohttpTransport
from core.lean_client import LeanAsyncOpenAI
from core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Which = Literal["agent", "review"]

MAX_RETRY_AFTER_S = 60.0  # a server asking for longer than this is treated as "not now"


class LLMFailure(Exception):
    """An LLM call failed for good; `user_message` is short and safe to post in a thread."""

    def __init__(
        self, user_message: str, *, retryable: bool, status: int | None = None, kind: str = "error"
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.retryable = retryable  # the condition is transient: asking again later may work
        self.status = status
        # "rejected": the server will never accept this request as sent; "cut": the reply hit max_tokens;
        # "busy": overloaded, slow or unreachable; "error": anything else.
        self.kind = kind


@dataclass(frozen=True)
class _Failure:
    message: str
    retryable: bool
    kind: str = "error"


_RATE = _Failure("The language model is rate-limiting us; try again in a minute.", True, "busy")
_SERVER = _Failure("The language model service is having trouble; try again shortly.", True, "busy")
_TIMEOUT = _Failure("The language model did not answer in time; try again shortly.", True, "busy")
_CONNECT = _Failure("The language model could not be reached.", True, "busy")
_GARBLED = _Failure("The language model sent a reply the bot could not read.", True)
_AUTH = _Failure("The bot's API key was rejected; an operator must fix OPENAI_API_KEY.", False)
_NOT_FOUND = _Failure("The configured model does not exist there; an operator must fix CODEBOT_MODEL.", False)
_BAD_REQUEST = _Failure(
    "The language model rejected the request; asking again will not help (its reason is in the bot's log).",
    False,
    "rejected",
)
_NO_KEY = _Failure("The bot has no API key for the configured model; an operator must set one.", False)
_OTHER = _Failure("The language model returned an error.", False)
DEADLINE_MESSAGE = "This question took too long to answer; try again or ask something simpler."
CUT_MESSAGE = (
    "The model's reply was cut off at {setting}={limit} tokens, so it is not posted as an answer; "
    "ask for something shorter, or an operator can raise {setting}."
)
MAX_SERVER_TEXT = 300  # characters of a server's error text kept for the log

# A 500 whose text says the request itself is at fault (llama.cpp and llama-cpp-python answer 500 for a
# chat template or JSON parse failure): asking again with the same bytes can never succeed.
_PERMANENT_500 = re.compile(
    r"pars(e|ing)|template|jinja|invalid|json|schema|grammar|not supported|unsupported|must be|"
    r"expected|validation|unknown (field|parameter|argument)",
    re.IGNORECASE,
)
_SECRET = re.compile(r"(sk-[A-Za-z0-9_-]{6,}|Bearer\s+\S+|xox[a-z]-[A-Za-z0-9-]+)")


def classify(exc: llm.Error) -> _Failure:
    """Map a mirascope error to a user message and whether a retry makes sense."""
    table: tuple[tuple[type[llm.Error], _Failure], ...] = (
        (llm.RateLimitError, _RATE),
        (llm.ServerError, _SERVER),
        (llm.TimeoutError, _TIMEOUT),
        (llm.ConnectionError, _CONNECT),
        (llm.ResponseValidationError, _GARBLED),
        (llm.AuthenticationError, _AUTH),
        (llm.PermissionError, _AUTH),
        (llm.NotFoundError, _NOT_FOUND),
        (llm.BadRequestError, _BAD_REQUEST),
        (llm.FeatureNotSupportedError, _BAD_REQUEST),
        (llm.MissingAPIKeyError, _NO_KEY),
        (llm.NoRegisteredProviderError, _NOT_FOUND),
    )
    status = getattr(exc, "status_code", None)
    if status == 500 and _PERMANENT_500.search(server_text(exc)):
        return _BAD_REQUEST
    for kind, failure in table:
        if isinstance(exc, kind):
            return failure
    if isinstance(status, int) and status >= 500:
        return _SERVER
    return _OTHER


def server_text(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The server's own error text, bounded and with anything that looks like a secret removed."""
    original = getattr(exc, "original_exception", None) or exc.__cause__ or exc
    body = getattr(original, "body", None)
    text = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        text = message if isinstance(message, str) else json.dumps(body, default=str)
    elif isinstance(body, str):
        text = body
    text = text or getattr(original, "message", None) or str(original)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _SECRET.sub("[redacted]", text)
    text = " ".join(text.split())  # one log line, whatever the server sent
    return text[:MAX_SERVER_TEXT] + ("..." if len(text) > MAX_SERVER_TEXT else "")


def retry_after_s(exc: BaseException, now: float | None = None) -> float | None:
    """Return the delay a server asked for (Retry-After / retry-after-ms), if any."""
    response = getattr(getattr(exc, "original_exception", None), "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    for text, scale in ((headers.get("retry-after-ms"), 1000.0), (value, 1.0)):
        with contextlib.suppress(TypeError, ValueError):  # absent, or not a number
            return max(0.0, float(text) / scale)
    if value is None:
        return None
    try:  # the other form is an HTTP date
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


def _stream_failure(exc: Exception) -> _Failure:
    if isinstance(exc, llm.Error):
        return classify(exc)
    if isinstance(exc, json.JSONDecodeError):
        return _GARBLED
    if isinstance(exc, openai.APIStatusError) and exc.status_code < 500:
        return _BAD_REQUEST
    return _CONNECT  # the connection broke mid-stream: asking again may work


def usage_tokens(response: Any) -> int:
    """Total tokens a response reports (0 when the server sends no usage)."""
    usage = getattr(response, "usage", None)
    return int(usage.total_tokens) if usage is not None else 0


class CompatProvider(BaseOpenAICompletionsProvider):
    """Any OpenAI-compatible server (Ollama, vLLM, llama.cpp, proxies) over Chat Completions only.

    The id matches mirascope's completions provider so stored assistant messages keep reusing their raw
    form; the model name is everything after the first "/" so "openai/org/Qwen2.5" stays "org/Qwen2.5".
    """

    id = "openai:completions"
    default_scope = "openai/"
    api_key_env_var = "OPENAI_API_KEY"
    api_key_required = False
    provider_name = "OpenAI-compatible"

    def __init__(self, *, base_url: str, api_key: str | None, timeout_s: float) -> None:
        # Not calling super(): it reads os.environ and builds clients with SDK retries on.
        key = api_key or "not-needed"
        self.client = OpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0)
        http = async_http(timeout_s)
        self.async_client = LeanAsyncOpenAI(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0, http_client=http
        )
        load_resources(self.async_client, "chat")

    def _model_name(self, model_id: str) -> str:
        name = model_id.split("/", 1)[1] if "/" in model_id else model_id
        return name.removesuffix(":completions")

    def _model_feature_info(self, model_id: str) -> CompletionsModelFeatureInfo:
        # Real OpenAI names behind a proxy keep their known features; anything else is "unknown", which
        # keeps temperature/max_tokens instead of treating the model as a reasoning model.
        # JSON object mode is offered as well: the review falls back to it when json_schema is refused.
        name = self._model_name(model_id)
        if f"openai/{name}" in OPENAI_KNOWN_MODELS:
            return feature_info_for_openai_model(name)
        return CompletionsModelFeatureInfo(json_object_support=True)


def load_resources(client: Any, *names: str) -> None:
    """Import the SDK's resource modules now, while the bot starts. The client imports them on first use:
    `chat` is a quarter of a second of imports, which on the first question would hold the event loop,
    and with it every turn, ack and store call in flight."""
    for name in names:
        getattr(client, name)  # a cached property: built once, here


class BoundModel(llm.Model):
    """A model that always uses one provider instance instead of the global registry."""

    def __init__(self, model_id: str, provider: Any, **params: Any) -> None:
        super().__init__(model_id, **params)
        self._provider = provider

    @property
    def provider(self) -> Any:
        """Return the provider this model was built with."""
        return self._provider


def async_http(timeout_s: float) -> httpx.AsyncClient:
    """The HTTP client under the SDK's async client: httpx's interface over aiohttp's connection pool."""
    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout_s)


def _openai_provider(key: str, timeout_s: float) -> OpenAIProvider:
    """Build the normal openai provider (Responses API for OpenAI models) with SDK retries off."""
    provider = OpenAIProvider(api_key=key)
    for sub in (provider._completions_provider, provider._responses_provider):
        sub.client = sub.client.with_options(timeout=timeout_s, max_retries=0)
        sub.async_client = sub.async_client.with_options(
            timeout=timeout_s, max_retries=0, http_client=async_http(timeout_s)
        )
    load_resources(provider._completions_provider.async_client, "chat")
    load_resources(provider._responses_provider.async_client, "responses")
    provider.client = provider._completions_provider.client
    return provider


class LLMClient:
    """Owns the provider(s), the two models and the retry policy; built once from Settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        rng: random.Random | None = None,
    ) -> None:
        self._retries = settings.llm_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._rng = rng or random.Random()
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self._secrets = (key,) if key else ()
        # Bounded generations: a small local model can otherwise loop until the timeout, on every retry.
        self._limits: dict[Which, tuple[str, int]] = {
            "agent": ("CODEBOT_MAX_TOKENS", settings.max_tokens),
            "review": ("CODEBOT_REVIEW_MAX_TOKENS", settings.review_max_tokens),
        }
        params: dict[str, Any] = {"max_tokens": settings.max_tokens}
        if settings.temperature is not None:
            params["temperature"] = settings.temperature
        for name, model_id in (
            ("CODEBOT_MODEL", settings.model),
            ("CODEBOT_REVIEW_MODEL", settings.review_model),
        ):
            if model_id is not None and "/" not in model_id:
                raise ConfigError(f"{name} must look like 'provider/model-name', got {model_id!r}")
        self._provider: Any = None  # one provider (one HTTP connection pool) shared by both models
        self._models = {
            "agent": self._build(settings.model, settings, key, params),
            "review": self._build(
                settings.effective_review_model,
                settings,
                key,
                {"temperature": 0.0, "max_tokens": settings.review_max_tokens},
            ),
        }

    def _build(self, model_id: str, settings: Settings, key: str | None, params: dict[str, Any]) -> llm.Model:
        if not settings.openai_base_url and not model_id.startswith("openai/"):
            # Other prefixes (anthropic/, google/, ...) resolve through mirascope's own registry, which
            # reads that provider's key from the environment on first use.
            return llm.Model(model_id, **params)
        if self._provider is None:
            if settings.openai_base_url:
                self._provider = CompatProvider(
                    base_url=settings.openai_base_url, api_key=key, timeout_s=settings.llm_timeout_s
                )
            elif key:
                self._provider = _openai_provider(key, settings.llm_timeout_s)
            else:
                raise ConfigError(
                    "missing setting: OPENAI_API_KEY (needed for OpenAI models; or set OPENAI_BASE_URL "
                    "for a local OpenAI-compatible server)"
                )
        return BoundModel(model_id, self._provider, **params)

    def model(self, which: Which) -> llm.Model:
        """Return the model used for the agent loop or for safety review."""
        return self._models[which]

    async def call(self, fn: Callable[[], Awaitable[T]], *, deadline: float, which: Which = "agent") -> T:
        """Await `fn()`, retrying transient failures with jittered backoff, never past `deadline`.

        A reply cut off at max_tokens raises (kind "cut") instead of passing for a complete one.
        """
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LLMFailure(DEADLINE_MESSAGE, retryable=True, kind="busy")
            try:
                result = await asyncio.wait_for(fn(), remaining)
            except TimeoutError:
                raise LLMFailure(DEADLINE_MESSAGE, retryable=True, kind="busy") from None
            except (llm.Error, json.JSONDecodeError, httpx.TransportError, openai.APIError) as exc:
                # The SDK lets a 200 with a non-JSON body escape as a bare JSONDecodeError, and a stream
                # that breaks after its first chunk escapes mirascope's error mapping as the SDK's own.
                failure = _stream_failure(exc)
                status = getattr(exc, "status_code", None)
                log.warning(
                    "LLM call failed: %s (status %s, attempt %d, %s): %s",
                    type(exc).__name__,
                    status,
                    attempt + 1,
                    failure.kind,
                    server_text(exc, self._secrets),
                )
                delay = self._delay(exc, attempt)
                last = not failure.retryable or attempt >= self._retries
                if last or delay is None or time.monotonic() + delay >= deadline:
                    raise LLMFailure(
                        failure.message, retryable=failure.retryable, status=status, kind=failure.kind
                    ) from exc
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if getattr(result, "finish_reason", None) == llm.FinishReason.MAX_TOKENS:
                setting, limit = self._limits[which]
                log.warning("LLM reply cut off at %s=%d tokens", setting, limit)
                raise LLMFailure(
                    CUT_MESSAGE.format(setting=setting, limit=limit), retryable=False, kind="cut"
                )
            return result

    def _delay(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before the next attempt; None when the server asks for too long."""
        asked = retry_after_s(exc)
        if asked is not None:
            return None if asked > MAX_RETRY_AFTER_S else asked + self._rng.uniform(0, 0.1)
        ceiling = min(self._max_backoff_s, self._backoff_s * 2**attempt)
        return self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never zero, never in lockstep

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        provider, self._provider = self._provider, None
        if provider is None:
            return
        subs = [provider]
        if isinstance(provider, OpenAIProvider):
            subs = [provider._completions_provider, provider._responses_provider]
        for sub in subs:
            await sub.async_client.close()
            sub.client.close()
