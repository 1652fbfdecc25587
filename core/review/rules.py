"""The tables the static analysis matches against: risky modules, names, attributes and call targets."""

from __future__ import annotations

# What each rule means, phrased for a chat user ("the code ...").
RULE_TEXT = {
    "process": "starts other processes",
    "network": "uses the network",
    "fs-write": "writes or deletes files outside its working directory",
    "ctypes": "loads native code",
    "eval": "runs dynamically built code",
    "dunder": "reaches into Python internals",
    "env": "reads environment variables",
    "syntax": "is not valid Python",
}

# fmt: off
# Importing any of these (or a submodule) is a finding on its own.
MODULE_RULES: dict[str, str] = {
    **dict.fromkeys(("subprocess", "pty", "multiprocessing", "pexpect", "sh", "plumbum"), "process"),
    **dict.fromkeys(
        (
            "socket", "socketserver", "ssl", "urllib", "urllib2", "urllib3", "http", "requests", "httpx",
            "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "xmlrpc",
            "websocket", "websockets", "paramiko", "asyncssh", "dns", "webbrowser",
        ),
        "network",
    ),
    **dict.fromkeys(("ctypes", "_ctypes", "cffi"), "ctypes"),
    **dict.fromkeys(("importlib", "imp", "runpy", "marshal"), "eval"),
}

# Dotted names that are findings wherever they are referenced (called, aliased or passed around).
NAME_RULES: dict[str, str] = {
    **dict.fromkeys(
        (
            "os.system", "os.popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp", "os.kill",
            "os.killpg", "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
            "concurrent.futures.ProcessPoolExecutor",
        ),
        "process",
    ),
    **dict.fromkeys(
        ("os.environ", "os.environb", "os.getenv", "os.getenvb", "os.putenv", "os.unsetenv"), "env"
    ),
    **dict.fromkeys(("eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"), "eval"),
    **dict.fromkeys(("asyncio.open_connection", "asyncio.start_server"), "network"),
}
NAME_PREFIX_RULES: tuple[tuple[str, str], ...] = (("os.exec", "process"), ("os.spawn", "process"))

# Attribute names used to climb from an ordinary object to the interpreter's internals.
DUNDER_ATTRS = frozenset(
    {
        "__subclasses__", "__globals__", "__builtins__", "__code__", "__mro__", "__bases__", "__base__",
        "__closure__", "__loader__", "__getattribute__", "__dict__", "__class__", "f_globals", "f_locals",
        "f_back", "gi_frame", "tb_frame",
    }
)
# Of those, the ones so common in ordinary code that only a string literal (getattr tricks) counts.
BENIGN_ATTRS = frozenset({"__class__", "__dict__"})

# Calls that delete/move/overwrite a path given as their first (or, for copies, second) argument.
PATH_WRITERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.renames", "os.replace",
            "os.chmod", "os.chown", "os.truncate", "os.mkdir", "os.makedirs", "os.symlink", "shutil.rmtree",
            "shutil.chown",
        ),
        0,
    ),
    **dict.fromkeys(("shutil.move", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree"), 1),
}
OPENERS = frozenset({"open", "io.open", "codecs.open", "builtins.open"})
PATH_CONSTRUCTORS = frozenset(
    {"Path", "PosixPath", "PurePath", "pathlib.Path", "pathlib.PosixPath", "pathlib.PurePath", "os.path.join"}
)
HOME_CALLS = frozenset({"Path.home", "pathlib.Path.home", "os.path.expanduser", "os.path.expandvars"})
PATH_WRITE_METHODS = frozenset(
    {
        "write_text", "write_bytes", "unlink", "rmdir", "mkdir", "touch", "rename", "replace", "symlink_to",
        "chmod",
    }
)
# Methods that derive a new path from a path: outside stays outside.
PATH_DERIVERS = frozenset({"resolve", "expanduser", "absolute", "joinpath", "with_name", "with_suffix"})
# fmt: on
