"""The workspace half of the supervisor, run inside the sandbox (stdlib only; see sandbox/supervisor.py).

The host puts this file's source in front of the supervisor's as a string (workspace.supervisor_source);
the supervisor compiles it only when a run has a workspace (warm slots do so before READY), so plain cold
runs do not pay for it.

Files in: the child reads a manifest and the files' bytes from stdin (after the header line) and writes
each file into the working directory before any user code runs, never following a link, hashing as it
writes. The names, sizes and hashes (the baseline) go to the supervisor before the code starts, so the
code cannot change them; at the end the supervisor returns only files that are new or differ from it.

State: after the limits are lowered (a hostile blob runs with the code's rights only) the child restores
the names of the previous run from the state blob; after the code it saves every top-level name it can.
The blob is our own container of one entry per name, so one bad entry never loses the others:
    MAGIC, then per name: b"<name b64> <kind> <length>\\n" + payload
kind "p": a pickle of the value; "m": a module, re-imported by name. Functions and classes the code
defined, and instances of them, cannot be pickled by value with the stdlib (pickle stores them by
reference to __main__, which does not exist yet when the next run restores), so they are dropped with a
reason; so are open files, sockets, generators and anything else pickle refuses. `result` is not kept:
it is each run's own answer.
"""

import binascii
import os
import stat
import sys

MAGIC = b"codebot-state-1\n"
CHUNK = 1 << 20
MAX_FILES_IN = 1000  # the host sends at most this many files
NAME_BYTES = 255
MAX_ENTRIES = 200  # kept / dropped entries reported (the rest are summarised in one entry)
SUMMARY_CHARS = 200
REASON_CHARS = 200
DIGEST = 16
# bytes of files from which OpenSSL's sha256 (~0.6 ms/MB, 3 ms to import) beats blake2b: not imported by warm
# slots, since libcrypto in every slot made each run's exit (even without a workspace) ~0.5 ms slower
SHA_FROM = 4 << 20
F_SETPIPE_SZ = 1031
WIDE_PIPE = 1 << 20  # the most an unprivileged process may ask for (fs.pipe-max-size)


def _hasher(kind):
    """b"s": OpenSSL's sha256 (SHA-NI); b"b": the builtin blake2b (~2 ms/MB, nothing to import)."""
    if kind == b"s":
        import _hashlib

        return _hashlib.openssl_sha256()
    import _blake2

    return _blake2.blake2b(digest_size=DIGEST)


