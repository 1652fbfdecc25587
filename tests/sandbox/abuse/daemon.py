# Threat: a double-forked, setsid daemon that ignores SIGTERM/SIGHUP and tries to outlive the run:
# after `delay_s` it writes a marker into the working directory (the host-visible output dir) and
# /tmp, and keeps trying to reach the bot's TCP port. One daemon closes stdio, the other keeps the
# stdout pipe open so a host that waits for EOF would wait forever. Safety valve: gives up after
# `live_s`.
import json
import os
import signal
import socket
import time

P = globals().get("PARAMS") or {}
TOKEN = P.get("token", "codebot-daemon-marker")


def daemon_body(close_stdio):
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    if close_stdio:
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    out_dir = os.open(".", os.O_RDONLY | os.O_DIRECTORY)  # survives a later chdir/rename of the dir
    time.sleep(float(P.get("delay_s", 1.5)))
    end = time.monotonic() + float(P.get("live_s", 3))
    while time.monotonic() < end:
        for name in ("daemon-marker.txt", f"/tmp/{TOKEN}"):
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=out_dir)
                os.write(fd, TOKEN.encode())
                os.close(fd)
            except OSError:
                pass
        try:
            with socket.create_connection(("127.0.0.1", int(P.get("tcp_port", 9))), timeout=0.2) as s:
                s.sendall(TOKEN.encode())
        except OSError:
            pass
        time.sleep(0.2)
    os._exit(0)


def spawn_daemon(close_stdio):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            daemon_body(close_stdio)
        os._exit(0)


spawn_daemon(close_stdio=True)
spawn_daemon(close_stdio=False)
time.sleep(0.1)
print("REPORT " + json.dumps({"pid_ns": os.readlink("/proc/self/ns/pid")}), flush=True)
