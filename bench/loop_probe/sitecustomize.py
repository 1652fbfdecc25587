"""Where a bot's store calls spend their time: imported by the bot processes of `replicas_bench.py --probe`.

Measurement only, never part of the bot: the bench puts this directory first on the bots' PYTHONPATH and
names an output file in BENCH_LOOP_PROBE; every other process ignores it. It splits the wall
time of each metered store call (what codebot_store_seconds measures) at the moment the event loop reads
the reply off the call's connection:

- before the read: the query goes out, PostgreSQL runs it, the reply comes back and the loop gets to
  select() again. Of that, `own` is the call's own first step (the pool lends a connection, the query is
  built and sent: a send() that wakes the backend, which on a busy 2-core machine may take this CPU
  there and then), `busy` the other callbacks the loop ran, and `idle` the time it sat in select()
  (the round trip itself, and the wake-up of this process);
- `queued`: from select() returning to the connection's read callback (callbacks ahead in the batch);
- `after`: from that read to the call's return (the task's wake-up, the pool's release and the other
  callbacks that run first): loop lag, with the call's own decoding.

`queued + after` is loop lag for certain; part of `busy` is too, when the reply landed during another
callback. Also counted: the loop's busy share and its longest iterations. The bench sends SIGUSR1 as
its load starts (the counts start afresh, startup left out) and SIGUSR2 as it ends (they are written).
"""

import os

_OUT = os.environ.get("BENCH_LOOP_PROBE", "")


