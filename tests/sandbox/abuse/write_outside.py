# Threat: tamper with the host by writing outside the working directory: system directories, /dev,
# /proc/sys, and existing binaries. Opens existing files for writing but never writes to them, and
# removes anything it manages to create, so a broken sandbox does not damage the test machine.
import json
import os

P = globals().get("PARAMS") or {}
NEW = [
    "/usr/codebot-pwn",
    "/codebot-pwn",
    "/etc/codebot-pwn",
    "/opt/codebot-pwn",
    "/dev/codebot-pwn",
    "/bin/codebot-pwn",
    "/lib/codebot-pwn",
    "/var/codebot-pwn",
    "/root/codebot-pwn",
    "/home/codebot-pwn",
    "/run/codebot-pwn",
    "/sys/codebot-pwn",
    *P.get("extra_new", []),
]
EXISTING = [
    "/usr/bin/python3.11",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/core_pattern",
    "/proc/sysrq-trigger",
    "/proc/sys/vm/overcommit_memory",
    *P.get("extra_existing", []),
]


def create(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        return f"ERR errno={e.errno} {e.strerror}"
    os.close(fd)
    os.unlink(path)
    return "OK created"


def open_for_write(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as e:
        return f"ERR errno={e.errno} {e.strerror}"
    os.close(fd)
    return "OK opened"


def mkdir(path):
    try:
        os.mkdir(path)
    except OSError as e:
        return f"ERR errno={e.errno} {e.strerror}"
    os.rmdir(path)
    return "OK created"


report = {
    "create": {p: create(p) for p in NEW},
    "open_existing": {p: open_for_write(p) for p in EXISTING},
    "mkdir": {p: mkdir(p + ".d") for p in ("/usr/share/codebot", "/opt/codebot", "/etc/codebot")},
    "allowed": {"cwd": create("./codebot-ok"), "tmp": create("/tmp/codebot-ok")},
}
print("REPORT " + json.dumps(report), flush=True)
