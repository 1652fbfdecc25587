# Threat: use raw syscalls through ctypes to widen the sandbox: new user/mount/net namespaces,
# mount, ptrace of pid 1 / the parent / the bot, setuid(0), chroot, sethostname, setns into pid 1's
# namespaces, mknod, raw sockets, raising hard rlimits, and the bpf/perf/io_uring/keyctl surface.
# Nothing here is destructive if it succeeds (hostname is set to its current value, pid 1 is detached).
import contextlib
import ctypes
import json
import os
import platform
import resource
import socket

P = globals().get("PARAMS") or {}
libc = ctypes.CDLL(None, use_errno=True)
CLONE = {
    "NEWUSER": 0x10000000,
    "NEWNS": 0x00020000,
    "NEWNET": 0x40000000,
    "NEWPID": 0x20000000,
    "NEWUTS": 0x04000000,
    "NEWIPC": 0x08000000,
}
SYSCALLS = {
    "x86_64": {"bpf": 321, "perf_event_open": 298, "io_uring_setup": 425, "keyctl": 250},
    "aarch64": {"bpf": 280, "perf_event_open": 241, "io_uring_setup": 425, "keyctl": 219},
}
PTRACE_ATTACH, PTRACE_DETACH, WALL = 16, 17, 0x40000000


def c_call(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return "OK" if rc >= 0 else f"ERR errno={ctypes.get_errno()} {os.strerror(ctypes.get_errno())}"


def py_call(fn, *args):
    try:
        fn(*args)
        return "OK"
    except OSError as e:
        return f"ERR errno={e.errno} {e.strerror}"
    except ValueError as e:  # resource.setrlimit refuses to raise a hard limit this way
        return f"ERR {e}"


def ptrace(pid):
    rc = c_call(libc.ptrace, PTRACE_ATTACH, pid, None, None)
    if rc == "OK":
        with contextlib.suppress(OSError):
            os.waitpid(pid, WALL)
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    return rc


r = {f"unshare_{k}": c_call(libc.unshare, v) for k, v in CLONE.items()}
os.makedirs("/tmp/mnt", exist_ok=True)
r["mount_tmpfs"] = c_call(libc.mount, b"none", b"/tmp/mnt", b"tmpfs", 0, None)
r["mount_proc"] = c_call(libc.mount, b"proc", b"/tmp/mnt", b"proc", 0, None)
r["ptrace_bot"] = ptrace(int(P.get("bot_pid", 1)))
r["ptrace_parent"] = ptrace(os.getppid())
r["ptrace_pid1"] = ptrace(1)
r["setuid0"] = py_call(os.setuid, 0)
r["setgid0"] = py_call(os.setgid, 0)
r["setgroups0"] = py_call(os.setgroups, [0])
r["chroot"] = py_call(os.chroot, "/tmp")
name = socket.gethostname().encode()
r["sethostname"] = c_call(libc.sethostname, name, len(name))
for ns in ("mnt", "net", "user", "pid"):
    try:
        fd = os.open(f"/proc/1/ns/{ns}", os.O_RDONLY)
        r[f"setns_{ns}"] = c_call(libc.setns, fd, 0)
        os.close(fd)
    except OSError as e:
        r[f"setns_{ns}"] = f"ERR errno={e.errno} open"
r["mknod_char"] = py_call(os.mknod, "/tmp/null2", 0o20666, os.makedev(1, 3))
r["raw_socket"] = py_call(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
r["raise_nproc_hard"] = py_call(
    resource.setrlimit, resource.RLIMIT_NPROC, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
)
attr = ctypes.create_string_buffer(256)
for name, nr in SYSCALLS.get(platform.machine(), {}).items():
    args = {
        "bpf": (0, attr, 128),
        "perf_event_open": (attr, 0, -1, -1, 0),
        "io_uring_setup": (8, attr),
        "keyctl": (0, 0),
    }[name]
    r[name] = c_call(libc.syscall, nr, *args)
with open("/proc/self/status") as f:
    r["status"] = {
        k: v.strip()
        for k, v in (ln.split(":", 1) for ln in f if ":" in ln)
        if k in ("Uid", "Gid", "CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp")
    }
print("REPORT " + json.dumps(r), flush=True)
