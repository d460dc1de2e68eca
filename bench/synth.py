"""What gen_db.py and gen_wtmp.py share: the time span, the machine's boots and the
people who log in. Python 3 standard library only; the same seed gives the same data.

The machine ran for five years up to 2026-11-01 00:00:00 UTC and booted BOOTS times at
about even intervals. One boot in a hundred ended in a crash (no shutdown recorded); the
newest is still running. Sessions last a few minutes to a few hours, now and then days.
"""

import math
import random

USEC = 1_000_000
END = 1_793_491_200  # 2026-11-01 00:00:00 UTC, in seconds
START = END - 5 * 365 * 86_400

# Kernel releases, oldest first; the boots walk through them in order.
KERNELS = (
    "5.10.0-23-amd64",
    "5.14.21-150400.24.46-default",
    "6.1.0-13-amd64",
    "6.1.0-25-amd64",
    "6.8.0-45-generic",
    "6.12.9-1-default",
    "6.12.22-amd64",
)


class Machine:
    """A seeded source of boots, users, hosts and session lengths."""

    def __init__(self, seed, boots, users):
        if boots < 1 or users < 1:
            raise SystemExit("need at least one boot and one user")
        self.rng = random.Random(seed)
        self.users = ["user%03d" % n for n in range(1, users + 1)]
        # Each user comes from one to three places.
        self.hosts = {u: [self._host() for _ in range(self.rng.randint(1, 3))] for u in self.users}
        self.boots = self._boots(boots)
        self.crashed = crashed_boots(boots)

    def _host(self):
        r = self.rng
        p = r.random()
        if p < 0.45:
            return "10.%d.%d.%d" % (r.randrange(256), r.randrange(256), r.randrange(1, 255))
        if p < 0.65:
            return "192.168.%d.%d" % (r.randrange(256), r.randrange(1, 255))
        if p < 0.75:
            return "2001:db8:%x:%x::%x" % (r.randrange(1 << 16), r.randrange(1 << 16), r.randrange(1, 1 << 16))
        return "%s%04d.%s" % (r.choice(("ws", "lap", "build")), r.randrange(10_000), r.choice(("corp.example.com", "example.net")))

    def _boots(self, n):
        """Boot times in µs, ascending: one per slot of the span, in its first quarter."""
        slot = (END - START) // n
        return [(START + i * slot + self.rng.randrange(max(slot // 4, 1))) * USEC + self.rng.randrange(USEC)
                for i in range(n)]

    def kernel(self, boot_index):
        return KERNELS[boot_index * len(KERNELS) // len(self.boots)]

    def shutdown_before(self, next_boot_us):
        """When the machine went down before the boot at next_boot_us: 5 s to 2 min earlier."""
        return next_boot_us - self.rng.randint(5, 120) * USEC

    def user(self):
        return self.rng.choice(self.users)

    def host_of(self, user):
        return self.rng.choice(self.hosts[user])

    def duration_us(self):
        """Log-normal: median 20 minutes, between one second and 20 days."""
        seconds = math.exp(self.rng.gauss(math.log(1200), 1.6))
        return int(min(max(seconds, 1.0), 20 * 86_400) * USEC)


def crashed_boots(n):
    """Indexes of the boots that crashed: one in a hundred (at least one once there are
    three boots), spread evenly, never the newest. Fixed by the count alone, so a small
    file for a test always has one."""
    if n < 3:
        return frozenset()
    k = max(1, n // 100)
    return frozenset(int((j + 0.5) * (n - 1) / k) for j in range(k))
