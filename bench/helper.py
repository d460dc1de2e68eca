#!/usr/bin/env python3
"""Measurement helpers for bench/run.sh (Python 3 standard library only).

Subcommands (all print machine-readable results on stdout):
  time OUT.json RUNS WARMUP PREPARE CMD [CMD ...]
      Fallback for hyperfine: runs the commands interleaved (A B A B ...), output to
      /dev/null, and writes hyperfine-like JSON (results[].median/min/max/times).
      Each CMD is one string split like a shell would (no shell runs it); PREPARE ("" for
      none) runs through sh before every timed run.
  merge OUT IN.json...        hyperfine results of several invocations merged per command
  stats JSON INDEX            median min max mean (seconds), runs, mean CPU (user+system
                              seconds) of a hyperfine/`time` result
  measure LOG -- CMD...       one run (stdout to /dev/null, stderr to LOG): wall seconds, peak RSS (KiB, ru_maxrss of the child,
                              the figure GNU time -v reports), bytes written to storage
                              (/proc/self/io write_bytes of the reaped child) and exit status
  tempfiles STRACE_LOG        bytes written to files the traced process created itself
                              (SQLite temp/spill files), and how many such files
  concurrent DB N SQLITE3 -- READER_CMD...
                              N timed INSERTs (one sqlite3 process each, .timeout 5000)
                              while READER_CMD runs (restarted whenever it ends);
                              prints JSON {max_ms, p99_ms, median_ms, failures, ...}
  utmp-sessions FILE          number of USER_PROCESS records in a glibc x86_64 wtmp file
"""
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time


def write_bytes():
    with open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            if k == "write_bytes":
                return int(v)
    return 0


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def cmd_time(argv):
    out, runs, warmup, prepare = argv[0], int(argv[1]), int(argv[2]), argv[3]
    cmds = argv[4:]
    argvs = [shlex.split(c) for c in cmds]
    times = [[] for _ in cmds]
    user = [[] for _ in cmds]
    system = [[] for _ in cmds]
    devnull = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    for i in range(warmup + runs):
        for j, a in enumerate(argvs):
            if prepare:
                subprocess.run(prepare, shell=True, check=True,
                               stdout=subprocess.DEVNULL)
            # posix_spawn: far less overhead than subprocess for millisecond commands
            t0 = time.perf_counter()
            pid = os.posix_spawnp(a[0], a, os.environ, file_actions=devnull)
            _, status, ru = os.wait4(pid, 0)
            dt = time.perf_counter() - t0
            if status != 0:
                raise SystemExit("command failed (wait status %d): %s" % (status, cmds[j]))
            if i >= warmup:
                times[j].append(dt)
                user[j].append(ru.ru_utime)
                system[j].append(ru.ru_stime)
    res = {"results": [{"command": c, "times": t, "median": statistics.median(t),
                        "min": min(t), "max": max(t), "mean": statistics.mean(t),
                        "user": statistics.mean(u), "system": statistics.mean(y)}
                       for c, t, u, y in zip(cmds, times, user, system)]}
    with open(out, "w") as f:
        json.dump(res, f)


def cmd_merge(argv):
    """merge OUT IN.json...: one result per command string, times concatenated."""
    out, ins = argv[0], argv[1:]
    acc = {}
    order = []
    for path in ins:
        with open(path) as f:
            for r in json.load(f)["results"]:
                c = r["command"]
                if c not in acc:
                    acc[c] = {"times": [], "user": [], "system": []}
                    order.append(c)
                t = r.get("times") or [r["mean"]]
                acc[c]["times"] += t
                acc[c]["user"] += [r.get("user", 0.0)] * len(t)
                acc[c]["system"] += [r.get("system", 0.0)] * len(t)
    res = {"results": [{"command": c, "times": acc[c]["times"],
                        "median": statistics.median(acc[c]["times"]),
                        "min": min(acc[c]["times"]), "max": max(acc[c]["times"]),
                        "mean": statistics.mean(acc[c]["times"]),
                        "user": statistics.mean(acc[c]["user"]),
                        "system": statistics.mean(acc[c]["system"])} for c in order]}
    with open(out, "w") as f:
        json.dump(res, f)


