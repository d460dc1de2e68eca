-- Indexes only: upstream ignores them on read and maintains them on write.
-- `last` walks wtmp_login backwards, so no query sorts the table.
CREATE INDEX IF NOT EXISTS wtmp_login ON wtmp(Login);
-- `last USER`, `boottime` (User = 'reboot').
CREATE INDEX IF NOT EXISTS wtmp_user ON wtmp(User, Login);
-- `last TTY`. Without Login, to keep a session under 130 bytes with all indexes: the
-- rows of one tty are few enough to order in memory.
CREATE INDEX IF NOT EXISTS wtmp_tty ON wtmp(TTY);
-- Open sessions only (a handful of rows): logout lookup by tty, `shutdown`, boot bookkeeping.
CREATE INDEX IF NOT EXISTS wtmp_open ON wtmp(TTY, Login) WHERE Logout IS NULL;
-- Boot rows only, for crash detection and `-x` without walking the sessions.
CREATE INDEX IF NOT EXISTS wtmp_boot ON wtmp(Login) WHERE Type = 1;
