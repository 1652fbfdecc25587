# Threat (with isolation_looker.py): one run plants a token everywhere another concurrent run might
# look: its working directory, /tmp, /dev/shm, a child's command line, an abstract unix socket, a
# TCP port on 127.0.0.1 and a System V shared memory key. It then holds them for `hold_s`.
import contextlib
import ctypes
import json
import os
import socket
import subprocess
import sys
import time

P = globals().get("PARAMS") or {}
TOKEN = P.get("token", "codebot-isolation-token")
report = {"pid_ns": os.readlink("/proc/self/ns/pid")}


def attempt(name, fn):
    try:
        fn()
        report[name] = "OK"
    except OSError as e:
        report[name] = f"ERR errno={e.errno}"


def write(path):
    with open(path, "w") as f:
        f.write(TOKEN)


def listen(family, address):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(address)
    s.listen()
    keep.append(s)


keep = []
for label, path in (("cwd", f"{TOKEN}.txt"), ("tmp", f"/tmp/{TOKEN}"), ("dev_shm", f"/dev/shm/{TOKEN}")):
    attempt(label, lambda path=path: write(path))
attempt("abstract", lambda: listen(socket.AF_UNIX, "\0" + TOKEN))
attempt("tcp", lambda: listen(socket.AF_INET, ("127.0.0.1", int(P.get("port", 47123)))))
libc = ctypes.CDLL(None, use_errno=True)
shm_id = libc.shmget(int(P.get("shm_key", 0xC0DE)), 4096, 0o1000 | 0o666)  # IPC_CREAT
report["sysv_shm"] = shm_id
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", TOKEN])
print("REPORT " + json.dumps(report), flush=True)
time.sleep(float(P.get("hold_s", 2.0)))
# Tidy up, so running this unconfined (the test's control) leaves nothing on the host.
child.kill()
if shm_id >= 0:
    libc.shmctl(shm_id, 0, None)  # IPC_RMID
for path in (f"{TOKEN}.txt", f"/tmp/{TOKEN}", f"/dev/shm/{TOKEN}"):
    with contextlib.suppress(OSError):
        os.unlink(path)
