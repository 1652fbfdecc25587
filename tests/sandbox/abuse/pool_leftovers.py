# Threat: leave state behind for the next user of a warm sandbox ("plant"), or look for what an
# earlier run left ("check"): interpreter globals, a module in sys.modules, os.environ, a running
# thread, a child process, files in /tmp and the working directory.
import builtins
import json
import os
import subprocess
import sys
import threading
import time

P = globals().get("PARAMS") or {}
TOKEN = P.get("token", "codebot-pool-token")
if P.get("mode") == "plant":
    builtins.CODEBOT_PLANT = TOKEN
    sys.modules["codebot_plant"] = type(sys)("codebot_plant")
    os.environ["CODEBOT_PLANT"] = TOKEN
    threading.Thread(target=time.sleep, args=(30,), daemon=True, name=TOKEN).start()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", TOKEN])
    for path in (f"/tmp/{TOKEN}", f"{TOKEN}.txt"):
        with open(path, "w") as f:
            f.write(TOKEN)
    found = {}
else:
    found = {
        "builtins": getattr(builtins, "CODEBOT_PLANT", None),
        "module": "codebot_plant" in sys.modules,
        "environ": os.environ.get("CODEBOT_PLANT"),
        "thread": [t.name for t in threading.enumerate() if t.name == TOKEN],
        "tmp": os.path.exists(f"/tmp/{TOKEN}"),
        "cwd": sorted(os.listdir(".")),
        "processes": sorted(p for p in os.listdir("/proc") if p.isdigit()),
    }
print("REPORT " + json.dumps({"found": found, "pid_ns": os.readlink("/proc/self/ns/pid")}), flush=True)
