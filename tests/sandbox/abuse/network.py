# Threat: reach a network: the bot's own services on 127.0.0.1 and ::1 (TCP and UDP), an abstract
# unix socket of the host, DNS resolution, and the internet (UDP 1.1.1.1:53, TCP 1.1.1.1:443).
import json
import socket

P = globals().get("PARAMS") or {}
PORT = int(P.get("tcp_port", 9))
PORT6 = int(P.get("tcp6_port", PORT))
UPORT = int(P.get("udp_port", 9))
PAYLOAD = b"hello-from-sandbox\n"


def attempt(fn):
    try:
        return "OK " + str(fn())
    except OSError as e:
        return f"ERR {type(e).__name__} errno={e.errno} {e}"


def tcp(family, host, port):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        s.connect((host, port))
        s.sendall(PAYLOAD)
        return s.recv(100)


def udp(family, host, port):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(PAYLOAD, (host, port))
        return s.recvfrom(512)


def unix_abstract(name):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        s.connect("\0" + name)
        s.sendall(PAYLOAD)
        return s.recv(100)


report = {
    "interfaces": [name for _, name in socket.if_nameindex()],
    "tcp4_loopback": attempt(lambda: tcp(socket.AF_INET, "127.0.0.1", PORT)),
    "tcp6_loopback": attempt(lambda: tcp(socket.AF_INET6, "::1", PORT6)),
    "udp4_loopback": attempt(lambda: udp(socket.AF_INET, "127.0.0.1", UPORT)),
    "unix_abstract": attempt(lambda: unix_abstract(P.get("abstract_name", "codebot-none"))),
    "dns": attempt(lambda: socket.getaddrinfo("example.com", 80)),
    "udp_1111_53": attempt(lambda: udp(socket.AF_INET, "1.1.1.1", 53)),
    "tcp_1111_443": attempt(lambda: tcp(socket.AF_INET, "1.1.1.1", 443)),
}
print("REPORT " + json.dumps(report), flush=True)
