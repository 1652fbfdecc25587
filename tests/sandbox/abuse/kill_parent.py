# Threat: take down the bot or escape supervision by killing the bot's pid, every process (kill -1),
# the parent, and the sandbox's pid 1, then exit: the host must notice the end and carry on. Each
# outcome is printed before the next attempt, in case a kill ends the run. Safety valve: if this
# process can see the bot's pid or many pids, the pid namespace is missing and kill(-1) could take
# down the whole test machine, so it only reports.
import json
import os
import signal
import time

P = globals().get("PARAMS") or {}
BOT = int(P.get("bot_pid", 1))
visible = [int(d) for d in os.listdir("/proc") if d.isdigit()]


def attempt(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return "OK"
    except OSError as e:
        return f"ERR {type(e).__name__} errno={e.errno}"


if BOT in visible or len(visible) > 20:
    unsafe = {"unsafe": "pid namespace not private", "visible": len(visible)}
    print("REPORT " + json.dumps(unsafe), flush=True)
    raise SystemExit(3)
for name, pid in (("bot", BOT), ("all", -1), ("parent", os.getppid()), ("pid1", 1)):
    print("REPORT " + json.dumps({name: attempt(pid), "pid": pid}), flush=True)
time.sleep(0.2)  # let any signal land before this process exits on its own
