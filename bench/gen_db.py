#!/usr/bin/env python3
"""Writes a wtmpdb database as upstream wtmpdb 0.75 leaves it after years of use: its
table exactly (no index, rollback journal), ROWS sessions and BOOTS boots, IDs in the
order of the logins.

Usage: gen_db.py [--out PATH] [--rows N] [--boots N] [--users N] [--seed N]

- Boots (Type 1): User "reboot", TTY "~", the kernel release in RemoteHost, no Service.
  Each ends 5 s to 2 min before the next one; one in a hundred crashed (no Logout); the
  newest is still running.
- Sessions (Type 3), every one logged out: users user001.. picked at random, logins spread
  evenly over the five years (see synth.py). 92% are sshd on pts/0..pts/200 from one of
  the user's one to three hosts (IPv4, IPv6 or a name), 5% `su -l` (Service "su-l", no
  host), 3% console logins on tty1..tty6 (Service "login", no host).

An existing file at PATH is replaced. The same arguments give the same rows.
"""

import argparse
import os
import sqlite3
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
from synth import END, START, USEC, Machine  # noqa: E402

# Upstream's table, as its library creates it.
TABLE = ("CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, "
         "Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT")


def boots(m):
    n = len(m.boots)
    for i, up in enumerate(m.boots):
        if i == n - 1 or i in m.crashed:
            down = None
        else:
            down = max(up + USEC, m.shutdown_before(m.boots[i + 1]))
        yield (up, 1, "reboot", down, "~", m.kernel(i), None)


def sessions(m, n):
    rng = m.rng
    for _ in range(n):
        user = m.user()
        login = rng.randrange(START * USEC, END * USEC)
        logout = login + m.duration_us()
        p = rng.random()
        if p < 0.03:
            yield (login, 3, user, logout, "tty%d" % rng.randint(1, 6), "", "login")
        elif p < 0.08:
            yield (login, 3, user, logout, "pts/%d" % rng.randint(0, 200), "", "su-l")
        else:
            yield (login, 3, user, logout, "pts/%d" % rng.randint(0, 200), m.host_of(user), "sshd")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="db1m.db")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--boots", type=int, default=2000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()

    m = Machine(a.seed, a.boots, a.users)
    rows = list(boots(m))
    rows.extend(sessions(m, a.rows))
    rows.sort(key=lambda r: r[0])

    if os.path.exists(a.out):
        os.unlink(a.out)
    db = sqlite3.connect(a.out)
    db.execute("PRAGMA synchronous = OFF")
    db.execute(TABLE)
    with db:
        db.executemany("INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       ((r[1], r[2], r[0], r[3], r[4], r[5], r[6]) for r in rows))
    db.close()
    print("wrote %d sessions and %d boots (%d crashed) to %s, %d bytes"
          % (a.rows, len(m.boots), len(m.crashed), a.out, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
