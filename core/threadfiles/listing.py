"""`/codebot files` and the workspace part of `/codebot reset`, as text replies."""

from __future__ import annotations

from core.limits import EffectiveLimits
from core.store.base import StoredFile, ThreadFiles, ThreadState
from core.threadfiles.caps import ThreadCaps
from core.threadfiles.preview import kind_of
from core.threadfiles.summary import size_text
from core.types import ThreadKey

OUTSIDE_THREAD_TEXT = (
    "`files` lists one thread's workspace (its files and kept Python variables): run it inside the thread."
)
EMPTY_TEXT = (
    "This thread's workspace is empty. Attach a file to a question, or let the code write one, and it "
    "stays here for follow-ups; variables the code leaves behind are kept too."
)
MAX_ROWS = 25


async def files_text(store: ThreadFiles, key: ThreadKey, limits: EffectiveLimits) -> str:
    """List the thread's files and kept variables with sizes, against the caps."""
    files = await store.list_files(key)
    state = await store.load_state(key, with_blob=False)
    if not files and state is None:
        return EMPTY_TEXT
    caps = ThreadCaps.of(limits)
    used = sum(f.size for f in files)
    parts = [f"*This thread's workspace*: {size_text(used)} of files (limit {caps.files_mb} MB)"]
    if files:
        parts.append(f"```\n{_file_table(files)}\n```")
    parts.append(_state_text(state, caps))
    parts.append("`reset` clears the workspace together with the history.")
    return "\n".join(parts)


def _file_table(files: list[StoredFile]) -> str:
    rows = [(f.name, size_text(f.size), kind_of(f.name, f.preview), f.origin) for f in files[:MAX_ROWS]]
    width = max(len(r[0]) for r in rows)
    lines = [f"{n.ljust(width)}  {s:>9}  {k}, {o}" for n, s, k, o in rows]
    if len(files) > MAX_ROWS:
        lines.append(f"… and {len(files) - MAX_ROWS} more")
    return "\n".join(lines)


def _state_text(state: ThreadState | None, caps: ThreadCaps) -> str:
    if state is None or not (state.kept or state.dropped):
        return "No Python variables are kept yet."
    names = ", ".join(f"`{_inert(k.name)}` ({_inert(k.type)})" for k in state.kept[:MAX_ROWS]) or "none"
    text = f"*Kept variables* ({size_text(state.size)} of {caps.state_mb} MB): {names}"
    if state.dropped:
        text += "\nNot kept: " + ", ".join(f"`{_inert(n)}` ({_inert(why)})" for n, why in state.dropped[:10])
    return text


def _inert(text: str) -> str:
    """Names come from the sandbox: keep them from closing a code span or pinging anyone."""
    return text.replace("`", "'").replace("@", "@\u200b").replace("<", "‹")[:80]


def reset_text(files: int, state: bool) -> str:
    """The sentence `reset` adds when it cleared a workspace ("" when there was none)."""
    if not files and not state:
        return ""
    what = [f"{files} file{'s' if files != 1 else ''}"] if files else []
    if state:
        what.append("the kept variables")
    return f" Its workspace ({' and '.join(what)}) is cleared too."
