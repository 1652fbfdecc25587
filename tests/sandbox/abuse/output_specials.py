# Threat: trick the host's file collector. Leave symlinks to host secrets (the bot's .env by its host
# path, /proc/self/environ, which on the host would be the BOT's environment, /etc/shadow, /), a
# FIFO with no writer (opening it blocks), a unix socket, a directory named like an image, a hard
# link, a device node, a huge sparse file, and hostile names (newline, escape codes, invalid UTF-8,
# Windows device names, a leading dash, 255 bytes). Only `ok.txt` is an honest regular file.
import json
import os
import socket

P = globals().get("PARAMS") or {}
report = {}


def attempt(name, fn):
    try:
        fn()
        report[name] = "OK"
    except OSError as e:
        report[name] = f"ERR errno={e.errno} {e.strerror}"


def write(name, text):
    with open(name, "w") as f:
        f.write(text)


write("ok.txt", "fine")
write("sparse.bin", "")
for link, target in {
    "env.txt": P.get("host_secret", "/nonexistent"),
    "environ.txt": "/proc/self/environ",
    "shadow.txt": "/etc/shadow",
    "root.png": "/",
    "proc1.txt": "/proc/1/environ",
    "loop.txt": "loop.txt",
}.items():
    attempt("symlink " + link, lambda link=link, target=target: os.symlink(target, link))
attempt("fifo", lambda: os.mkfifo("fifo.txt"))
attempt("socket", lambda: socket.socket(socket.AF_UNIX).bind("sock.txt"))
attempt("dir", lambda: os.mkdir("dir.png"))
attempt("hardlink_local", lambda: os.link("ok.txt", "hard.txt"))
attempt("hardlink_usr", lambda: os.link("/usr/bin/python3.11", "python.bin"))
attempt("mknod", lambda: os.mknod("null.dev", 0o20666, os.makedev(1, 3)))
attempt("sparse", lambda: os.truncate("sparse.bin", int(P.get("sparse_bytes", 30 << 20))))
for name in [
    "a\nb.txt",
    "\x1b[31mred.txt",
    b"\xff\xfe.txt",
    "CON",
    "nul.txt",
    "-rf.txt",
    "x" * 251 + ".txt",
    "<!channel>.txt",
    ".hidden.txt",
]:
    label = name if isinstance(name, str) else name.decode("latin-1")
    attempt("name " + repr(label), lambda name=name: write(name, "named"))
print("REPORT " + json.dumps(report), flush=True)
