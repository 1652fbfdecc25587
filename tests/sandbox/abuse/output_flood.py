# Threat: flood stdout (or stderr) so the host buffers it without bound. Safety valve: stops after
# `safety_cap_mb`.
import sys

P = globals().get("PARAMS") or {}
stream = sys.stderr if P.get("stream") == "stderr" else sys.stdout
line = b"A" * 1023 + b"\n"
chunk = line * 1024
for _ in range(int(P.get("safety_cap_mb", 1024))):
    stream.buffer.write(chunk)
stream.flush()
