"""A small seccomp filter for the sandboxed code (defence in depth; bwrap's --add-seccomp-fd).

Namespaces already make most of these calls useless; the filter also removes rarely needed kernel attack
surface (io_uring, bpf, perf, keyrings, userfaultfd) and stops `ptrace` of the sandbox's own pid 1, which
otherwise hangs the run until its timeout. Blocked calls fail with EPERM. Only x86_64 has a table; other
architectures run without the filter (doctor says so).
"""

from __future__ import annotations

import platform
import struct

# struct seccomp_data: nr at offset 0, arch at offset 4
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO_EPERM = 0x00050000 | 1
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06

BLOCKED_X86_64 = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "setns": 308,
    "open_by_handle_at": 304,
    "fanotify_init": 300,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "acct": 163,
}


def supported() -> bool:
    """Tell whether this machine's architecture has a syscall table here."""
    return platform.machine() == "x86_64"


def program() -> bytes:
    """Return the classic-BPF program (struct sock_filter[]) that bwrap loads from a file descriptor."""
    blocked = sorted(BLOCKED_X86_64.values())
    n = len(blocked)
    ops = [
        (_LD_W_ABS, 0, 0, 4),  # A = arch
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),  # another ABI (i386) -> deny below
        (_RET_K, 0, 0, _RET_ERRNO_EPERM),
        (_LD_W_ABS, 0, 0, 0),  # A = syscall number
        (_JGE_K, n + 1, 0, _X32_BIT),  # the x32 ABI -> deny
    ]
    # each match jumps over the remaining checks and the ALLOW to the final DENY
    ops += [(_JEQ_K, n - i, 0, nr) for i, nr in enumerate(blocked)]
    ops += [(_RET_K, 0, 0, _RET_ALLOW), (_RET_K, 0, 0, _RET_ERRNO_EPERM)]
    return b"".join(struct.pack("=HBBI", *op) for op in ops)