def widen(fd):
    """Give a pipe a 1 MB buffer: a large workspace then crosses it in 16 times fewer wake-ups."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, WIDE_PIPE)
    except OSError:  # over the user's pipe quota: the default buffer still works
        pass


def warm():
    """Import what a workspace run uses (a warm slot does this before READY, off the run's path)."""
    import _pickle  # noqa: F401 - ~3 ms: functools, collections
    import reprlib  # noqa: F401

    _pickler()


def safe_name(name):
    """Tell whether a file name can be placed in the working directory as it is (no path, no hidden)."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeError:  # a lone surrogate: no file name on disk can be it
        return False
    return (
        0 < len(raw) <= NAME_BYTES
        and "/" not in name
        and "\0" not in name
        and not name.startswith(".")
        and name.isprintable()
    )


class Box:
    """What the child knows about its workspace: the baseline of placed files and the state to restore."""

    def __init__(self, keep_state, max_state):
        self.baseline = []  # (name, size, digest hex)
        self.state = b""  # the blob to restore
        self.saved = []  # the parts of the blob saved after the code
        self.keep_state = keep_state
        self.max_state = max_state
        self.dropped = []  # (name, reason)
        self.fatal = None  # why the code must not run (the files did not fit)
        self.kind = b"b"  # the content hash (see _hasher)
        self.restoring = False  # a state came in: the supervisor waits for P once it is restored
        self.pipe_w = -1  # the child's private pipe to the supervisor

    def baseline_bytes(self):
        return b"".join(b"%s %d %s\n" % (_b64(n), s, d) for n, s, d in self.baseline)


def _b64(text):
    return binascii.b2a_base64(text.encode("utf-8", "surrogateescape"), newline=False)


def receive(stream, fields):
    """Read the workspace from stdin (after the header) and place its files; return the Box.

    fields: manifest bytes, state bytes, keep_state (0/1), max_state_bytes.
    """
    manifest_len, state_len, keep, max_state = fields[:4]
    box = Box(bool(keep), max_state)
    entries = []
    for line in stream.read(manifest_len).split(b"\n")[:MAX_FILES_IN]:
        if line:
            raw, size = line.split(b" ")
            entries.append((binascii.a2b_base64(raw).decode("utf-8", "surrogateescape"), int(size)))
    total = sum(size for _, size in entries)
    if total + state_len > WIDE_PIPE // 16:
        widen(0)
    box.kind = b"s" if total > SHA_FROM else b"b"
    dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name, size in entries:
            _place(stream, dir_fd, name, size, box)
    finally:
        os.close(dir_fd)
    box.state = stream.read(state_len)
    box.restoring = bool(state_len)
    return box


def _place(stream, dir_fd, name, size, box):
    """Write one file (reading exactly `size` bytes from stream whatever happens, to stay in step)."""
    fd, why = -1, None
    if not safe_name(name):
        why = "unsafe file name: not placed"
    elif box.fatal is None:  # after a full disk, the rest is only read past
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            why = "not placed: " + (exc.strerror or type(exc).__name__)
    digest, left, written = _hasher(box.kind), size, fd >= 0
    while left > 0:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            raise EOFError("the workspace ended early")
        left -= len(chunk)
        if fd < 0:
            continue
        digest.update(chunk)
        try:
            _write_file(fd, chunk)
        except OSError as exc:  # ENOSPC: the files are larger than the run's disk
            box.fatal = "the workspace's files do not fit in the working directory: " + (exc.strerror or "")
            why = "not placed: " + (exc.strerror or type(exc).__name__)
            os.close(fd)
            fd = -1
    if fd >= 0:
        os.close(fd)
    if why is not None:
        box.dropped.append(("file " + name, why))
        if written:
            os.unlink(name, dir_fd=dir_fd)
    elif written:
        box.baseline.append((name, size, box.kind + digest.hexdigest().encode()))


def _write_file(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- state: restore before the code, save after it -------------------------------------------------


def begin(box, ns, out):
    """Restore the state into ns before the code; False (and the error in out) if the files did not fit."""
    if box.fatal:
        out.update(error=box.fatal + "\n", exc_type="WorkspaceError", exit=1, ws=save_fields(box, None))
        restored(box)  # nothing was restored, and nothing went wrong doing it
        return False
    restore(box, ns)
    return True


def restored(box):
    """Tell the supervisor the state is restored (before any of the code runs, so the code cannot).

    A state whose unpickling ends the process (a __reduce__ calling os._exit, a crash) never gets here:
    the supervisor then reports the state as cleared, so one hostile blob cannot break every later run.
    """
    if box.restoring:
        os.write(box.pipe_w, b"P\n")


def restore(box, ns):
    """Put the previous run's names into ns; anything that fails is dropped with a reason."""
    if not box.state:
        return restored(box)
    try:
        entries = _parse_state(box.state)
    except Exception:
        box.dropped.append(("(state)", "the saved state could not be restored (corrupt); starting fresh"))
        return restored(box)
    finally:
        box.state = b""  # the blob is freed once its entries are restored
    for name, kind, payload in entries:
        try:
            if kind == b"m":
                module = bytes(payload).decode()
                __import__(module)
                ns[name] = sys.modules[module]
            else:
                import _pickle

                ns[name] = _pickle.loads(payload)
        except BaseException as exc:  # a hostile or stale entry: that name only
            box.dropped.append((name, _bounded("could not be restored: " + _describe(exc))))
    restored(box)


def _parse_state(blob):
    if not blob.startswith(MAGIC):
        raise ValueError("bad magic")
    view, pos, entries = memoryview(blob), len(MAGIC), []
    while pos < len(blob):
        end = blob.index(b"\n", pos, pos + 1024)
        raw, kind, size_text = blob[pos:end].split(b" ")
        size = int(size_text)
        if kind not in (b"p", b"m") or size < 0 or end + 1 + size > len(blob):
            raise ValueError("bad entry")
        name = binascii.a2b_base64(raw, strict_mode=True).decode()
        if not name.isidentifier():
            raise ValueError("bad name")
        entries.append((name, kind, view[end + 1 : end + 1 + size]))
        pos = end + 1 + size
    return entries


def save(box, ns):
    """Return (the state blob's parts, kept, dropped) for the names the code left."""
    candidates: list = []
    for name in list(ns):
        if not isinstance(name, str) or not name.isidentifier():
            continue  # globals()[1] = ...: no name the next run could use (and restore would refuse it)
        if name.startswith("__") and name.endswith("__"):
            continue  # the module's own attributes and __builtins__
        if name == "result":
            continue  # each run's own answer: kept, it would stand as the answer of a run that set none
        try:
            value = ns[name]
            kind, payload = _encode(value)
        except BaseException as exc:
            box.dropped.append((name, _bounded("not kept: " + _describe(exc))))
            continue
        candidates.append((len(payload), len(candidates), name, kind, payload, value))
    candidates.sort(key=lambda c: c[:2])  # the smallest first: a cap drops the few big ones
    parts, kept, total = [MAGIC], [], len(MAGIC)
    for size, order, name, kind, payload, value in candidates:
        entry = b"%s %s %d\n" % (_b64(name), kind, size)
        if total + len(entry) + size > box.max_state:
            why = f"not kept: {size} bytes pickled, over the state cap of {box.max_state} bytes"
            box.dropped.append((name, why))
            continue
        parts += [entry, payload]
        total += len(entry) + size
        kept.append((order, name, "module" if kind == b"m" else _type_name(value), _summary(value, kind)))
    kept.sort()  # listed in the order the code made them
    return (
        parts,
        [k[1:] for k in kept],
        box.dropped,
    )  # written piece by piece: a large state is not copied again


def _encode(value):
    if isinstance(value, type(sys)):
        name = value.__name__
        if sys.modules.get(name) is not value:
            raise ValueError("a module that cannot be imported again by name")
        return b"m", name.encode()
    import io

    buf = io.BytesIO()
    _pickler()(buf, protocol=5).dump(value)
    return b"p", buf.getvalue()


_FUNCTION = type(widen)
_PICKLER: list = []


def _pickler():
    """A Pickler that refuses what the next run could not load: things defined in the code itself."""
    if not _PICKLER:
        import _pickle

        class Pickler(_pickle.Pickler):
            def reducer_override(self, obj):
                # called only for objects outside pickle's builtin types: plain data costs nothing here
                if isinstance(obj, (type, _FUNCTION)) and getattr(obj, "__module__", None) == "__main__":
                    raise _Unkept("a function or class defined in the code (define it again)")
                if type(obj).__module__ == "__main__":
                    raise _Unkept("an instance of a class defined in the code")
                return NotImplemented

        _PICKLER.append(Pickler)
    return _PICKLER[0]


class _Unkept(Exception):
    pass


def _describe(exc):
    if isinstance(exc, _Unkept):
        return str(exc)
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:
        return type(exc).__name__


def _bounded(text):
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _type_name(value):
    try:
        return type(value).__name__[:100]
    except BaseException:
        return "object"


def _summary(value, kind):
    """A short repr for the model (<= SUMMARY_CHARS); shape and columns first for arrays and tables."""
    if kind == b"m":
        return value.__name__
    try:
        head = ""
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple):
            head = f"shape {shape}; "
            columns = getattr(value, "columns", None)
            if columns is not None:
                head += "columns " + ", ".join(str(c) for c in list(columns)[:20]) + "; "
        import reprlib

        short = reprlib.Repr()
        short.maxother = short.maxstring = SUMMARY_CHARS
        text = head + short.repr(value)
    except BaseException as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return _bounded(text).replace("\t", " ")


