# Threat: a thread storm: many threads spinning in code that releases the GIL (hashing big buffers),
# so they really use every core of the host. Safety valve: threads stop after `stop_after_s`.
import hashlib
import json
import threading
import time

P = globals().get("PARAMS") or {}
stop_at = time.monotonic() + float(P.get("stop_after_s", 6))
buf = b"\x03" * (1 << 20)
go = threading.Event()  # start spinning only after the report is out, or the CPU cap may win the race


def spin():
    go.wait()
    while time.monotonic() < stop_at:
        hashlib.sha256(buf).digest()


started, error = 0, None
for _ in range(int(P.get("threads", 64))):
    try:
        threading.Thread(target=spin, daemon=True).start()
        started += 1
    except RuntimeError as e:
        error = str(e)
        break
print("REPORT " + json.dumps({"started": started, "error": error}), flush=True)
go.set()
spin()
