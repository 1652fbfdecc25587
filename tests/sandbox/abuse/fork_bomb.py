# Threat: fork bomb (every process forks forever) to exhaust the host's process table and CPU.
# Safety valve: a shared counter stops forking at `safety_cap` and every process exits by itself
# after `stop_after_s`, so a broken sandbox cannot take the test machine down with it. The root
# process reports how many forks succeeded (the sandbox's process cap should hold it far lower).
import json
import mmap
import os
import struct
import time

P = globals().get("PARAMS") or {}
cap = int(P.get("safety_cap", 1000))
stop_at = time.monotonic() + float(P.get("stop_after_s", 6))
report_at = time.monotonic() + float(P.get("report_after_s", 0.7))
shared = mmap.mmap(-1, 8)  # anonymous MAP_SHARED: every descendant updates the same counter


def forks():
    return struct.unpack_from("q", shared, 0)[0]


root, failures, reported = os.getpid(), 0, False
while time.monotonic() < stop_at:
    if os.getpid() == root and not reported and time.monotonic() > report_at:
        print("REPORT " + json.dumps({"forks": forks(), "root_failures": failures}), flush=True)
        reported = True
    if forks() >= cap:
        time.sleep(0.01)
        continue
    try:
        pid = os.fork()
    except OSError:
        failures += 1
        continue
    if pid == 0:
        struct.pack_into("q", shared, 0, forks() + 1)
if os.getpid() != root:
    os._exit(0)
