"""The seccomp filter for the sandboxed code (defence in depth; loaded by bwrap's --add-seccomp-fd).

Namespaces already make most of these calls useless; the filter removes kernel attack surface the code
never needs, in the spirit of Docker's default profile and flatpak's filter (a deny list: an allow list
would break numpy/matplotlib in ways a test cannot enumerate):

- socket()/socketpair() only for AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK with NETLINK_ROUTE (glibc's
  getaddrinfo(AI_ADDRCONFIG) and if_nameindex() use it; it sees only the run's own loopback). Every
  other family (AF_VSOCK, whose port space is VM-wide; AF_PACKET, AF_ALG, AF_BLUETOOTH, ...) fails with
  EAFNOSUPPORT, as on a kernel built without it.
- the old and new mount APIs, pidfd_getfd, ptrace and process_vm_*, keyrings, bpf, perf, io_uring,
  userfaultfd, module and kexec loading, clock setting, NUMA policy, quotactl, syslog, vhangup, ...: EPERM.
- unshare()/clone() with any namespace flag: EPERM (--disable-userns also stops the user namespace);
  clone3 (whose flags sit in memory a filter cannot read): ENOSYS, so glibc falls back to clone().
- personality() only with the harmless personas Docker allows (not ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC).
- ioctl(TIOCSTI/TIOCLINUX): EPERM (no terminal is reachable, but typing into one must never be possible).
- another ABI (i386 on x86_64, x32) is refused whole: EPERM.

The program is classic BPF built here, for x86_64 and aarch64 (libseccomp's bindings are not on PyPI
in a maintained form; a tiny generator plus an evaluator in the tests keeps both arches checkable).
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# struct seccomp_data: nr at 0, arch at 4, instruction_pointer at 8, args[6] (u64) from 16. Both arches
# are little-endian, so an argument's low 32 bits sit at 16 + 8*i: the family, flags and personas the
# kernel reads are 32-bit ints (or their low word), so the high word is ignored, as the kernel does.
OFF_NR, OFF_ARCH = 0, 4
OFF_ARG = (16, 24, 32, 40, 48, 56)
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_W_ABS, JA, JEQ_K, JGT_K, JGE_K, JSET_K, RET_K = 0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06
X32_BIT = 0x40000000

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
ALLOWED_FAMILIES = {"AF_UNIX": AF_UNIX, "AF_INET": AF_INET, "AF_INET6": AF_INET6}
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (NEWTIME=0x80 only for unshare: in
# clone()'s flags the low byte is the exit signal)
NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
CLONE_NEWTIME = 0x80
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # PER_LINUX, PER_LINUX32, UNAME26 (+32), query
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

# name -> (x86_64 number, aarch64 number or None where the call does not exist there)
DENIED: dict[str, tuple[int, int | None]] = {
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438),
    "kcmp": (312, 272),
    "process_madvise": (440, 440),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "keyctl": (250, 219),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "create_module": (174, None),
    "get_kernel_syms": (177, None),
    "query_module": (178, None),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "move_mount": (429, 429),
    "open_tree": (428, 428),
    "mount_setattr": (442, 442),
    "setns": (308, 268),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "fanotify_init": (300, 262),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "lookup_dcookie": (212, 18),
    "nfsservctl": (180, 42),
    "vhangup": (153, 58),
    "syslog": (103, 116),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "clock_adjtime": (305, 266),
    "adjtimex": (159, 171),
    "mbind": (237, 235),
    "set_mempolicy": (238, 237),
    "set_mempolicy_home_node": (450, 450),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    "uselib": (134, None),
    "sysfs": (139, None),
    "_sysctl": (156, None),
    "ustat": (136, None),
    "iopl": (172, None),
    "ioperm": (173, None),
    "modify_ldt": (154, None),
}
# calls whose arguments are inspected: name -> (x86_64, aarch64)
FILTERED: dict[str, tuple[int, int]] = {
    "socket": (41, 198),
    "socketpair": (53, 199),
    "clone": (56, 220),
    "clone3": (435, 435),
    "unshare": (272, 97),
    "personality": (135, 92),
    "ioctl": (16, 29),
}


@dataclass(frozen=True)
class Arch:
    """One architecture's audit value and which column of the tables holds its numbers."""

    name: str
    audit: int
    column: int
    x32_check: bool  # x86_64 shares its audit value with x32, told apart by bit 30 of the number


ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, 0, True),
    "aarch64": Arch("aarch64", 0xC00000B7, 1, False),
}


