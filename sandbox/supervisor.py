"""The supervisor that runs inside the sandbox (stdlib only; passed to `python -c`).

It is pid 1 of the sandbox's pid namespace (bwrap --as-pid-1), so no signal from the code reaches it, and
non-dumpable, so /proc/1/mem, /proc/1/fd and /proc/1/environ give the code nothing. It holds the only copy
of the report fd inside the sandbox; no secret or nonce is involved at all.

Protocol:
1. argv: SITE_DIR PREIMPORT (comma-separated modules, may be empty) REPORT_FD [UID GID]. With UID GID it
   was started as root and switches to them before anything else (see _become). The host puts the source
   of sandbox/workspace_box.py in front of this file as a string, compiled on first use (warm slots:
   before READY).
2. It imports PREIMPORT (failures ignored) and forks the child that will run the code, then writes
   b"READY\\n" on REPORT_FD. The child closes the report fd (and the supervisor's other fds) at once.
3. The child reads one header line (space-separated integers: its rlimits and the file caps) from stdin,
   then the user code until EOF; it hands the file caps to the supervisor, closes every fd but 0-2 and its
   private pipe, takes /dev/null as stdin, lowers its limits and runs the code. Its stdout and stderr are
   the host's pipes, where the host counts every byte (there are no in-band marks at all).
4. When the child has exited, the supervisor kills everything else in the namespace and reaps it, then
   writes on REPORT_FD: the child's report line (`R exc_type result error`, base64 or "-"; `N` if the
   child sent nothing, `X` if its pipe held no well-formed line), one `F name size` line plus the bytes per
   collected file, `S name` per skipped file, and `E status`: the child's status from the supervisor's own
   waitpid (code, or 128+signal), which is also the supervisor's exit status.
5. A workspace run (issue 14; sandbox/workspace_box.py, sandbox/workspace.py) has four more header fields
   (manifest bytes, state bytes, keep_state, max_state_bytes); the manifest, the files and the state follow
   the header on stdin. The child places the files before the code and sends their baseline (name, size,
   hash) after the C line; it restores the state after lowering its limits (then writes `P`: without it the
   supervisor reports the state cleared, `T 0`) and, after the code, writes the
   saved state just before its report line, which then has three more fields (state length or "-", kept
   names, dropped names). The supervisor reports them as `K kept dropped`, `T size` + bytes (`T -`: the
   state did not fit its tail), and `D name` per placed file that is gone; files still as placed are not
   collected.
The child is forked from the pre-imported supervisor before the code arrives, so the page-table copy is
off the run's path and the child's exit only drops shared pages (~1 ms, where an interpreter that imported
numpy and matplotlib itself takes 3-10 ms to free them). The host ends the run at `E`: waiting for the
whole sandbox to exit would add the supervisor's own teardown to every run; it is reaped in the background.
The child's report can be forged by the code (it shares the process), but it only carries what the code
controls anyway: its result, its exception. Only builtin or tiny modules are imported up front: json or
traceback would add ms to every cold start.
"""

import _signal
import binascii
import os
import select
import stat
import sys

MAX_REPR = 10_000
MAX_ERROR = 10_000
LIST_EXTRA = 5000  # names reported as skipped beyond max_files (the host accepts max_files + 10,000)
CHILD_REPORT_MAX = 256 * 1024  # keep the tail: code may write junk into its private pipe first
BASELINE_MAX = 1 << 20  # the baseline of at most 1000 placed files
USER_FILENAME = "<code>"
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_CAP_VERSION_3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set


