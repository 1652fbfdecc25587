"""A scripted OpenAI-compatible server (POST /v1/chat/completions) on 127.0.0.1 for tests and benches.

Agent answers and review verdicts come from two queues. A request counts as a review when it asks for
structured output: `response_format` json_schema or json_object, mirascope's forced formatted-output tool,
or JSON-only instructions in its text.

Like llama.cpp's server, it refuses (500) a history whose tool-call arguments are not a JSON object, and
like llama-cpp-python's an assistant `content: null` beside tool calls. Switches mirror other servers:
`refused_formats` (llama-cpp-python knows only text/json_object) and `missing_tool_choice_is_none`
(llama-cpp-python never calls a tool unless `tool_choice` says it may).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FORMAT_TOOL = "__mirascope_formatted_output_tool__"
JSON_ONLY_MARKERS = ("Respond only with valid JSON", "Reply with only a JSON object")


@dataclass(frozen=True)
class _Answer:
    status: int = 200
    message: dict[str, Any] | None = None  # assistant message (200 answers)
    finish: str = "stop"
    body: Any = None  # error body (non-200)
    raw: bytes | None = None  # sent verbatim (garbage)
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # streamed: drop the connection after this many text pieces


@dataclass(frozen=True)
class _Delay:
    seconds: float


@dataclass(frozen=True)
class _Verdict:
    content: str  # the JSON text of the verdict (or anything, to test validation failures)


class FakeOpenAI:
    """`async with FakeOpenAI() as fake:` then point OPENAI_BASE_URL at `fake.base_url`."""

    def __init__(self, *, seed: int = 0) -> None:
        self.default_text = "done"
        # Unscripted agent requests: run this code first, then answer default_text (load tests).
        self.auto_code: str | None = None
        self.latency: tuple[float, float] | None = None  # random seconds added to every request
        self.error_rate = 0.0  # share of requests answered with a 500, before the queues are read
        self.usage: tuple[int, int] | None = (11, 7)  # prompt, completion tokens; None omits usage
        # response_format types answered with a 500, as llama-cpp-python's server does for json_schema
        self.refused_formats: tuple[str, ...] = ()
        self.model_ids = ["fake"]  # what GET /v1/models lists
        self.missing_tool_choice_is_none = (
            False  # as llama-cpp-python's server: no tool_choice, no tool calls
        )
        # Streamed answers (`stream: true`) come in pieces of this many characters, this far apart.
        self.stream_piece_chars = 8
        self.stream_delay_s = 0.0
        self.stream_sent_at: list[float] = []  # monotonic time each streamed text piece was written
        # When the first piece of each agent text reply was "generated" (streamed or not), for benches.
        self.first_token_at: list[float] = []
        self.requests: list[dict[str, Any]] = []  # parsed bodies, in arrival order
        self.headers: list[dict[str, str]] = []  # request headers, parallel to `requests`
        self.raw_bodies: list[bytes] = []  # exact bytes received, parallel to `requests`
        self.kinds: list[str] = []  # "agent" or "review", parallel to `requests`
        self._agent: deque[_Answer | _Delay] = deque()
        self._review: deque[_Verdict | _Answer | _Delay] = deque()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ---- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # Cancel handlers of clients that gave up (timeouts), so shutdown never waits for a scripted delay.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- scripting: agent answers ---------------------------------------------------------------

    def enqueue_text(self, text: str, *, finish: str = "stop") -> None:
        """Answer the next agent request with plain assistant text ("length": cut at max_tokens)."""
        self._agent.append(_Answer(message={"role": "assistant", "content": text}, finish=finish))

    def enqueue_stream_cut(self, text: str, after_pieces: int) -> None:
        """Stream `text` but drop the connection after `after_pieces` pieces (a server dying mid-answer)."""
        self._agent.append(_Answer(message={"role": "assistant", "content": text}, cut_after=after_pieces))

    def enqueue_tool_call(self, code: str, call_id: str | None = None) -> str:
        """Answer with one execute_code call; returns the call id."""
        return self.enqueue_tool_calls(code, ids=[call_id] if call_id else None)[0]

    def enqueue_tool_call_with_text(self, text: str, code: str) -> str:
        """Answer with some words and then one execute_code call (a model thinking aloud)."""
        call_id = self.enqueue_tool_call(code)
        answer = self._agent.pop()
        assert isinstance(answer, _Answer) and answer.message is not None
        self._agent.append(_Answer(message={**answer.message, "content": text}, finish="tool_calls"))
        return call_id

    def enqueue_tool_calls(self, *codes: str, ids: list[str] | None = None) -> list[str]:
        """Answer with several execute_code calls in one assistant message."""
        calls = [("execute_code", json.dumps({"code": c})) for c in codes]
        return self._enqueue_calls(calls, ids)

    def enqueue_raw_tool_call(self, name: str, arguments: str, call_id: str | None = None) -> str:
        """Answer with a tool call of any name and any argument text (bad JSON, unknown tool)."""
        return self._enqueue_calls([(name, arguments)], [call_id] if call_id else None)[0]

    def enqueue_error(
        self, status: int, body: Any = None, retry_after: float | str | None = None, *, review: bool = False
    ) -> None:
        """Answer the next request with an HTTP error (JSON error body, optional Retry-After)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if body is None or isinstance(body, str):
            body = {
                "error": {
                    "message": body or f"fake error {status}",
                    "type": "fake",
                    "param": None,
                    "code": None,
                }
            }
        self._queue(review).append(_Answer(status=status, body=body, headers=headers))

    def enqueue_delay(self, seconds: float, *, review: bool = False) -> None:
        """Delay the next answer of that queue by `seconds`."""
        self._queue(review).append(_Delay(seconds))

    def enqueue_garbage(self, *, review: bool = False) -> None:
        """Answer the next request with 200 and a body that is not JSON."""
        self._queue(review).append(_Answer(raw=b'{"choices": [ this is not json'))

    # ---- scripting: review verdicts -------------------------------------------------------------

    def enqueue_verdict(self, allowed: bool, risk: str = "low", reasons: list[str] | None = None) -> None:
        """Answer the next review request with this verdict (unscripted reviews allow, risk low)."""
        self._review.append(
            _Verdict(json.dumps({"allowed": allowed, "risk": risk, "reasons": reasons or []}))
        )

    def enqueue_verdict_raw(self, content: str) -> None:
        """Answer the next review request with arbitrary text (a verdict that fails validation)."""
        self._review.append(_Verdict(content))

    # ---- inspection -----------------------------------------------------------------------------

    @property
    def agent_requests(self) -> list[dict[str, Any]]:
        """Bodies of the agent (non-review) requests, in order."""
        return [r for r, k in zip(self.requests, self.kinds, strict=True) if k == "agent"]

    @property
    def review_requests(self) -> list[dict[str, Any]]:
        """Bodies of the structured-output (review) requests, in order."""
        return [r for r, k in zip(self.requests, self.kinds, strict=True) if k == "review"]

    @property
    def pending(self) -> int:
        """Scripted answers not yet consumed (both queues)."""
        return len(self._agent) + len(self._review)

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        """Wait until at least `n` requests have arrived."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= n)

    # ---- server ---------------------------------------------------------------------------------

    def _queue(self, review: bool) -> deque[Any]:
        return self._review if review else self._agent

    def _enqueue_calls(self, calls: list[tuple[str, str]], ids: list[str] | None) -> list[str]:
        ids = ids or [f"call_{next(self._ids)}" for _ in calls]
        tool_calls = [
            {"id": i, "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in zip(ids, calls, strict=True)
        ]
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        self._agent.append(_Answer(message=message, finish="tool_calls"))
        return ids

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "request body is not JSON"}}, status=400)
        kind = "review" if _is_review(body) else "agent"
        async with self._arrived:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            self.raw_bodies.append(raw)
            self.kinds.append(kind)
            self._arrived.notify_all()
        if (refusal := self._refusal(body)) is not None:
            return web.json_response(
                {"error": {"code": 500, "message": refusal, "type": "server_error"}}, status=500
            )
        if self.latency:
            await asyncio.sleep(self._rng.uniform(*self.latency))
        if self.error_rate and self._rng.random() < self.error_rate:
            return _error_response(_Answer(status=500, body={"error": {"message": "random fake failure"}}))
        delay, item = _pop(self._review if kind == "review" else self._agent)
        if delay:
            await asyncio.sleep(delay)
        answer = self._review_answer(body, item) if kind == "review" else (item or self._default(body))
        if self.missing_tool_choice_is_none and "tool_choice" not in body and answer.finish == "tool_calls":
            answer = _Answer(message={"role": "assistant", "content": self.default_text})
        if body.get("stream") and answer.status == 200:
            return await self._stream(request, body, answer)
        if kind == "agent":
            await self._generate(answer)
        return self._respond(answer)

    async def _generate(self, answer: _Answer) -> None:
        """Take as long to answer in one piece as streaming the same reply would (stream_delay_s)."""
        text = (answer.message or {}).get("content") or ""
        if not (self.stream_delay_s and text):
            return
        pieces = -(-len(text) // self.stream_piece_chars)
        self.first_token_at.append(asyncio.get_running_loop().time() + self.stream_delay_s)
        await asyncio.sleep(self.stream_delay_s * pieces)

    def _refusal(self, body: dict[str, Any]) -> str | None:
        """The error text a real server answers 500 with for this request, if it refuses it."""
        for m in body.get("messages") or []:
            if m.get("role") != "assistant" or not m.get("tool_calls"):
                continue
            if m.get("content") is None:
                return "content: Input should be a valid string (assistant message with tool_calls)"
            for call in m["tool_calls"]:
                try:
                    args = json.loads(call.get("function", {}).get("arguments", ""))
                except ValueError:
                    args = None
                if not isinstance(args, dict):
                    return "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101]"
        kind = (body.get("response_format") or {}).get("type")
        if kind in self.refused_formats:
            return f"response_format type must be one of 'text' or 'json_object', got '{kind}'"
        return None

    def _default(self, body: dict[str, Any]) -> _Answer:
        messages = body.get("messages") or [{}]
        if self.auto_code is not None and messages[-1].get("role") != "tool":
            call = {"id": f"call_{next(self._ids)}", "type": "function"}
            call["function"] = {"name": "execute_code", "arguments": json.dumps({"code": self.auto_code})}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return _Answer(message=message, finish="tool_calls")
        return _Answer(message={"role": "assistant", "content": self.default_text})

    def _review_answer(self, body: dict[str, Any], item: Any) -> _Answer:
        if isinstance(item, _Answer):
            return item
        content = item.content if isinstance(item, _Verdict) else _ALLOW
        names = [t.get("function", {}).get("name") for t in body.get("tools", [])]
        if FORMAT_TOOL in names and (body.get("response_format") or {}).get("type") != "json_schema":
            call = {"id": f"call_{next(self._ids)}", "type": "function"}
            call["function"] = {"name": FORMAT_TOOL, "arguments": content}
            return _Answer(
                message={"role": "assistant", "content": None, "tool_calls": [call]}, finish="tool_calls"
            )
        return _Answer(message={"role": "assistant", "content": content})

    def _respond(self, answer: _Answer) -> web.Response:
        if answer.raw is not None:
            return web.Response(body=answer.raw, content_type="application/json")
        if answer.status != 200:
            return _error_response(answer)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": "fake",
            "choices": [{"index": 0, "message": answer.message, "finish_reason": answer.finish}],
        }
        if self.usage is not None:
            p, c = self.usage
            payload["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        return web.json_response(payload)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], answer: _Answer
    ) -> web.StreamResponse:
        """Answer as OpenAI streams: SSE chunks of deltas, the finish reason, usage if asked, [DONE]."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        base = {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion.chunk", "created": 0}
        base["model"] = "fake"

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await resp.write(f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode())

        def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "finish_reason": finish}]

        if answer.raw is not None:  # garbage where a chunk should be
            await resp.write(b"data: " + answer.raw + b"\n\n")
            await resp.write_eof()
            return resp
        message = answer.message or {}
        await send(delta({"role": "assistant", "content": ""}))
        text, n = message.get("content") or "", self.stream_piece_chars
        if text:
            self.first_token_at.append(asyncio.get_running_loop().time() + self.stream_delay_s)
        for i, start in enumerate(range(0, len(text), n)):
            if answer.cut_after is not None and i >= answer.cut_after:
                assert request.transport is not None
                request.transport.close()  # no finish reason, no [DONE]: the client sees a broken stream
                return resp
            if self.stream_delay_s:
                await asyncio.sleep(self.stream_delay_s)
            self.stream_sent_at.append(asyncio.get_running_loop().time())
            await send(delta({"content": text[start : start + n]}))
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call["function"]
            head = {"index": i, "id": call["id"], "type": "function"}
            await send(delta({"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]}))
            for start in range(0, len(fn["arguments"]), n):  # arguments arrive in pieces too
                piece = {"index": i, "function": {"arguments": fn["arguments"][start : start + n]}}
                await send(delta({"tool_calls": [piece]}))
        await send(delta({}, answer.finish))
        if self.usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            p, c = self.usage
            await send([], usage={"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model"} for name in self.model_ids]
        return web.json_response({"object": "list", "data": data})


_ALLOW = json.dumps({"allowed": True, "risk": "low", "reasons": []})


def _is_review(body: dict[str, Any]) -> bool:
    if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
        return True
    texts = [m.get("content") for m in body.get("messages") or [] if m.get("role") in ("system", "user")]
    if any(isinstance(t, str) and any(k in t for k in JSON_ONLY_MARKERS) for t in texts):
        return True
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("function", {}).get("name") == FORMAT_TOOL
    names = [t.get("function", {}).get("name") for t in body.get("tools", [])]
    return forced or (FORMAT_TOOL in names and names == [FORMAT_TOOL])


def _pop(queue: deque[Any]) -> tuple[float, Any]:
    """Take the next scripted item, summing the delays queued in front of it."""
    delay = 0.0
    while queue:
        item = queue.popleft()
        if isinstance(item, _Delay):
            delay += item.seconds
            continue
        return delay, item
    return delay, None


def _error_response(answer: _Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)
