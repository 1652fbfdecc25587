# Threat (with isolation_writer.py): look for another concurrent run's token in every shared place
# for `look_s` seconds: the working directory, /tmp, /dev/shm, every visible process's command line,
# the abstract unix socket, the TCP port and the System V shared memory key.
import ctypes
import json
import os
import socket
import time

P = globals().get("PARAMS") or {}
TOKEN = P.get("token", "codebot-isolation-token")
libc = ctypes.CDLL(None, use_errno=True)
seen = {}


def connects(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(address) == 0


def look():
    for d in (".", "/tmp", "/dev/shm"):
        try:
            if any(TOKEN in n for n in os.listdir(d)):
                seen[d] = "file"
        except OSError:
            pass
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if TOKEN.encode() in f.read():
                    seen["process"] = pid
        except OSError:
            pass
    if connects(socket.AF_UNIX, "\0" + TOKEN):
        seen["abstract"] = "connected"
    if connects(socket.AF_INET, ("127.0.0.1", int(P.get("port", 47123)))):
        seen["tcp"] = "connected"
    if libc.shmget(int(P.get("shm_key", 0xC0DE)), 0, 0) >= 0:
        seen["sysv_shm"] = "found"


end, rounds = time.monotonic() + float(P.get("look_s", 1.5)), 0
while time.monotonic() < end:
    look()
    rounds += 1
    time.sleep(0.05)
print(
    "REPORT " + json.dumps({"seen": seen, "rounds": rounds, "pid_ns": os.readlink("/proc/self/ns/pid")}),
    flush=True,
)
