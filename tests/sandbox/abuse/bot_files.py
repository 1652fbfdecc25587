# Threat: read the bot's files: the project checkout, its .env, the SQLite database, root's home,
# /etc/shadow, and anything else of the host that was bound into the sandbox by mistake. The walk
# looks for a non-secret marker that the test writes next to the secret in every planted file.
import json
import os
import time

P = globals().get("PARAMS") or {}
MARKER = P.get("marker", "CODEBOT-SECRET-MARKER").encode()
SKIP_TOP = {"proc", "sys", "dev", "usr"}


def probe(path):
    try:
        if os.path.isdir(path):
            return "DIR " + json.dumps(sorted(os.listdir(path))[:50])
        with open(path, "rb") as f:
            return "FILE " + f.read(4096).decode("utf-8", "replace")
    except OSError as e:
        return f"ERR {type(e).__name__} errno={e.errno}"


def walk_for_marker(deadline, max_files=20000):
    hits, seen = {}, 0
    for top in sorted(os.listdir("/")):
        if top in SKIP_TOP:
            continue
        for root, _dirs, files in os.walk("/" + top, followlinks=False):
            for name in files:
                seen += 1
                if seen > max_files or time.monotonic() > deadline:
                    return hits, seen
                path = os.path.join(root, name)
                try:
                    if os.path.getsize(path) > 1 << 20:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if MARKER in data:
                    hits[path] = data.decode("utf-8", "replace")
    return hits, seen


paths = [
    *P.get("paths", []),
    "/etc/shadow",
    "/etc/passwd",
    "/root",
    "/root/.bash_history",
    "/home",
    "/work",
    "/etc/ssh",
    "/var/lib",
    "/proc/1/root/etc/shadow",
]
hits, seen = walk_for_marker(time.monotonic() + float(P.get("walk_s", 3)), int(P.get("max_files", 20000)))
report = {
    "probes": {p: probe(p) for p in paths},
    "marker_hits": hits,
    "files_scanned": seen,
    "root_listing": sorted(os.listdir("/")),
}
print("REPORT " + json.dumps(report), flush=True)
