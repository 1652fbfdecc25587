# Threat: memory bomb: one huge allocation, then touched 16 MiB chunks until something gives.
# Safety valve: stops at `safety_cap_mb` so a broken sandbox cannot push the host into swap/OOM.
import json
import sys

P = globals().get("PARAMS") or {}
CHUNK = 16 * 1024 * 1024
report = {"huge": "no error"}
try:
    huge = bytearray(10 * 1024**3)
    huge[:: 1 << 20] = b"\x01" * len(huge[:: 1 << 20])
    del huge
except MemoryError:
    report["huge"] = "MemoryError"
chunks, total = [], 0
try:
    while total < int(P.get("safety_cap_mb", 2048)) * 1024 * 1024:
        chunks.append(b"\x01" * CHUNK)  # bytes * n writes every page, so the memory is really used
        total += CHUNK
        print(f"held {total >> 20} MiB", file=sys.stderr, flush=True)
    report["stopped"] = "safety cap"
except MemoryError:
    report["stopped"] = "MemoryError"
chunks.clear()
report["held_mb"] = total >> 20
print("REPORT " + json.dumps(report), flush=True)
