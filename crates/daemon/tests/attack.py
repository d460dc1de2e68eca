# nobody's attack on wtmpdbd (crates/daemon/tests/memory.rs): many connections at once, each
# asking for the whole table in one of the ways a client may, and some that are refused.
# Usage: attack.py SOCKET CONNECTIONS. Prints "ready" once every connection has sent its call,
# then keeps the pressure on (ReadAll again after each reply, refused calls again, dropped
# connections opened anew) until stdin closes; prints its counts on exit.
import json, os, resource, selectors, socket, sys, threading

path, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
W = "org.openSUSE.wtmpdb."


def msg(method, **kw):
    return json.dumps(dict(method=W + method, **kw)).encode() + b"\0"


# What each kind of connection sends, and whether it reads what comes back (and asks again).
KINDS = [
    (msg("ReadAll"), True),
    (msg("ReadEntries", more=True), False),  # a stream nobody reads
    (msg("ReadEntries", more=True, oneway=True), False),
    (msg("ReadEntries"), True),  # one reply, bounded as ReadAll's
    (msg("ReadAll", oneway=True), False),
    (msg("Login", parameters=dict(Type=3, User="x", LoginTime=1)), True),  # refused
    (msg("Ping", parameters=dict(x=[0] * 20000)), True),  # a large bad message
]
sel = selectors.DefaultSelector()
counts = dict(replies=0, reconnects=0, refused_connects=0)


def open_conn(kind):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(KINDS[kind][0])
    s.setblocking(False)
    # Readers read; the others are only watched for the daemon closing them.
    sel.register(s, selectors.EVENT_READ, [kind, 0])
    return s


for i in range(n):
    try:
        open_conn(i % len(KINDS))
    except OSError:
        counts["refused_connects"] += 1
print("ready", flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
while not done.is_set():
    for key, _ in sel.select(timeout=0.2):
        s, (kind, _) = key.fileobj, key.data
        reads = KINDS[kind][1]
        if not reads:
            # Peek only: a client that does not read leaves the bytes where they are.
            try:
                if s.recv(1, socket.MSG_PEEK) != b"":
                    sel.unregister(s)  # data waiting, unread: stop watching it
                    continue
            except OSError:
                pass
            sel.unregister(s)
            s.close()
            counts["reconnects"] += 1
            try:
                open_conn(kind)
            except OSError:
                counts["refused_connects"] += 1
            continue
        try:
            data = s.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            counts["reconnects"] += 1
            try:
                open_conn(kind)
            except OSError:
                counts["refused_connects"] += 1
            continue
        nuls = data.count(b"\0")
        if nuls:
            counts["replies"] += nuls
            try:
                s.sendall(KINDS[kind][0])
            except OSError:
                pass
print("attack:", json.dumps(counts), file=sys.stderr, flush=True)
