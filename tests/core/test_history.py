"""The history sent to the model is bounded and always starts where an exchange starts."""

from __future__ import annotations

from mirascope import llm

from core.history import approx_tokens, trim_history


def exchange(i: int, size: int = 10) -> list[llm.Message]:
    call = llm.ToolCall(id=f"c{i}", name="execute_code", args='{"code": "1"}')
    return [
        llm.messages.user(f"question {i} " + "x" * size),
        llm.messages.assistant([call], model_id=None, provider_id=None),
        llm.messages.user([llm.ToolOutput(id=f"c{i}", name="execute_code", result="1", error=None)]),
        llm.messages.assistant(f"answer {i}", model_id=None, provider_id=None),
    ]


def test_message_bound_never_leaves_a_tool_output_without_its_call():
    history = [m for i in range(5) for m in exchange(i)]
    kept = trim_history(history, max_messages=7, max_tokens=10_000)
    assert kept == exchange(4)  # cutting at 7 would start at a tool call; it drops to the exchange start


def test_token_budget_drops_the_oldest_exchanges_first():
    history = [m for i in range(4) for m in exchange(i, size=400)]
    budget = sum(approx_tokens(m) for m in exchange(3, size=400)) + 10
    kept = trim_history(history, max_messages=100, max_tokens=budget)
    assert kept == exchange(3, size=400)


def test_history_within_bounds_is_kept_whole():
    history = [m for i in range(2) for m in exchange(i)]
    assert trim_history(history, max_messages=40, max_tokens=8000) == history
