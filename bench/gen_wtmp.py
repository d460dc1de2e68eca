#!/usr/bin/env python3
"""Writes a legacy wtmp file of exactly RECORDS records, as a Linux server's would be:
glibc's x86_64 `struct utmp`, 384 bytes each, in time order. util-linux `last -f FILE`
reads it, and it is the input of `wtmpdb import` in the benchmarks and in tests/import.rs.

Usage: gen_wtmp.py [--out PATH] [--records N] [--boots N] [--users N] [--seed N]

Each boot writes BOOT_TIME ("reboot", line "~", the kernel release as host) and a
RUN_LVL "runlevel" record, then its sessions; a boot that ended cleanly ends with a
RUN_LVL "shutdown" record. A session is a USER_PROCESS record (sshd on the lowest free
pts/N, or now and then a console login on a free ttyN) and a DEAD_PROCESS record with the
same pid, line and id and no user or host. A line is never used by two sessions at once,
so `last` pairs them without doubt. Sessions that have no DEAD_PROCESS record: all of a
crashed boot's (`last`: crash), about 2% of a cleanly ended boot's (`last`: down), and the
newest and about 2% of the others in the running boot (`last`: still logged in, or gone -
no logout since the user does not exist here).

The data is the same for the same arguments (see synth.py for the machine's history).
"""

import argparse
import heapq
import ipaddress
import struct
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
from synth import USEC, Machine, END  # noqa: E402

# ut_type, pid, ut_line, ut_id, ut_user, ut_host, exit (2 shorts), ut_session,
# tv_sec, tv_usec (32-bit on x86_64), ut_addr_v6, 20 reserved bytes.
UTMP = struct.Struct("<h2xi32s4s32s256s2hi2i16s20x")
assert UTMP.size == 384

RUN_LVL, BOOT_TIME, USER_PROCESS, DEAD_PROCESS = 1, 2, 7, 8
TTYS = ["tty%d" % n for n in range(1, 7)]
NO_LOGOUT_SHARE = 0.02  # sessions of a clean boot that the shutdown ended


def record(kind, pid, line, user, host, at_us, addr=b""):
    """One record; ut_id is "~~" on line "~", else the line's last four characters."""
    ut_id = "~~" if line == "~" else line[-4:]
    return UTMP.pack(kind, pid, line.encode(), ut_id.encode(), user.encode(), host.encode(),
                     0, 0, 0, at_us // USEC, at_us % USEC, addr)


def address(host):
    """ut_addr_v6 as sshd fills it: the address in network order, zero for a name."""
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        return b""


def plan(budget, ending, rng):
    """For each session of a boot, in login order, whether it gets a DEAD_PROCESS record,
    so that the sessions take exactly `budget` records. The newest session of the running
    boot is still open."""
    if ending == "running" and budget > 0:
        return plan(budget - 1, "shutdown", rng) + [False]
    closed = []
    while budget > 0:
        if ending == "crash" or budget == 1 or rng.random() < NO_LOGOUT_SHARE:
            closed.append(False)
            budget -= 1
        else:
            closed.append(True)
            budget -= 2
    return closed


class Lines:
    """Terminal lines of one boot: the lowest free pts/N, or a free console."""

    def __init__(self):
        self.free_pts = []
        self.next_pts = 0
        self.free_ttys = set(TTYS)

    def take(self, console, rng):
        if console and self.free_ttys:
            tty = rng.choice(sorted(self.free_ttys))
            self.free_ttys.remove(tty)
            return tty
        if self.free_pts:
            n = heapq.heappop(self.free_pts)
        else:
            n, self.next_pts = self.next_pts, self.next_pts + 1
        return "pts/%d" % n

    def give_back(self, line):
        if line.startswith("pts/"):
            heapq.heappush(self.free_pts, int(line[4:]))
        else:
            self.free_ttys.add(line)


def boot_records(m, i, up_us, down_us, ending, budget, pid):
    """The records of boot i, which ran from up_us to down_us, in time order, and the
    next free pid."""
    rng = m.rng
    kernel = m.kernel(i)
    out = [record(BOOT_TIME, 0, "~", "reboot", kernel, up_us),
           record(RUN_LVL, ord("5"), "~", "runlevel", kernel, up_us + 2 * USEC)]
    closed = plan(budget, ending, rng)
    first, last = up_us + 10 * USEC, down_us - 2 * USEC
    if closed and last <= first:
        raise SystemExit("boots too close together for their sessions: use fewer --boots")
    logins = sorted(rng.randrange(first, last) for _ in closed)
    lines = Lines()
    ends = []  # heap of (logout µs, line) of the sessions still open
    events = []  # (µs, logouts before logins at the same µs, record)
    for at, gets_logout in zip(logins, closed):
        while ends and ends[0][0] <= at:
            lines.give_back(heapq.heappop(ends)[1])
        pid = pid + rng.randint(1, 40) if pid < 4_000_000 else 1000
        user = m.user()
        line = lines.take(rng.random() < 0.03, rng)
        host = "" if line.startswith("tty") else m.host_of(user)
        events.append((at, 1, record(USER_PROCESS, pid, line, user, host, at, address(host))))
        if gets_logout:
            off = min(at + m.duration_us(), down_us - USEC)
            heapq.heappush(ends, (off, line))
            events.append((off, 0, record(DEAD_PROCESS, pid, line, "", "", off)))
    events.sort(key=lambda e: (e[0], e[1]))
    out.extend(e[2] for e in events)
    if ending == "shutdown":
        out.append(record(RUN_LVL, 0, "~", "shutdown", kernel, down_us))
    return out, pid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="wtmp1m")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--boots", type=int, default=2000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()

    m = Machine(a.seed, a.boots, a.users)
    n = len(m.boots)
    endings = ["running" if i == n - 1 else "crash" if i in m.crashed else "shutdown" for i in range(n)]
    system = 2 * n + endings.count("shutdown")
    if a.records < system:
        raise SystemExit("%d boots alone take %d records" % (n, system))
    # The sessions' records, spread evenly over the boots.
    spare = a.records - system
    budgets = [spare * (i + 1) // n - spare * i // n for i in range(n)]

    written = crashes = 0
    pid = 1000
    with open(a.out, "wb") as f:
        for i, up in enumerate(m.boots):
            down = END * USEC if i == n - 1 else m.shutdown_before(m.boots[i + 1])
            recs, pid = boot_records(m, i, up, down, endings[i], budgets[i], pid)
            f.write(b"".join(recs))
            written += len(recs)
            crashes += endings[i] == "crash"
    assert written == a.records, (written, a.records)
    print("wrote %d records (%d boots, %d crashed) to %s" % (written, n, crashes, a.out))


if __name__ == "__main__":
    main()
