-- The process that serves each session, for `wtmpdb who` (is it still alive?). A table of its
-- own, never a column of wtmp: upstream reads wtmp with SELECT * and must keep working.
-- StartTime is field 22 of /proc/PID/stat (clock ticks since boot), so a PID used again by
-- another process is not taken for the session.
CREATE TABLE IF NOT EXISTS wtmp_process(ID INTEGER PRIMARY KEY REFERENCES wtmp(ID), PID INTEGER NOT NULL, StartTime INTEGER);
