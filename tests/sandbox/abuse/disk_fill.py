# Threat: fill a writable place (the private /tmp, or the working directory, which is the one place
# the host can see) until the disk is full. Files are rotated every 4 MiB to slip under a per-file
# size limit. Safety valve: stops at `safety_cap_mb`. Reports the bytes that really landed.
import json
import os

P = globals().get("PARAMS") or {}
target = P.get("target", "/tmp")
os.makedirs(os.path.join(target, "fill"), exist_ok=True)
chunk = b"\x02" * (1 << 20)
written, error, index = 0, None, 0
while written < int(P.get("safety_cap_mb", 512)) << 20 and error is None:
    path = os.path.join(target, "fill", f"part{index:04d}.bin")
    index += 1
    try:
        with open(path, "wb") as f:
            for _ in range(4):
                f.write(chunk)
                f.flush()  # make the bytes hit the file system now, so `written` is honest
                written += len(chunk)
    except OSError as e:
        error = f"{type(e).__name__} errno={e.errno}"
print("REPORT " + json.dumps({"written_mb": written / (1 << 20), "error": error}), flush=True)
