# Threat: read secrets through file descriptors the bot leaked into the sandbox (a secret file or
# socket opened without O_CLOEXEC), by scanning /proc/self/fd and every fd number from 3 to 1024.
import json
import os
import socket
import stat

found = {}
listed = sorted(int(n) for n in os.listdir("/proc/self/fd"))
for fd in sorted(set(range(3, 1025)) | set(listed)):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    entry = {"mode": stat.filemode(st.st_mode)}
    try:
        entry["link"] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError as e:
        entry["link"] = f"ERR errno={e.errno}"
    if stat.S_ISSOCK(st.st_mode):
        try:
            sock = socket.socket(fileno=os.dup(fd))
            entry["peer"] = repr(sock.getpeername())
            sock.setblocking(False)
            entry["data"] = sock.recv(65536).decode("utf-8", "replace")
        except OSError as e:
            entry["data"] = f"ERR errno={e.errno}"
    else:
        blocking = os.get_blocking(fd)
        try:
            os.set_blocking(fd, False)  # a pipe with no data must not hang the scan
            try:
                data = os.pread(fd, 65536, 0)
            except OSError:
                data = os.read(fd, 65536)
            entry["data"] = data.decode("utf-8", "replace")
        except OSError as e:
            entry["data"] = f"ERR errno={e.errno}"
        finally:
            os.set_blocking(fd, blocking)
    found[fd] = entry
print("REPORT " + json.dumps({"listed": listed, "fds": found}), flush=True)
