# Threat: read the bot's secrets from the environment, from /proc/<pid>/environ of every visible
# process (bwrap's own pid 1 keeps whatever environment bwrap was started with), from the bot's own
# pid, and from /proc/<pid>/cmdline (secrets passed in argv).
import json
import os

P = globals().get("PARAMS") or {}


def grab(path):
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError as e:
        return f"ERR {type(e).__name__} errno={e.errno}"


pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
targets = set(pids) | {1, os.getppid(), int(P.get("bot_pid", 1))}
found = {"environ": dict(os.environ), "pids": pids, "self_pid": os.getpid()}
for pid in [*sorted(targets), "self", "thread-self"]:
    for name in ("environ", "cmdline"):
        found[f"/proc/{pid}/{name}"] = grab(f"/proc/{pid}/{name}")
print("REPORT " + json.dumps(found), flush=True)
