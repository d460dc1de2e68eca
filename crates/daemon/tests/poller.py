# A client other than root, against wtmpdbd's poller (crates/daemon/tests/daemon.rs): pipelined
# calls, bad input, a message too long, a slow drip, an idle connection, long messages at once,
# and a read that waits for its turn. Usage: poller.py SOCKET OUT. Prints "ready", writes what
# it saw to OUT (JSON), then waits for stdin to close.
import json, socket, sys, threading, time

path = sys.argv[1]
W = "org.openSUSE.wtmpdb."


def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(20)
    return s


def msg(method, more=False, **params):
    m = dict(method=W + method, parameters=params)
    if more:
        m["more"] = True
    return json.dumps(m).encode() + b"\0"


def replies(s, n):
    """n replies, or fewer when the daemon closes the connection."""
    buf, out = b"", []
    while len(out) < n:
        try:
            data = s.recv(1 << 16)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        buf += data
        while b"\0" in buf:
            m, buf = buf.split(b"\0", 1)
            out.append(json.loads(m))
    return out


def closed_after(s):
    """Seconds until the daemon closes `s`, and the replies before."""
    t = time.monotonic()
    got = replies(s, 1 << 30)
    return time.monotonic() - t, got


print("ready", flush=True)
seen = {}

# Two calls in one write: two replies, in order.
s = conn()
s.sendall(msg("Ping") + msg("Ping"))
seen["pipelined"] = [r["parameters"].get("Alive") for r in replies(s, 2)]
# Bad input: an error, then the connection carries on.
s.sendall(b"{not json\0" + msg("Ping"))
r = replies(s, 2)
seen["bad_then_ping"] = [x.get("error") for x in r] + [r[-1]["parameters"].get("Alive")]
s.close()

# A message longer than --max-message (4096): told so, then closed.
s = conn()
s.sendall(b'{"method":"' + b"x" * 5000)
_, got = closed_after(s)
seen["too_long"] = [x["parameters"].get("ErrorMsg") for x in got]

# A slow drip: dropped at the message deadline (--message-timeout 1), not reset by each byte.
s = conn()
t = time.monotonic()
s.sendall(b"{")
for b in b'"method":"org.openSUSE.wtmpdb.Ping"' * 10:
    time.sleep(0.2)
    try:
        s.sendall(bytes([b]))
    except OSError:
        break
    s.setblocking(False)
    try:
        if s.recv(1 << 16, socket.MSG_PEEK):
            break
    except BlockingIOError:
        pass
    s.setblocking(True)
s.setblocking(True)
_, got = closed_after(s)
seen["slow_drip_s"] = round(time.monotonic() - t, 2)
seen["slow_drip"] = [x["parameters"].get("ErrorMsg") for x in got]

# An idle connection: closed after --idle-timeout (1 s).
s = conn()
s.sendall(msg("Ping"))
replies(s, 1)
seen["idle_s"] = round(closed_after(s)[0], 2)

# Eight long messages at once (more than the four long turns): each answered.
socks = [conn() for _ in range(8)]
long = json.dumps(dict(method=W + "Ping", parameters=dict(x="y" * 3000))).encode() + b"\0"
for s in socks:
    s.sendall(long)
seen["long_answered"] = sum(len(replies(s, 1)) for s in socks)

# A stream nobody reads holds the one turn (--max-reads 1) until the write timeout (1 s); a
# ReadAll meanwhile waits for the turn without a thread, then is answered in full.
stream = conn()
stream.sendall(msg("ReadEntries", more=True))
time.sleep(0.3)
s = conn()
t = time.monotonic()
s.sendall(msg("ReadAll"))
r = replies(s, 1)
seen["waited_s"] = round(time.monotonic() - t, 2)
seen["waited"] = [x["parameters"].get("Success") for x in r] + [len(r[0]["parameters"].get("Data", [])) if r else None]
with open(sys.argv[2], "w") as out:
    json.dump(seen, out)
sys.stdin.read()