def _install(out: str) -> None:
    import asyncio
    import asyncio.events
    import asyncio.selector_events as se
    import atexit
    import json
    import selectors
    import signal
    import sys
    import threading
    import time
    import traceback

    import asyncpg.pool

    clock = time.perf_counter
    state = {"select_s": 0.0, "select_return": 0.0, "start": clock()}
    iterations: list[float] = []  # the loop's time between two select() calls
    # transport -> (when select() returned, the loop's select() seconds by then, when its read callback ran)
    reads: dict[object, tuple[float, float, float]] = {}
    released: dict[object, object] = {}  # task -> transport of the connection it gave back last
    totals = dict.fromkeys(("calls", "wall", "own", "busy", "idle", "queued", "after", "unmatched"), 0.0)

    select = selectors.EpollSelector.select

    def timed_select(self, timeout=None):  # type: ignore[no-untyped-def]
        entered = clock()
        if state["select_return"]:
            iterations.append(entered - state["select_return"])
        try:
            return select(self, timeout)
        finally:
            state["select_return"] = now = clock()
            state["select_s"] += now - entered

    selectors.EpollSelector.select = timed_select  # type: ignore[method-assign]

    read_ready = se._SelectorSocketTransport._read_ready

    def noted_read_ready(self):  # type: ignore[no-untyped-def]
        reads[self] = (state["select_return"], state["select_s"], clock())
        return read_ready(self)

    se._SelectorSocketTransport._read_ready = noted_read_ready  # type: ignore[method-assign]

    release = asyncpg.pool.Pool.release

    async def noted_release(self, connection, *, timeout=None):  # type: ignore[no-untyped-def]
        con = getattr(connection, "_con", None)
        if con is not None:
            released[asyncio.current_task()] = con._transport
        return await release(self, connection, timeout=timeout)

    asyncpg.pool.Pool.release = noted_release  # type: ignore[method-assign]

    slow: list[tuple[float, str]] = []  # the longest callbacks, and where their task stopped after them

    run = asyncio.events.Handle._run

    def timed_run(self):  # type: ignore[no-untyped-def]
        state["callback_began"] = began = clock()
        try:
            return run(self)
        finally:
            state["callback_began"] = 0.0
            ended = clock()
            for call in starting:  # calls begun in this callback: their first step ends here
                call["sent"] = ended
            starting.clear()
            took = ended - began
            if took > 0.005:
                stack = stacks.pop(began, "")
                slow.append((took, where(self) + (f" [running: {stack}]" if stack else "")))
                slow.sort(reverse=True)
                del slow[5:]

    starting: list[dict[str, float]] = []  # store calls begun in the running callback
    stacks: dict[float, str] = {}  # callback start -> the main thread's stack, seen 20 ms into it
    main_thread = threading.get_ident()

    def watch() -> None:  # a sampler: what a callback that holds the loop for long is doing
        while True:
            time.sleep(0.005)
            began = state["callback_began"]
            if began and clock() - began > 0.02 and began not in stacks:
                frame = sys._current_frames().get(main_thread)
                if frame is not None:
                    stacks[began] = " < ".join(
                        f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
                        for f in reversed(traceback.extract_stack(frame)[-8:])
                    )
                    while len(stacks) > 100:
                        del stacks[next(iter(stacks))]

    threading.Thread(target=watch, name="loop-probe", daemon=True).start()

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]

    def where(handle) -> str:  # type: ignore[no-untyped-def]
        task = getattr(handle._callback, "__self__", None)
        if not isinstance(task, asyncio.Task):
            return getattr(handle._callback, "__qualname__", repr(handle._callback))
        at, coro = "", task.get_coro()
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            frame = coro.cr_frame
            at = f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
            coro = getattr(coro, "cr_await", None)
        return f"{task.get_name()} -> {at}"

    def wrap_timed(observe) -> None:  # type: ignore[no-untyped-def]
        timed = observe._timed

        async def probed(fn, record):  # type: ignore[no-untyped-def]
            if not getattr(record, "__qualname__", "").startswith("MeteredStore"):
                return await timed(fn, record)  # an LLM attempt: not a store call
            released.pop(asyncio.current_task(), None)
            start, selected = clock(), state["select_s"]
            call = {"sent": start}
            starting.append(call)
            try:
                return await timed(fn, record)
            finally:
                end = clock()
                transport = released.pop(asyncio.current_task(), None)
                account(start, end, selected, call["sent"], transport)

        observe._timed = probed

    def account(start: float, end: float, selected: float, sent: float, transport: object) -> None:
        seen = reads.get(transport)
        if seen is None or seen[2] < start:
            totals["unmatched"] += 1  # SQLite, or a call that read nothing (it failed early)
            return
        select_return, selected_by_then, read_at = seen
        idle_before = selected_by_then - selected  # every select() in between began after the call did
        totals["calls"] += 1
        totals["wall"] += end - start
        totals["idle"] += idle_before
        busy = max(0.0, select_return - start - idle_before)
        own = min(busy, max(0.0, sent - start))  # the call's own first step: the query built and sent
        totals["own"] += own
        totals["busy"] += busy - own
        totals["queued"] += read_at - select_return
        totals["after"] += end - read_at

    import importlib.abc
    import importlib.util

    class _Hook(importlib.abc.MetaPathFinder):  # patch core.observe as it is first imported
        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            if name != "core.observe":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.loader is not None
            load = spec.loader.exec_module

            def exec_module(module):  # type: ignore[no-untyped-def]
                load(module)
                wrap_timed(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, _Hook())

    def restart(*_: object) -> None:
        iterations.clear()
        slow.clear()
        totals.update(dict.fromkeys(totals, 0))
        state.update(select_s=0.0, start=clock())

    def dump(*_: object) -> None:
        if state.get("dumped"):
            return  # written at SIGUSR2 already: the shutdown after it is not part of the load
        state["dumped"] = 1.0
        wall = clock() - state["start"]
        longest = sorted(iterations)[-5:]
        result = {
            **totals,
            "run_s": wall,
            "loop_busy_s": wall - state["select_s"],
            "iterations": len(iterations),
            "longest_ms": [round(x * 1000, 2) for x in longest],
            "slowest_callbacks": [(round(t * 1000, 1), w) for t, w in slow],
        }
        with open(f"{out}.{os.getpid()}.json", "w") as f:
            json.dump(result, f)

    signal.signal(signal.SIGUSR1, restart)
    signal.signal(signal.SIGUSR2, dump)
    atexit.register(dump)  # without SIGUSR2 (a bot that exits on its own): the whole run


if _OUT:
    _install(_OUT)
