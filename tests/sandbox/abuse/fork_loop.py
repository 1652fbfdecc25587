# Threat: fork loop: start sleeping children one after another until the host runs out of process
# slots, then exit and leave them behind. Safety valve: stops at `safety_cap` children.
import json
import os
import time

P = globals().get("PARAMS") or {}
children, error = 0, None
while children < int(P.get("safety_cap", 500)):
    try:
        pid = os.fork()
    except OSError as e:
        error = f"{type(e).__name__} errno={e.errno}"
        break
    if pid == 0:
        time.sleep(float(P.get("child_sleep_s", 30)))
        os._exit(0)
    children += 1
print("REPORT " + json.dumps({"children": children, "error": error}), flush=True)