def cmd_stats(argv):
    with open(argv[0]) as f:
        r = json.load(f)["results"][int(argv[1])]
    t = r.get("times") or [r["median"]]
    cpu = r.get("user", 0.0) + r.get("system", 0.0)
    print("%.6f %.6f %.6f %.6f %d %.6f" % (r["median"], min(t), max(t), r["mean"], len(t), cpu))


def cmd_measure(argv):
    log = argv[0]
    assert argv[1] == "--"
    cmd = argv[2:]
    with open(log, "wb") as lf:
        wb0 = write_bytes()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=lf)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        wb1 = write_bytes()
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    print("%.6f %d %d %d" % (dt, ru.ru_maxrss, wb1 - wb0, rc))


OPEN_RE = re.compile(r'^(?:\d+\s+)?(openat|open|creat)\(.*?"(.*?)"(.*)\) = (\d+)')
WRITE_RE = re.compile(r'^(?:\d+\s+)?(write|pwrite64|writev|pwritev|pwritev2)\((\d+),.*\) = (\d+)')
CLOSE_RE = re.compile(r'^(?:\d+\s+)?close\((\d+)\)')


def cmd_tempfiles(argv):
    """Files the process created (O_CREAT/O_TMPFILE) and bytes written to them."""
    created = {}       # fd -> path
    files = set()
    written = 0
    with open(argv[0], errors="replace") as f:
        for line in f:
            m = OPEN_RE.match(line)
            if m:
                path, flags, fd = m.group(2), m.group(3), int(m.group(4))
                if ("O_CREAT" in flags or "O_TMPFILE" in flags or m.group(1) == "creat"
                        or "etilqs" in path):
                    created[fd] = path
                    files.add(path)
                else:
                    created.pop(fd, None)
                continue
            m = WRITE_RE.match(line)
            if m:
                fd = int(m.group(2))
                if fd in created:
                    written += int(m.group(3))
                continue
            m = CLOSE_RE.match(line)
            if m:
                created.pop(int(m.group(1)), None)
    print("%d %d" % (written, len(files)))


def cmd_concurrent(argv):
    db, n, sqlite3 = argv[0], int(argv[1]), argv[2]
    assert argv[3] == "--"
    reader = argv[4:]
    sql = ("INSERT INTO wtmp(Type,User,Login,TTY,RemoteHost,Service) "
           "VALUES(3,'bench',CAST(strftime('%s','now') AS INTEGER)*1000000,'pts/99','bench','bench');")
    lat, failures, overlapped, readers = [], 0, 0, 0
    errors = []

    def start():
        return subprocess.Popen(reader, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    r = None
    if reader:
        r = start()
        readers = 1
        time.sleep(0.05)        # let it open the database and print its first lines
    for _ in range(n):
        if r is not None and r.poll() is not None:
            if r.returncode != 0:
                raise SystemExit("reader failed (exit %d): %s" % (r.returncode, " ".join(reader)))
            r = start()
            readers += 1
            time.sleep(0.05)
        if r is not None and r.poll() is None:
            overlapped += 1     # the reader is running when this write starts
        t0 = time.perf_counter()
        w = subprocess.run([sqlite3, "-batch", "-cmd", ".timeout 5000", db, sql],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        lat.append(dt * 1000)
        if w.returncode != 0:
            failures += 1
            errors.append(w.stderr.decode(errors="replace").strip())
    if r is not None:
        r.wait()
    print(json.dumps({"n": n, "failures": failures, "max_ms": max(lat),
                      "p99_ms": percentile(lat, 99), "median_ms": statistics.median(lat),
                      "overlapped": overlapped, "reader_runs": readers,
                      "errors": sorted(set(errors))[:3]}))


def cmd_utmp_sessions(argv):
    n = 0
    with open(argv[0], "rb") as f:
        while True:
            buf = f.read(384 * 4096)
            if not buf:
                break
            for off in range(0, len(buf) - 383, 384):
                if buf[off] == 7 and buf[off + 1] == 0:     # ut_type USER_PROCESS (LE short)
                    n += 1
    print(n)


def main():
    cmds = {"time": cmd_time, "stats": cmd_stats, "measure": cmd_measure,
            "tempfiles": cmd_tempfiles, "merge": cmd_merge, "concurrent": cmd_concurrent,
            "utmp-sessions": cmd_utmp_sessions}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