def encode_names(entries):
    """Encode (field, ...) tuples as one base64 token: fields joined by tabs, entries by newlines."""
    if len(entries) > MAX_ENTRIES:
        more = ("(more)", f"{len(entries) - MAX_ENTRIES + 1} more names")
        entries = [*entries[: MAX_ENTRIES - 1], more]
    lines = ["\t".join(" ".join(str(f).split()).replace("\t", " ") for f in e) for e in entries]
    return binascii.b2a_base64("\n".join(lines).encode("utf-8", "replace"), newline=False) or b"-"


def save_fields(box, ns):
    """Return the report line's workspace fields: state length (or -), kept names, dropped names."""
    size, kept, dropped = b"-", [], box.dropped
    if box.keep_state and ns is not None:  # None: the code did not run, the previous state stands
        try:
            parts, kept, dropped = save(box, ns)
            box.saved, size = parts, b"%d" % sum(map(len, parts))
        except BaseException as exc:  # MemoryError, or a value whose pickling ran away
            box.saved = []
            dropped = [*box.dropped, ("(state)", "could not be saved: " + type(exc).__name__)]
    return b" ".join((size, encode_names(kept), encode_names(dropped)))


# --- the supervisor's side: which files changed --------------------------------------------------


def parse_baseline(data):
    """Return {name: (size, digest)} from the child's baseline lines (written before the code ran)."""
    found = {}
    for line in data.split(b"\n"):
        if line:
            raw, size, digest = line.split(b" ")
            found[binascii.a2b_base64(raw).decode("utf-8", "surrogateescape")] = (int(size), digest)
    return found


def unchanged(dir_fd, name, size, digest):
    """Tell whether the entry is still the regular file that was placed: same size, same content hash."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        h = _hasher(digest[:1])
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
        return digest[:1] + h.hexdigest().encode() == digest
    except OSError:
        return False
    finally:
        os.close(fd)


def changed_files(out, dir_fd, names, placed, most):
    """Drop the names still as placed; report placed files that are gone (when the listing is whole)."""
    if len(names) < most:
        for name in sorted(set(placed) - set(names)):
            out.append(b"D " + binascii.b2a_base64(os.fsencode(name), newline=False) + b"\n")
    return [n for n in names if n not in placed or not unchanged(dir_fd, n, *placed[n])]
