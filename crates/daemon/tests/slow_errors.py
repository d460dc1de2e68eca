# Clients other than root against wtmpdbd's workers (crates/daemon/tests/daemon.rs): ten
# connections each send thousands of empty messages at once, every one a bad message with an
# error to answer, and read their errors slowly, a little before each write timeout would
# end them; meanwhile another connection pings, again and again. Usage: slow_errors.py
# SOCKET OUT WRITE_TIMEOUT SECONDS. Prints "ready", writes the pings' waits to OUT (JSON),
# then waits for stdin to close.
import json, socket, sys, threading, time

path, out = sys.argv[1], sys.argv[2]
timeout, seconds = float(sys.argv[3]), float(sys.argv[4])
start = time.time()
stop = start + seconds


def slow(i):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(timeout / 2)
    try:
        s.sendall(b"\0" * 4096)
        while time.time() < stop:
            time.sleep(timeout * 0.8)
            # About a tenth of the socket's buffer: not enough to be woken every time.
            data = s.recv(24 * 1024)
            if not data:
                return
    except OSError:
        return


for i in range(10):
    threading.Thread(target=slow, args=(i,), daemon=True).start()
print("ready", flush=True)
time.sleep(timeout)
waits = []
while time.time() < stop:
    t = time.time()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(60)
    s.sendall(json.dumps({"method": "org.openSUSE.wtmpdb.Ping"}).encode() + b"\0")
    buf = b""
    try:
        while not buf.endswith(b"\0"):
            data = s.recv(4096)
            if not data:
                break
            buf += data
    except OSError:
        pass
    waits.append(round(time.time() - t, 2))
    s.close()
    time.sleep(0.2)
with open(out, "w") as f:
    json.dump({"waits": waits}, f)
sys.stdin.read()
