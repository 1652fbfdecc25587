# Threat: use far more CPU than the run's cap by handing the work on, so that no single process ever
# reaches RLIMIT_CPU: a chain of short-lived children, each running busy threads for a slice, then
# forking the next generation and exiting; the main process only sleeps. Safety valve: the chain stops
# after `stop_after_s` (wall clock), and the main process exits then.
import hashlib
import json
import os
import threading
import time

P = globals().get("PARAMS") or {}
stop_at = time.monotonic() + float(P.get("stop_after_s", 8))
slice_s = float(P.get("slice_s", 0.25))
threads = int(P.get("threads", 2))
buf = b"\x05" * (1 << 18)


def spin(until):
    while time.monotonic() < until:
        hashlib.sha256(buf).digest()  # releases the GIL: the threads really run in parallel


def generation():
    gen = 0
    while time.monotonic() < stop_at:
        until = min(stop_at, time.monotonic() + slice_s)
        workers = [threading.Thread(target=spin, args=(until,)) for _ in range(threads)]
        for w in workers:
            w.start()
        spin(until)
        for w in workers:
            w.join()
        gen += 1
        if os.fork():  # the next generation carries on with fresh per-process CPU counters
            os._exit(0)
    os._exit(0)


if os.fork() == 0:
    generation()
print("REPORT " + json.dumps({"started": True}), flush=True)
while time.monotonic() < stop_at:
    time.sleep(0.05)
print("REPORT " + json.dumps({"finished": True}), flush=True)
