"""Files attached to a question: named safely, checked against the caps, fetched, stored."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core.files_in import FetchError, FileFetcher, FileTooLarge
from core.store.base import NewFile, ThreadFiles
from core.threadfiles.caps import ThreadCaps
from core.threadfiles.names import safe_name
from core.threadfiles.preview import text_preview
from core.threadfiles.summary import size_text
from core.types import IncomingFile, ThreadKey

log = logging.getLogger(__name__)

MAX_FILES_PER_MESSAGE = 20  # a chat event is untrusted: a list of thousands is cut here
NO_FETCHER_TEXT = "Files attached here cannot be read by the bot; I'll answer without them."


@dataclass(frozen=True)
class Intake:
    """What taking in a message's files did: the names added, and notices for the thread."""

    added: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


async def take_in(
    store: ThreadFiles,
    key: ThreadKey,
    files: Sequence[IncomingFile],
    fetcher: FileFetcher | None,
    caps: ThreadCaps,
    now: float,
) -> Intake:
    """Store each attached file that fits the caps; every problem becomes a short notice, never raises."""
    if not files:
        return Intake()
    if fetcher is None:
        return Intake(notices=(NO_FETCHER_TEXT,))
    sizes = {f.name: f.size for f in await store.list_files(key)}
    added: list[str] = []
    notices: list[str] = []
    for file in files[:MAX_FILES_PER_MESSAGE]:
        name = safe_name(file.name, sizes)
        data, problem = await _fetch(fetcher, file, name, caps, sum(sizes.values()))
        if data is None:
            notices.append(problem)
            continue
        await store.put_files(key, [NewFile(name, data, "attached", text_preview(data))], now)
        sizes[name] = len(data)
        added.append(name)
    if len(files) > MAX_FILES_PER_MESSAGE:
        notices.append(f"Only the first {MAX_FILES_PER_MESSAGE} files of a message are taken.")
    return Intake(tuple(added), tuple(notices))


async def _fetch(
    fetcher: FileFetcher, file: IncomingFile, name: str, caps: ThreadCaps, used: int
) -> tuple[bytes | None, str]:
    """Fetch within the smaller of the per-file cap and the room left; (None, notice) when refused."""
    if not file.ref:  # the platform did not let the bot download it (external, deleted, not shared)
        return None, f"`{name}` cannot be downloaded by the bot, so I'll answer without it."
    room = caps.files_bytes - used
    declared = file.size if file.size is not None and file.size >= 0 else None
    if declared is not None and declared > caps.file_bytes:
        return None, _over_file(name, caps, declared)
    if (declared is not None and declared > room) or room <= 0:
        return None, _over_workspace(name, caps, declared)
    max_bytes = min(caps.file_bytes, room)
    try:
        data = await fetcher.fetch(file, max_bytes)
    except FileTooLarge:
        if max_bytes == caps.file_bytes:
            return None, _over_file(name, caps, None)
        return None, _over_workspace(name, caps, None)
    except FetchError as exc:
        return None, f"I could not get `{name}` ({_short(str(exc))}); I'll answer without it."
    except Exception:
        log.exception("the file fetcher failed on %s", name)
        return None, f"I could not get `{name}`; I'll answer without it."
    if not isinstance(data, bytes) or len(data) > max_bytes:  # a fetcher bug must not pass the cap
        return None, _over_file(name, caps, None) if max_bytes == caps.file_bytes else _over_workspace(
            name, caps, None
        )
    return data, ""


def _over_file(name: str, caps: ThreadCaps, size: int | None) -> str:
    its = f" is {size_text(size)}," if size is not None else ""
    return (
        f"`{name}`{its} over the {caps.file_mb} MB limit per file (`file_size`), so I did not add it; "
        "I'll answer without it."
    )


def _over_workspace(name: str, caps: ThreadCaps, size: int | None) -> str:
    its = f" ({size_text(size)})" if size is not None else ""
    return (
        f"`{name}`{its} would take this thread's workspace past its {caps.files_mb} MB limit "
        "(`thread_files`), so I did not add it; `/codebot reset` clears the workspace. "
        "I'll answer without it."
    )


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 200 else flat[:199] + "…"
