"""The seccomp filter: its BPF program interpreted for x86_64 and aarch64, and a real abuse program.

aarch64 cannot run here, so the generated program is checked by a small classic-BPF interpreter that
refuses anything the kernel's checker would (backward or out-of-range jumps, unknown opcodes, no final
return): a program it accepts and answers for is the program the kernel would run.
"""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from sandbox import RunResult, Sandbox, seccomp

if __package__:
    from . import test_containment as kit
else:
    import test_containment as kit

canary, cold = kit.canary, kit.cold  # shared fixtures, found by name
ALLOW = "allow"
MAX_INSNS = 4096  # BPF_MAXINSNS


def run_bpf(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> str | int:
    """Interpret a seccomp cBPF program on one syscall; return "allow" or the errno it returns."""
    assert len(prog) % 8 == 0 and 0 < len(prog) // 8 <= MAX_INSNS
    insns = [struct.unpack("=HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("=iIQ6Q", nr, arch, 0, *full)
    acc, pc = 0, 0
    while True:
        assert pc < len(insns), "fell off the end of the program"
        code, jt, jf, k = insns[pc]
        if code == seccomp.LD_W_ABS:
            assert k % 4 == 0 and k + 4 <= len(data), f"load out of seccomp_data: {k}"
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
            continue
        if code == seccomp.RET_K:
            if k == seccomp.RET_ALLOW:
                return ALLOW
            assert k & 0xFFFF0000 == seccomp.RET_ERRNO, f"unexpected action {k:#x}"
            return k & 0xFFFF
        if code == seccomp.JA:
            target = pc + 1 + k
        else:
            taken = {
                seccomp.JEQ_K: acc == k,
                seccomp.JGT_K: acc > k,
                seccomp.JGE_K: acc >= k,
                seccomp.JSET_K: bool(acc & k),
            }
            assert code in taken, f"opcode {code:#x} not understood"
            target = pc + 1 + (jt if taken[code] else jf)
        assert pc < target < len(insns), f"jump from {pc} to {target}"
        pc = target


def numbers(machine: str) -> dict[str, int]:
    col = seccomp.ARCHES[machine].column
    return {name: nrs[col] for name, nrs in seccomp.FILTERED.items()}


@pytest.fixture(params=sorted(seccomp.ARCHES))
def arch(request: pytest.FixtureRequest) -> seccomp.Arch:
    return seccomp.ARCHES[request.param]


def test_every_denied_call_fails_with_eperm_and_others_pass(arch: seccomp.Arch) -> None:
    prog = seccomp.program(arch.name)
    denied = seccomp.denied_numbers(arch.name)
    for name in ("fsopen", "fsmount", "move_mount", "open_tree", "fsconfig", "fspick", "mount_setattr"):
        assert name in denied
    for name in ("pidfd_getfd", "ptrace", "bpf", "io_uring_setup", "keyctl", "mount", "name_to_handle_at"):
        assert name in denied
    for name, nr in denied.items():
        assert run_bpf(prog, nr, arch.audit) == errno.EPERM, name
    # read, write, openat, mmap, exit_group, futex on each arch: the everyday calls pass
    everyday = {"x86_64": (0, 1, 257, 9, 231, 202), "aarch64": (63, 64, 56, 222, 94, 98)}[arch.name]
    for nr in everyday:
        assert run_bpf(prog, nr, arch.audit) == ALLOW, nr


def test_socket_families_are_filtered(arch: seccomp.Arch) -> None:
    prog, nr = seccomp.program(arch.name), numbers(arch.name)
    for call in ("socket", "socketpair"):
        for family in (1, 2, 10):  # AF_UNIX, AF_INET, AF_INET6
            assert run_bpf(prog, nr[call], arch.audit, (family, 1, 0)) == ALLOW
        for family in (40, 17, 38, 31, 30, 0, 44, 0xFFFF):  # VSOCK PACKET ALG BLUETOOTH TIPC UNSPEC XDP
            assert run_bpf(prog, nr[call], arch.audit, (family, 1, 0)) == errno.EAFNOSUPPORT, family
        # the kernel reads an int: bits above 32 must not smuggle AF_VSOCK past the check
        assert run_bpf(prog, nr[call], arch.audit, ((1 << 32) | 40, 1, 0)) == errno.EAFNOSUPPORT
        assert run_bpf(prog, nr[call], arch.audit, ((1 << 32) | 2, 1, 0)) == ALLOW
    assert run_bpf(prog, nr["socket"], arch.audit, (16, 3, 0)) == ALLOW  # NETLINK_ROUTE: if_nameindex
    for proto in (9, 15, 4):  # NETLINK_AUDIT, KOBJECT_UEVENT, SOCK_DIAG
        assert run_bpf(prog, nr["socket"], arch.audit, (16, 3, proto)) == errno.EAFNOSUPPORT


def test_namespaces_clone3_personality_and_tiocsti(arch: seccomp.Arch) -> None:
    prog, nr = seccomp.program(arch.name), numbers(arch.name)
    assert run_bpf(prog, nr["clone"], arch.audit, (17,)) == ALLOW  # fork(): SIGCHLD
    assert run_bpf(prog, nr["clone"], arch.audit, (0x3D0F00,)) == ALLOW  # pthread_create's flags
    for flag in (0x10000000, 0x40000000, 0x20000, 0x20000000):
        assert run_bpf(prog, nr["clone"], arch.audit, (17 | flag,)) == errno.EPERM
        assert run_bpf(prog, nr["unshare"], arch.audit, (flag,)) == errno.EPERM
    assert run_bpf(prog, nr["unshare"], arch.audit, (0x80,)) == errno.EPERM  # CLONE_NEWTIME
    assert run_bpf(prog, nr["unshare"], arch.audit, (0x400,)) == ALLOW  # CLONE_FILES
    assert run_bpf(prog, nr["clone3"], arch.audit) == errno.ENOSYS
    assert run_bpf(prog, nr["personality"], arch.audit, (0xFFFFFFFF,)) == ALLOW
    assert run_bpf(prog, nr["personality"], arch.audit, (0,)) == ALLOW
    assert run_bpf(prog, nr["personality"], arch.audit, (0x0040000,)) == errno.EPERM  # ADDR_NO_RANDOMIZE
    assert run_bpf(prog, nr["ioctl"], arch.audit, (0, 0x5412)) == errno.EPERM
    assert run_bpf(prog, nr["ioctl"], arch.audit, (0, 0x5401)) == ALLOW  # TCGETS


def test_other_abis_are_refused() -> None:
    x86, arm = seccomp.ARCHES["x86_64"], seccomp.ARCHES["aarch64"]
    prog = seccomp.program("x86_64")
    assert run_bpf(prog, 1, 0x40000003) == errno.EPERM  # i386 write through int 0x80
    assert run_bpf(prog, 0x40000000 | 1, x86.audit) == errno.EPERM  # x32 write
    assert run_bpf(seccomp.program("aarch64"), 64, 0x40000028) == errno.EPERM  # arm (compat) write
    assert run_bpf(seccomp.program("aarch64"), 64, arm.audit) == ALLOW


HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


@pytest.mark.parametrize("machine", sorted(HEADERS))
def test_syscall_numbers_match_the_kernel_headers(machine: str) -> None:
    header = HEADERS[machine]
    if not header.is_file():
        pytest.skip(f"{header} not installed (apt-get install linux-libc-dev)")
    text = header.read_text()
    found = dict(re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text))
    ours = {**seccomp.denied_numbers(machine), **numbers(machine)}
    wrong = {n: (nr, found.get(n)) for n, nr in ours.items() if n in found and int(found[n]) != nr}
    assert wrong == {}, f"syscall numbers differ from {header}: {wrong}"
    missing = [n for n in ours if n not in found and n != "nfsservctl"]
    assert missing == [], f"not in {header}: {missing}"


# ---------------------------------------------------------------- in the real sandbox


async def test_odd_socket_families_mount_api_and_pidfd_getfd_are_refused_inside(cold: Sandbox) -> None:
    if not seccomp.supported():
        pytest.skip("no seccomp table for this architecture")
    out = await kit.run_unconfined(cold.cfg, kit.program("socket_families", control=True))
    control = kit.reports(RunResult(stdout=out))[-1]
    if control["vsock_stream"] != "OK":  # e.g. a kernel without vsock: the rest still proves the filter
        pytest.skip(f"control: AF_VSOCK is not available on this host unconfined: {control}")
    assert control["pidfd_getfd"] == "OK", control
    found = kit.report(await kit.run(cold, kit.program("socket_families")))
    afno = f"ERR errno={errno.EAFNOSUPPORT}"
    for key in ("vsock_stream", "vsock_dgram", "packet_raw", "alg", "bluetooth", "tipc", "family_high_bits"):
        assert found[key] == afno, (key, found)
    for key in ("netlink_audit", "netlink_uevent"):
        assert found[key] == afno, (key, found)
    for key in ("socketpair_vsock", "socketpair_tipc", "socketpair_netlink"):
        assert found[key] in (afno, f"ERR errno={errno.EOPNOTSUPP}"), (key, found)
    assert found["socketpair_vsock"] == afno, found
    for key in (
        "fsopen",
        "fspick",
        "open_tree",
        "fsconfig",
        "fsmount",
        "move_mount",
        "mount_setattr",
        "pidfd_getfd",
    ):
        assert found[key] == f"ERR errno={errno.EPERM}", (key, found)
    assert found["pidfd_open"] == "OK", found  # asyncio's child watcher still works
    await kit.assert_run_left_nothing(cold)
