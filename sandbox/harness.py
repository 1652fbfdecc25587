"""The program that runs inside the sandbox (stdlib only; passed to `python -c`).

Protocol, all over the sandbox's stdin/stdout:
1. argv: SITE_DIR PREIMPORT (comma-separated modules, may be empty).
2. It imports PREIMPORT (failures ignored: a plain interpreter still works), then writes b"READY\\n".
3. It reads one header line (nonce and rlimits, space-separated integers), then the user code until EOF.
4. It lowers its rlimits (hard limits: the user code cannot raise them again), runs the code in a fresh
   namespace as __main__, and ends stdout with MARK(nonce) + the fields exit, exc_type, result, error,
   each base64-encoded UTF-8 ("-" for None), separated by spaces, ending in a newline. Before that it
   ends stderr with MARK(nonce) too, so the host can finish without waiting for the process teardown.
The nonce is never in argv or the environment, so printing cannot forge the trailer. Code that digs it out
of the interpreter's frames could misreport its own result, nothing more: the harness protects nothing,
every limit is enforced outside (namespaces, seccomp, cgroups, the host's caps and kill).
Only builtin modules are imported up front: json or traceback would add ~10 ms to every cold start.
"""

import binascii
import os
import resource
import sys

MAX_REPR = 10_000
MAX_ERROR = 10_000
USER_FILENAME = "<code>"


def mark(nonce):
    """Return the byte marker that starts the trailer."""
    return b"\x00\x1ecodebot-" + nonce.encode() + b"\x1e"


def _preimport(modules):
    for name in filter(None, modules.split(",")):
        try:  # noqa: SIM105 - contextlib would cost every cold start an import
            __import__(name)
        except Exception:  # a missing package must not break the sandbox
            pass


def _set_limits(cpu_ms, nofile, fsize, as_bytes, nproc):
    """Lower the hard limits before any user code runs (0 = leave that limit to a cgroup)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
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


def _run(code):
    # A real module registered as __main__, so pickle (multiprocessing) finds the code's functions.
    main_module = type(sys)("__main__")
    sys.modules["__main__"] = main_module
    ns = main_module.__dict__
    ns["__builtins__"] = __builtins__
    out: dict = {"result": None, "error": None, "exc_type": None, "exit": 0}
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
    return out


def _encode(value):
    if value is None:
        return b"-"
    return binascii.b2a_base64(str(value).encode("utf-8", "replace"), newline=False)


def _write_all(data):
    while data:
        data = data[os.write(1, data) :]


def _flush(mark_bytes):
    for stream in (sys.__stdout__, sys.__stderr__):
        try:  # noqa: SIM105
            stream.flush()  # type: ignore[union-attr]
        except BaseException:
            pass
    if mark_bytes:
        try:  # noqa: SIM105 - stderr's end: bwrap holds the pipe too, so EOF comes only after teardown
            os.write(2, mark_bytes + b"\n")
        except OSError:
            pass


def main():
    """Pre-import, report READY, then run the code from stdin once and exit."""
    sys.path.append(sys.argv[1])
    _preimport(sys.argv[2] if len(sys.argv) > 2 else "")
    _write_all(b"READY\n")
    main_pid = os.getpid()
    header = sys.stdin.buffer.readline().split()
    code = sys.stdin.buffer.read().decode("utf-8", "replace")
    trailer_mark = mark(header.pop(0).decode())
    _set_limits(*map(int, header))
    del header
    out = _run(code)
    if os.getpid() != main_pid:  # a child forked by the code exits quietly, as a script's would
        _flush(None)
        os._exit(out["exit"])
    _flush(trailer_mark)
    try:
        fields = (out["exit"], out["exc_type"], out["result"], out["error"])
        _write_all(trailer_mark + b" ".join(map(_encode, fields)) + b"\n")
    except BaseException:
        pass
    os._exit(out["exit"])


if __name__ == "__main__":
    main()
