# Threat: starve concurrent runs through the per-user kernel quotas of a shared host uid: take every
# inotify instance (fs.inotify.max_user_instances) and all the pipe buffer pages the user may have
# (fs.pipe-user-pages-soft), then hold them. A run under the same uid then gets EMFILE from
# inotify_init1 and 8 KiB pipes it cannot grow. Safety valve: it lets go after `stop_after_s`.
import ctypes
import fcntl
import json
import os
import time

P = globals().get("PARAMS") or {}
F_SETPIPE_SZ = 1031
libc = ctypes.CDLL(None, use_errno=True)
held, inotify, pipes, error = [], 0, 0, None
for _ in range(int(P.get("max_inotify", 1024))):
    fd = libc.inotify_init1(0)
    if fd < 0:
        error = f"inotify errno={ctypes.get_errno()}"
        break
    held.append(fd)
    inotify += 1
for _ in range(int(P.get("max_pipes", 256))):
    try:
        r, w = os.pipe()
    except OSError as e:
        error = f"pipe errno={e.errno}"
        break
    held += [r, w]
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
    except OSError as e:  # the user's soft limit on pipe pages is reached
        error = f"setpipe errno={e.errno}"
        break
    pipes += 1
print("REPORT " + json.dumps({"inotify": inotify, "pipes": pipes, "stopped_by": error}), flush=True)
deadline = time.monotonic() + float(P.get("stop_after_s", 8))
while time.monotonic() < deadline and not os.path.exists(P.get("release_file", "/nonexistent")):
    time.sleep(0.05)
