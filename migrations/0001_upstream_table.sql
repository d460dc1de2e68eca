-- The table exactly as upstream wtmpdb creates it, so that databases written by either
-- implementation stay readable and writable by the other.
CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
