#!/usr/bin/env python3
"""Calls wtmpdbd through the third-party `varlink` package (PyPI), as tests/e2e/daemon.sh
asks: python3 daemon_client.py MODE SOCKET [ARGS...]. Exits non-zero with a message on the
first result that differs from what upstream's interface says."""

import os
import resource
import socket
import sys
import time

import varlink

IFACE = "org.openSUSE.wtmpdb"
DENIED = "org.varlink.service.PermissionDenied"


def fail(msg):
    print(f"daemon_client: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def client(sock):
    c = varlink.Client(address="unix:" + sock)
    return c, c.open(IFACE)


def error_of(f, *args, **kwargs):
    """The varlink error name a call fails with (None when it succeeds)."""
    try:
        f(*args, **kwargs)
    except varlink.VarlinkError as e:
        return e.error()
    return None


def mode_root(sock, db):
    c, w = client(sock)
    check(w.Ping() == {"Alive": True}, "Ping")
    info = c.open("org.varlink.service").GetInfo()
    check(info["product"] == "wtmpdb (wtmpdbd)", f"GetInfo: {info}")
    check(IFACE in info["interfaces"], f"GetInfo interfaces: {info}")
    # A boot in 2106 and a session after it (times past 2038 and 2106, in µs).
    boot = 4_323_283_200_000_000  # 2107-01-01
    r = w.Login(Type=1, User="reboot", LoginTime=boot, TTY="~", RemoteHost="6.1.0-test", Service=None)
    check(r["ID"] > 0, f"Login boot: {r}")
    r = w.Login(Type=3, User="alice", LoginTime=boot + 60_000_000, TTY="pts/7",
                RemoteHost="192.0.2.7", Service="sshd")
    sid = r["ID"]
    check(sid > 0, f"Login: {r}")
    check(w.GetID(TTY="pts/7") == {"ID": sid}, "GetID")
    check(error_of(w.GetID, TTY="pts/99") == IFACE + ".NoEntryFound", "GetID of no session")
    check(w.GetBootTime() == {"Success": True, "BootTime": boot}, "GetBootTime")
    data = w.ReadAll()["Data"]
    check([e["User"] for e in data] == ["alice", "reboot"], f"ReadAll: {data}")
    check("Logout" not in data[0], f"ReadAll: an open session has a null Logout: {data[0]}")
    streamed = [e for r in w.ReadEntries(_more=True) for e in r["Data"]]
    # The open session also carries the process recorded at its login: this client's.
    process = (streamed[0].pop("PID", None), streamed[0].pop("PIDStart", None))
    check(process[0] == os.getpid() and isinstance(process[1], int),
          f"ReadEntries: the open session's process: {process}")
    check(streamed == data, f"ReadEntries: {streamed} != {data}")
    only = [e for r in w.ReadEntries(User="alice", _more=True) for e in r["Data"]]
    check([e["ID"] for e in only] == [sid], f"ReadEntries User: {only}")
    check(w.Logout(ID=sid, LogoutTime=boot + 120_000_000) == {"Success": True}, "Logout")
    check(error_of(w.Logout, ID=sid + 1000, LogoutTime=1) == IFACE + ".InternalError",
          "Logout of no row")
    check(w.ReadAll()["Data"][0]["Logout"] == boot + 120_000_000, "Logout stored")
    # Rotate: a session in 2001 is older than 30 days; it goes into the archive.
    w.Login(Type=3, User="old", LoginTime=1_000_000_000_000_000, TTY="tty1", RemoteHost=None,
            Service=None)
    # (The row with the largest ID always stays, so that IDs are never reused.)
    w.Login(Type=3, User="later", LoginTime=boot + 180_000_000, TTY="tty2", RemoteHost=None,
            Service=None)
    r = w.Rotate(Days=30)
    check(r["Success"] and r["Entries"] == 1 and r.get("BackupName", "").endswith(".db"),
          f"Rotate: {r}")
    check(os.path.exists(r["BackupName"]), f"Rotate archive: {r}")
    check(w.SetLogLevel(Level=7) == {}, "SetLogLevel")
    env = w.GetEnvironment()["Environment"]
    check(any(e.startswith("PATH=") for e in env), f"GetEnvironment: {env[:3]}")
    # Ours, failed logins: root records, reads and is told.
    r = w.RecordFailure(User="p4ssw0rd", Time=boot, TTY="ssh:notty", RemoteHost="192.0.2.7",
                        Service="sshd", PID=None)
    check(r["ID"] > 0, f"RecordFailure: {r}")
    data = w.ReadFailures(Limit=None)["Data"]
    check([f["User"] for f in data] == ["p4ssw0rd"], f"ReadFailures: {data}")
    r = w.FailedNotice(User="p4ssw0rd", Time=boot + 1)
    check(r["Count"] == 1 and r["Last"]["RemoteHost"] == "192.0.2.7", f"FailedNotice: {r}")
    print("daemon_client: root: every method answered as the interface says")


def mode_user(sock):
    c, w = client(sock)
    check(w.Ping() == {"Alive": True}, "Ping as a user")
    check(len(w.ReadAll()["Data"]) >= 2, "ReadAll as a user")
    check(w.GetBootTime()["Success"], "GetBootTime as a user")
    for name, args in [
        ("Login", dict(Type=3, User="mallory", LoginTime=1, TTY="pts/1", RemoteHost=None,
                       Service=None)),
        ("Logout", dict(ID=1, LogoutTime=1)),
        ("Rotate", dict(Days=0)),
        ("Quit", dict(ExitCode=0)),
        ("SetLogLevel", dict(Level=7)),
        ("GetEnvironment", dict()),
        ("RecordFailure", dict(User="x", Time=1, TTY=None, RemoteHost=None, Service=None,
                               PID=None)),
        ("ReadFailures", dict(Limit=None)),
        ("FailedNotice", dict(User="x", Time=1)),
    ]:
        got = error_of(getattr(w, name), **args)
        check(got == DENIED, f"{name} as uid {os.getuid()}: {got}")
    check(w.Ping() == {"Alive": True}, "the daemon lives on after Quit was refused")
    print(f"daemon_client: uid {os.getuid()}: reads answered, every write and every failed "
          "logins' method PermissionDenied")


def mode_denied(sock):
    c, w = client(sock)
    check(w.Ping() == {"Alive": True}, "Ping is for everyone")
    for name, args in [("ReadAll", {}), ("GetBootTime", {}), ("GetID", dict(TTY="pts/1"))]:
        got = error_of(getattr(w, name), **args)
        check(got == DENIED, f"{name} as uid {os.getuid()} with private reads: {got}")
    got = error_of(lambda: list(w.ReadEntries(_more=True)))
    check(got == DENIED, f"ReadEntries with private reads: {got}")
    print(f"daemon_client: uid {os.getuid()}: reads refused")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS")


def mode_idle(sock, pid, count, max_rss_kib):
    count, max_rss_kib = int(count), int(max_rss_kib)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))
    before = rss_kib(pid)
    conns = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        conns.append(s)
    # A new client is served at once while they all stay open.
    t = time.monotonic()
    _, w = client(sock)
    check(w.Ping() == {"Alive": True}, "Ping beside the idle connections")
    took = time.monotonic() - t
    time.sleep(0.5)
    rss = rss_kib(pid)
    # Every idle connection is still served.
    for s in conns:
        s.sendall(b'{"method":"org.openSUSE.wtmpdb.Ping"}\0')
    for i, s in enumerate(conns):
        s.settimeout(10)
        buf = b""
        while not buf.endswith(b"\0"):
            chunk = s.recv(4096)
            check(chunk, f"idle connection {i} was closed")
            buf += chunk
        check(b'"Alive":true' in buf, f"idle connection {i}: {buf!r}")
    # Each has now served a call (its thread's stack touched deeper): measured again.
    served = rss_kib(pid)
    print(f"daemon_client: {count} idle connections: RSS {before} KiB -> {rss} KiB idle, "
          f"{served} KiB after a Ping on each; a new client's Ping in {took * 1000:.1f} ms")
    rss = max(rss, served)
    check(rss <= max_rss_kib, f"RSS {rss} KiB with {count} idle connections, bound {max_rss_kib}")
    for s in conns:
        s.close()


def mode_login_then(sock, user):
    """One Login; prints its ID the moment the reply arrives (the caller then SIGKILLs)."""
    _, w = client(sock)
    r = w.Login(Type=3, User=user, LoginTime=int(time.time() * 1e6), TTY="pts/3",
                RemoteHost=None, Service="e2e")
    print(r["ID"], flush=True)


def main():
    if len(sys.argv) < 3:
        fail("usage: daemon_client.py MODE SOCKET [ARGS...]")
    mode, sock, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    modes = {
        "root": mode_root,
        "user": mode_user,
        "denied": mode_denied,
        "idle": mode_idle,
        "login": mode_login_then,
    }
    if mode not in modes:
        fail(f"unknown mode {mode}")
    modes[mode](sock, *rest)


if __name__ == "__main__":
    main()
