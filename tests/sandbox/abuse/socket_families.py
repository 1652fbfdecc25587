# Threat: reach past the network namespace through socket families it does not cover (AF_VSOCK's port
# space is VM-wide: a channel to the hypervisor and other guests), raw packet and kernel-crypto sockets,
# socketpair with odd families, the new mount API (fsopen/fsmount/open_tree/move_mount/...), and
# pidfd_getfd (steal a file descriptor from another process). Harmless if it succeeds: sockets are
# closed at once, the stolen fd is our own child's pipe, and move_mount (the only call that attaches a
# mount) targets a fresh empty directory and is skipped in the unconfined control (PARAMS control=True).
import ctypes
import json
import os
import platform
import socket
import tempfile

P = globals().get("PARAMS") or {}
libc = ctypes.CDLL(None, use_errno=True)
NR = {  # the new mount API and pidfd calls share one numbering on x86_64 and aarch64
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}
AT_FDCWD, OPEN_TREE_CLONE = -100, 1


def sock(family, kind, proto=0, then=None):
    try:
        s = socket.socket(family, kind, proto)
    except OSError as e:
        return f"ERR errno={e.errno}"
    try:
        if then is not None:
            then(s)
        return "OK"
    except OSError as e:
        return f"OK socket, then errno={e.errno}"
    finally:
        s.close()


def pair(family, kind):
    try:
        for s in socket.socketpair(family, kind):
            s.close()
        return "OK"
    except OSError as e:
        return f"ERR errno={e.errno}"


def sys_call(name, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(NR[name], *args)
    return ("OK", rc) if rc >= 0 else (f"ERR errno={ctypes.get_errno()}", rc)


def vsock_listen(s):
    s.bind((socket.VMADDR_CID_ANY, 0x7357))
    s.listen()


r = {
    "vsock_stream": sock(40, socket.SOCK_STREAM, 0, vsock_listen),
    "vsock_dgram": sock(40, socket.SOCK_DGRAM),
    "packet_raw": sock(17, socket.SOCK_RAW),
    "alg": sock(38, socket.SOCK_SEQPACKET),
    "bluetooth": sock(31, socket.SOCK_STREAM),
    "netlink_audit": sock(16, socket.SOCK_RAW, 9),
    "netlink_uevent": sock(16, socket.SOCK_DGRAM, 15),
    "tipc": sock(30, socket.SOCK_SEQPACKET),
    "family_high_bits": "ERR",  # filled below through libc: 40 with bits above 32 set
    "socketpair_vsock": pair(40, socket.SOCK_STREAM),
    "socketpair_tipc": pair(30, socket.SOCK_SEQPACKET),
    "socketpair_netlink": pair(16, socket.SOCK_RAW),
}
ctypes.set_errno(0)
fd = libc.syscall(41 if platform.machine() == "x86_64" else 198, ctypes.c_long((1 << 32) | 40), 1, 0)
r["family_high_bits"] = "OK" if fd >= 0 else f"ERR errno={ctypes.get_errno()}"
if fd >= 0:
    os.close(fd)
r["fsopen"], fs_fd = sys_call("fsopen", b"tmpfs", 0)
r["fspick"], _ = sys_call("fspick", AT_FDCWD, b"/tmp", 0)
r["open_tree"], tree_fd = sys_call("open_tree", AT_FDCWD, b"/tmp", OPEN_TREE_CLONE)
r["fsconfig"], _ = sys_call("fsconfig", max(fs_fd, 0), 6, None, None, 0)  # FSCONFIG_CMD_CREATE
r["fsmount"], _ = sys_call("fsmount", max(fs_fd, 0), 0, 0)
if not P.get("control"):
    target = tempfile.mkdtemp().encode()
    r["move_mount"], _ = sys_call("move_mount", max(tree_fd, 0), b"", AT_FDCWD, target, 4)
r["mount_setattr"], _ = sys_call("mount_setattr", AT_FDCWD, b"/tmp", 0, None, 0)
rd, wr = os.pipe()
child = os.fork()
if child == 0:
    os.read(rd, 1)
    os._exit(0)
pidfd_state, pidfd = sys_call("pidfd_open", child, 0)
r["pidfd_open"] = pidfd_state
r["pidfd_getfd"], stolen = sys_call("pidfd_getfd", max(pidfd, 0), rd, 0) if pidfd >= 0 else ("n/a", -1)
for f in (stolen, pidfd, fs_fd, tree_fd):
    if f >= 0:
        os.close(f)
os.write(wr, b"x")
os.waitpid(child, 0)
print("REPORT " + json.dumps(r), flush=True)
