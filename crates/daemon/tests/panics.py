# A client other than root against a debug wtmpdbd started with WTMPDB_TEST_PANIC
# (crates/daemon/tests/daemon.rs): twelve times, the call that panics, then a ping on a new
# connection. Usage: panics.py SOCKET OUT METHOD. Prints "ready", writes [what the call got,
# whether the ping was answered] for each to OUT (JSON), then waits for stdin to close.
import json, socket, sys

path, out, method = sys.argv[1:4]
print("ready", flush=True)


def call(m):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    s.sendall(json.dumps({"method": m}).encode() + b"\0")
    buf = b""
    try:
        while not buf.endswith(b"\0"):
            data = s.recv(4096)
            if not data:
                return "closed"
            buf += data
    except OSError:
        return "no reply"
    return json.loads(buf[:-1])


seen = []
for i in range(12):
    r = call(method)
    p = call("org.openSUSE.wtmpdb.Ping")
    seen.append([r, isinstance(p, dict) and p.get("parameters", {}).get("Alive")])
with open(out, "w") as f:
    json.dump(seen, f)
sys.stdin.read()