def _libc(*names):
    """Return libc functions taking ints or bytes (as pointers) and returning an int."""
    import _ctypes  # the C module only: the ctypes package costs ~4 ms, this ~0.8 ms

    class _Int(_ctypes._SimpleCData):
        _type_ = "i"

    class _Fn(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = _Int

    libc = _ctypes.dlopen(None)  # type: ignore[arg-type]
    return [_Fn(_ctypes.dlsym(libc, name)) for name in names]


def _become(uid, gid, prctl, capset):
    """Root mode: drop from root to the slot's host uid, before anything else runs; exit if any power is left.

    bwrap started this process as root with CAP_SETUID, CAP_SETGID and CAP_SETPCAP only (and no user
    namespace). The bounding set goes first (that needs CAP_SETPCAP), then the groups and ids: the switch
    from uid 0 to non-zero uids clears the permitted and effective sets, and capset clears the inheritable
    one. /proc/self/status must then show the uid everywhere and no capability in any set.
    """
    cap = 0  # up to the kernel's last capability (then EINVAL); a failure earlier is caught below
    while cap < 64 and prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    capset(_CAP_VERSION_3.to_bytes(4, "little") + bytes(4), bytes(24))  # all three sets empty
    with open("/proc/self/status", "rb") as f:
        status = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
    ids = b"%d\t%d\t%d\t%d" % ((uid,) * 4), b"%d\t%d\t%d\t%d" % ((gid,) * 4)
    caps = [status.get(b"Cap" + k, b"?").strip() for k in (b"Inh", b"Prm", b"Eff", b"Bnd", b"Amb")]
    same = (status.get(b"Uid", b"").strip(), status.get(b"Gid", b"").strip()) == ids
    if not same or status.get(b"Groups", b"?").strip() or any(c != b"0" * 16 for c in caps):
        os.write(2, b"sandbox supervisor: the switch to the sandbox uid left privileges\n")
        os._exit(70)


def _preimport(modules):
    for name in filter(None, modules.split(",")):
        try:  # noqa: SIM105 - contextlib would cost every cold start an import
            __import__(name)
        except Exception:  # a missing package must not break the sandbox
            pass


def _set_limits(cpu_ms, nofile, fsize, as_bytes, nproc):
    """Lower the child's hard limits before any user code runs (0 = leave that limit to a cgroup)."""
    import resource  # only the child needs it: not imported on the supervisor's way to READY

    used = resource.getrusage(resource.RUSAGE_SELF)  # the pre-imports do not count
    cpu = max(1, int(used.ru_utime + used.ru_stime + cpu_ms / 1000 + 0.5))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    if as_bytes:
        with open("/proc/self/statm") as f:  # the baseline (preimported modules) does not count
            base = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (base + as_bytes,) * 2)
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _user_tb(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILENAME:
        tb = tb.tb_next
    return tb


def _format_error(exc):
    try:
        import traceback

        if isinstance(exc, SyntaxError):
            text = "".join(traceback.format_exception_only(type(exc), exc))
        else:
            text = "".join(traceback.format_exception(type(exc), exc, _user_tb(exc.__traceback__)))
    except BaseException:
        text = type(exc).__name__ + " (traceback unavailable)\n"
    return text if len(text) <= MAX_ERROR else "...\n" + text[-MAX_ERROR:]


def _exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:  # noqa: SIM105
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _run(code, box=None):
    # A real module registered as __main__, so pickle (multiprocessing) finds the code's functions.
    main_module = type(sys)("__main__")
    sys.modules["__main__"] = main_module
    ns = main_module.__dict__
    ns["__builtins__"] = __builtins__
    out: dict = {"result": None, "error": None, "exc_type": None, "exit": 0}
    if box is not None and not _workspace().begin(box, ns, out):
        return out  # the workspace's files did not fit: the code would miss them
    try:
        exec(compile(code, USER_FILENAME, "exec"), ns)
    except SystemExit as exc:
        out["exit"] = _exit_status(exc)
    except BaseException as exc:
        out.update(error=_format_error(exc), exc_type=type(exc).__name__, exit=1)
    if "result" in ns:
        try:
            text = repr(ns["result"])
            out["result"] = text if len(text) <= MAX_REPR else text[:MAX_REPR] + "...[truncated]"
        except BaseException as exc:
            out["result"] = "<repr failed: " + type(exc).__name__ + ">"
    if box is not None:
        out["ws"] = _workspace().save_fields(box, ns)
    return out


def _workspace():
    """The workspace helpers (sandbox/workspace_box.py), compiled on first use only.

    The host puts their source in front of this file as the string _WORKSPACE_SOURCE (see
    sandbox/workspace.py supervisor_source).
    """
    if _WS:
        return _WS[0]
    source = globals().get("_WORKSPACE_SOURCE")
    if source is None:  # imported as a module (tests, tools)
        from sandbox import workspace_box as mod
    else:
        mod = type(sys)("workspace_box")
        exec(compile(source, "<workspace>", "exec"), mod.__dict__)
    _WS.append(mod)
    return mod


_WS: list = []


def _encode(value):
    if value is None:
        return b"-"
    return binascii.b2a_base64(str(value).encode("utf-8", "replace"), newline=False)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _warm_up():
    """Do, while the code has not arrived yet, what the run would otherwise wait for.

    The first compile() in a process sets the compiler up (~0.6 ms, and its copy-on-write faults in this
    fresh fork). Done here rather than in the supervisor, it overlaps with the host's handling of READY on
    a cold start and leaves the supervisor's own start-up shorter.
    """
    import resource  # noqa: F401 - loaded now; _set_limits finds it in sys.modules

    compile("result = None", USER_FILENAME, "exec")


def _child(report_fd, pipe_r, pipe_w, wake_fds, prctl):
    """Read the code, hand the file caps over, run the code in this process; never returns."""
    try:
        me = os.getpid()
        os.setpgid(0, 0)  # weak mode kills this group; in a pid namespace it is harmless
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        for fd in (report_fd, pipe_r, *wake_fds):  # the report fd is gone before anything else happens
            os.close(fd)
        prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # the code's own process is an ordinary one
        _warm_up()
        header = [int(v) for v in sys.stdin.buffer.readline().split()]
        box = _workspace().receive(sys.stdin.buffer, header[8:]) if len(header) > 8 else None
        code = sys.stdin.buffer.read().decode("utf-8", "replace")
        # the file caps go to the supervisor before any user code runs, so the code cannot change them
        caps = b"C " + b" ".join(b"%d" % v for v in header[5:8])
        if box is not None:  # and the workspace's baseline: what the code found, to compare at the end
            base = box.baseline_bytes()
            box.pipe_w = pipe_w
            caps += b" %d %d %d\n" % (box.max_state if box.keep_state else 0, len(base), box.restoring) + base
        _write_all(pipe_w, caps if box is not None else caps + b"\n")
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.closerange(3, pipe_w)  # anything else inherited
        os.closerange(pipe_w + 1, 1 << 20)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        _set_limits(*header[:5])
        del header
        out = _run(code, box)
        for stream in (sys.__stdout__, sys.__stderr__):
            try:  # noqa: SIM105
                stream.flush()  # type: ignore[union-attr]
            except BaseException:
                pass
        if os.getpid() == me:  # a child forked by the code exits quietly, as a script's would
            fields = (out["exc_type"], out["result"], out["error"])
            line = b"\nR " + b" ".join(map(_encode, fields))
            if box is not None:  # the state goes just before the line that gives its length
                if sum(map(len, box.saved)) > CHILD_REPORT_MAX:
                    _workspace().widen(pipe_w)
                for part in (b"\n", *box.saved):
                    _write_all(pipe_w, part)
                line += b" " + out["ws"]
            _write_all(pipe_w, line + b"\n")
        os._exit(out["exit"])
    except BaseException:
        os._exit(70)


def _read_line(fd, report_fd, limit=128):
    """Read one short line byte by byte (nothing past it); b"" if the child died first."""
    line = b""
    while not line.endswith(b"\n") and len(line) < limit:
        chunk = _read_some(fd, 1, report_fd)
        if not chunk:
            return b""
        line += chunk
    return line


def _read_some(fd, most, report_fd):
    """Read from the child's (non-blocking) pipe, waiting while it is empty unless the host is gone."""
    while True:
        try:
            return os.read(fd, most)
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(report_fd, 0)  # POLLERR once the host's read end is closed
            if any(got == report_fd for got, _ in poller.poll()):
                _host_gone()


def _host_gone():
    """The host closed its end of the report pipe (it died, or gave the sandbox up): end everything.

    bwrap's --die-with-parent cannot do it once this process switched uid (the signal would come from a
    root bwrap without capabilities, which may not signal another uid), so the supervisor watches the
    host itself. As pid 1 its exit ends every process of the namespace; weak mode kills the child's group.
    """
    if os.getpid() != 1 and _CHILD:
        try:  # noqa: SIM105
            os.killpg(_CHILD[0], 9)
        except OSError:
            pass
    os._exit(70)


_CHILD: list = []  # the code's process, once forked


def _wait_child(pid, pipe_r, wake_r, report_fd, cap=CHILD_REPORT_MAX):
    """Read the child's pipe until the child exits (reaping orphans as they die); return (status, tail)."""
    poller = select.poll()
    poller.register(pipe_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)  # a byte per SIGCHLD
    poller.register(report_fd, 0)  # POLLERR: the host is gone
    tail, status = bytearray(), None
    while status is None:
        for fd, _ in poller.poll():
            if fd == wake_r:
                os.read(wake_r, 4096)
            elif fd == report_fd:
                _host_gone()
            else:
                try:
                    more = _read_into(pipe_r, tail, cap)
                except BlockingIOError:  # woken, but another wake-up took the data first
                    continue
                if not more:
                    poller.unregister(pipe_r)
        status = _reap(pid)
    return status, tail


def _read_into(fd, tail, cap=CHILD_REPORT_MAX):
    chunk = os.read(fd, 65536 if cap <= CHILD_REPORT_MAX else 1 << 20)  # a workspace's state: large reads
    tail += chunk
    del tail[:-cap]
    return bool(chunk)


def _reap(pid):
    """Reap every exited process; return the child's wait status once it is among them."""
    found = None
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if done == 0:
            return found
        if done == pid:
            found = status


def _kill_rest(pid):
    """Kill every other process the code left, and reap them, so nothing changes the files any more."""
    if os.getpid() == 1:  # pid 1 of the namespace: kill(-1) reaches exactly the sandbox's processes
        while True:
            try:  # noqa: SIM105
                os.kill(-1, 9)
            except OSError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    try:  # noqa: SIM105 - weak mode, no pid namespace: the child's group only (kill(-1) hits the host's)
        os.killpg(pid, 9)
    except OSError:
        pass
    _reap(pid)


def _child_report(tail):
    """Return the last line of the child's pipe if it is a well-formed report; N: none came; X: junk."""
    line = bytes(tail).rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not line:
        return b"N\n"
    parts = line.split(b" ")
    if len(parts) not in (4, 7) or parts[0] != b"R":
        return b"X\n"
    if len(parts) == 7 and not (parts[4] == b"-" or parts[4].isdigit()):
        return b"X\n"
    for part in parts[1:4] + parts[5:]:
        if part != b"-":
            try:
                binascii.a2b_base64(part, strict_mode=True)
            except (binascii.Error, ValueError):
                return b"X\n"
    return line + b"\n"


def _collect(out, max_files, max_file_bytes, max_total, baseline=None):
    """Add the regular files left in the working directory (never following links) within the caps.

    With a workspace, files still as they were placed (size and content hash) are left out, and each
    placed file that is gone is reported as `D name`.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        names = _names(dir_fd, max_files + LIST_EXTRA)
    except OSError:
        return
    placed = _workspace().parse_baseline(baseline) if baseline else {}  # b"": no files went in
    if placed:
        names = _workspace().changed_files(out, dir_fd, names, placed, max_files + LIST_EXTRA)
    sent, total = 0, 0
    for name in names:
        raw = binascii.b2a_base64(os.fsencode(name), newline=False)
        data = None
        if sent < max_files:
            data = _read_regular(dir_fd, name, flags, min(max_file_bytes, max_total - total))
        if data is None:
            out.append(b"S " + raw + b"\n")
            continue
        out += [b"F " + raw + b" " + str(len(data)).encode() + b"\n", data]
        sent, total = sent + 1, total + len(data)
    os.close(dir_fd)


def _read_baseline(fd, caps, report_fd):
    """Read the baseline of placed files that follows a workspace run's C line (None: no workspace)."""
    if len(caps) != 7 or not (caps[4].isdigit() and caps[5].isdigit()) or int(caps[5]) > BASELINE_MAX:
        return None
    want, data = int(caps[5]), b""
    while len(data) < want and (chunk := _read_some(fd, want - len(data), report_fd)):
        data += chunk
    return data


def _workspace_report(tail, line, cleared):
    """Split a workspace run's report line: R (as without one), K kept/dropped, T state (or T - if lost).

    cleared: restoring the state ended the child, so the report says the state is now empty (T 0).
    """
    parts = line.rstrip(b"\n").split(b" ")
    if len(parts) != 7:  # N or X: the child never reported, so it saved no state either
        if not cleared:
            return [line]
        why = "restoring the saved state ended the run, so the state was cleared"
        return [line, b"K - " + _workspace().encode_names([("(state)", why)]) + b"\n", b"T 0\n"]
    out = [b" ".join(parts[:4]) + b"\n", b"K " + parts[5] + b" " + parts[6] + b"\n"]
    if parts[4] != b"-":
        state = _split_state(tail, int(parts[4]))
        out += [b"T -\n"] if state is None else [b"T %d\n" % len(state), state]
    return out


def _split_state(tail, size):
    """Return the `size` state bytes the child wrote just before its report line, None if they were cut off.

    The child writes b"\\n" + state + b"\\nR ...\\n" last; the tail is bounded, so a state larger than
    what the supervisor kept is lost rather than mistaken for something else.
    """
    end = len(tail)
    while end and tail[end - 1] == 10:
        end -= 1
    nl = tail.rfind(b"\n", 0, end)
    if nl - size < 1 or tail[nl - size - 1] != 10:
        return None
    return memoryview(tail)[nl - size : nl]


def _names(dir_fd, most):
    """Return up to `most` entry names, sorted (a million empty files must not cost memory or time)."""
    names: list = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if len(names) >= most:
                break
            names.append(entry.name)
    return sorted(names)


def _read_regular(dir_fd, name, flags, cap):
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:  # ELOOP for symlinks, ENXIO for sockets, ...
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        chunks, left = [], cap + 1  # read one byte more than allowed to notice growth
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return None if len(data) > cap else data
    except OSError:
        return None
    finally:
        os.close(fd)


def main():
    """Pre-import, fork the child that will run the code, report READY, then report on the run."""
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # only the host may stop pid 1
    prctl, capset = _libc("prctl", "capset")
    if len(sys.argv) > 5:  # started as root (sandbox/command.py bwrap_argv): first of all, stop being it
        _become(int(sys.argv[4]), int(sys.argv[5]), prctl, capset)
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        os.write(2, b"sandbox supervisor: prctl(PR_SET_DUMPABLE) failed\n")
        os._exit(70)
    report_fd = int(sys.argv[3])
    sys.path.append(sys.argv[1])
    _preimport(sys.argv[2])
    if sys.argv[2]:  # a warm slot: a workspace run must not compile its helpers after the code arrives
        _workspace().warm()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, lambda *_: None)  # wakes poll() through wake_w
    pipe_r, pipe_w = os.pipe()
    pid = os.fork()  # before READY: the page-table copy is off the run's path
    if pid == 0:
        _child(report_fd, pipe_r, pipe_w, (wake_r, wake_w), prctl)
    _CHILD.append(pid)
    os.close(pipe_w)
    os.close(0)  # stdin (the header and the code) is the child's alone
    os.set_blocking(pipe_r, False)  # every wait on it also watches for the host's end (_read_some)
    _write_all(report_fd, b"READY\n")
    caps = _read_line(pipe_r, report_fd).split()  # written before any user code runs
    baseline = _read_baseline(pipe_r, caps, report_fd)
    # the child restores the state before the code; if it never says so, the state ended it
    cleared = baseline is not None and caps[6] == b"1" and _read_line(pipe_r, report_fd) != b"P\n"
    # a workspace run's tail also holds its state, and two base64 lists of names
    tail_cap = CHILD_REPORT_MAX + (0 if baseline is None else int(caps[4]) + CHILD_REPORT_MAX)
    status, tail = _wait_child(pid, pipe_r, wake_r, report_fd, tail_cap)
    _kill_rest(pid)
    for _ in range(64):  # bounded: in weak mode an escaped process may still write
        try:
            if not _read_into(pipe_r, tail, tail_cap):
                break
        except BlockingIOError:
            break
    out = [_child_report(tail)]
    if baseline is not None:
        out = _workspace_report(tail, out[0], cleared)
    if len(caps) in (4, 7) and caps[0] == b"C":
        most, per_file, total = map(int, caps[1:4])
        _collect(out, most, per_file, total, baseline)
    code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    out.append(b"E %d\n" % code)
    if baseline is not None and sum(map(len, out)) > CHILD_REPORT_MAX:
        _workspace().widen(report_fd)  # a large state or files: piece by piece, not copied once more
        for piece in out:
            _write_all(report_fd, piece)
    else:
        _write_all(report_fd, b"".join(out))  # one write: the host parses it in one wake-up
    os._exit(code)


if __name__ == "__main__":
    main()