def supported(machine: str | None = None) -> bool:
    """Tell whether this (or the named) architecture has a syscall table here."""
    return (machine or platform.machine()) in ARCHES


def denied_numbers(machine: str) -> dict[str, int]:
    """Return the unconditionally denied calls that exist on machine, by name."""
    col = ARCHES[machine].column
    return {name: nr for name, nrs in DENIED.items() if (nr := nrs[col]) is not None}


def program(machine: str | None = None) -> bytes:
    """Return the classic-BPF program (struct sock_filter[]) for machine (default: this one)."""
    return b"".join(
        struct.pack("=HBBI", *op) for op in _assemble(_source(ARCHES[machine or platform.machine()]))
    )


Op = tuple  # (code, "label"|offset, "label"|offset, k) before assembly; labels are strings


def _source(arch: Arch) -> list[Op | str]:
    """The program with symbolic jump targets (cBPF only jumps forward); a bare string marks a label."""
    nr = {name: nrs[arch.column] for name, nrs in FILTERED.items()}
    eperm, allow = "eperm", "allow"
    src: list[Op | str] = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        (JEQ_K, 0, eperm, arch.audit),
        (LD_W_ABS, 0, 0, OFF_NR),
    ]
    if arch.x32_check:
        src.append((JGE_K, eperm, 0, X32_BIT))
    src += [(JEQ_K, eperm, 0, n) for n in sorted(denied_numbers(arch.name).values())]
    src += [(JEQ_K, "socket", 0, nr["socket"]), (JEQ_K, "socket", 0, nr["socketpair"])]
    src += [(JEQ_K, "clone", 0, nr["clone"]), (JEQ_K, "unshare", 0, nr["unshare"])]
    src += [(JEQ_K, "enosys", 0, nr["clone3"]), (JEQ_K, "persona", 0, nr["personality"])]
    src += [(JEQ_K, "ioctl", 0, nr["ioctl"]), (RET_K, 0, 0, RET_ALLOW)]
    src += ["socket", (LD_W_ABS, 0, 0, OFF_ARG[0])]
    src += [(JEQ_K, allow, 0, fam) for fam in ALLOWED_FAMILIES.values()]
    src += [(JEQ_K, 0, "eafnosupport", AF_NETLINK), (LD_W_ABS, 0, 0, OFF_ARG[2])]
    src += [(JEQ_K, allow, "eafnosupport", NETLINK_ROUTE)]
    src += ["clone", (LD_W_ABS, 0, 0, OFF_ARG[0]), (JSET_K, eperm, allow, NS_FLAGS)]
    src += ["unshare", (LD_W_ABS, 0, 0, OFF_ARG[0]), (JSET_K, eperm, allow, NS_FLAGS | CLONE_NEWTIME)]
    src += ["persona", (LD_W_ABS, 0, 0, OFF_ARG[0])]
    src += [(JEQ_K, allow, 0, p) for p in PERSONAS] + [(JA, 0, 0, eperm)]
    src += ["ioctl", (LD_W_ABS, 0, 0, OFF_ARG[1]), (JEQ_K, eperm, 0, TIOCSTI)]
    src += [(JEQ_K, eperm, allow, TIOCLINUX)]
    src += [allow, (RET_K, 0, 0, RET_ALLOW), "eperm", (RET_K, 0, 0, RET_ERRNO | errno.EPERM)]
    src += ["eafnosupport", (RET_K, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT)]
    src += ["enosys", (RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    return src


def _assemble(src: list[Op | str]) -> list[tuple[int, int, int, int]]:
    """Resolve labels to forward offsets (cBPF jumps are relative to the next instruction)."""
    labels: dict[str, int] = {}
    ops: list[Op] = []
    for item in src:
        if isinstance(item, str):
            labels[item] = len(ops)
        else:
            ops.append(item)

    def rel(target: int | str, here: int, limit: int) -> int:
        if isinstance(target, int):
            return target
        off = labels[target] - here - 1
        if not 0 <= off <= limit:
            raise ValueError(f"seccomp jump to {target} out of range ({off})")
        return off

    out = []
    for i, (code, jt, jf, k) in enumerate(ops):
        if code == JA:  # JA takes its offset in k (32 bits); jt/jf are unused
            out.append((code, 0, 0, rel(k, i, 0xFFFFFFFF)))
        else:
            out.append((code, rel(jt, i, 255), rel(jf, i, 255), k))
    return out
