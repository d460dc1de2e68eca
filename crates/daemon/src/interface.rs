//! The interface descriptions `org.varlink.service.GetInterfaceDescription` answers, in
//! varlink's interface definition language. `org.openSUSE.wtmpdb` has upstream's methods
//! with upstream's parameter names, and two methods of ours, `ReadEntries`, the streaming
//! read, and `CloseSession`, the logout that checks the session's identity or looks it up;
//! `org.varlink.service` is the standard one.

pub use wtmpdb::interface::INTERFACE as WTMPDB;
pub use wtmpdb::interface::service::INTERFACE as SERVICE;

pub const WTMPDB_DESCRIPTION: &str = r#"# Login accounting: the wtmp database, owned by wtmpdbd.
# Times are microseconds since the epoch; IDs are 64-bit. Writes (Login, Logout, Rotate,
# Quit, SetLogLevel, GetEnvironment) need the caller to be root.
interface org.openSUSE.wtmpdb

# One row of the wtmp table. Absent values are null. In ReadEntries, a session without
# logout also carries the process recorded at its login, if any: its PID and PIDStart (field
# 22 of /proc/PID/stat then), by which a reader tells whether it still runs.
type WtmpdbEntry (
  ID: int,
  Type: int,
  User: string,
  Login: ?int,
  Logout: ?int,
  TTY: ?string,
  RemoteHost: ?string,
  Service: ?string,
  PID: ?int,
  PIDStart: ?int
)

# Records a login (Type 3 is a user session, 1 a boot); returns its row ID. An ID of
# 2^62 or more is a login the daemon spooled because the database was locked: it is
# recorded, and Logout and CloseSession accept that ID.
method Login(Type: int, User: string, LoginTime: int, TTY: ?string, RemoteHost: ?string, Service: ?string) -> (ID: int, ErrorMsg: ?string)

# Records the end of the session with that ID.
method Logout(ID: int, LogoutTime: int) -> (Success: bool, ErrorMsg: ?string)

# Ours: records the end of a session. With ID and LoginTime, the row with that ID is
# closed only if it is still the session of User on TTY that logged in at LoginTime (after
# the file was renamed and created anew, the ID may be another session's: that row is left
# alone and reported in Mismatch); otherwise, as without ID, the newest open session of
# User on TTY with Service is closed if exactly one matches. Closed says what happened:
# ById, ByLookup (ID is the row closed), NoUser, NotFound, Ambiguous, or Spooled (the
# database was locked: the logout waits in the spool file Spool).
method CloseSession(ID: ?int, LoginTime: ?int, User: string, TTY: string, Service: ?string, LogoutTime: int) -> (Closed: string, ID: ?int, Spool: ?string, Mismatch: ?(ID: int, User: string, TTY: string, Login: int))

# The newest session without logout on TTY; a login the daemon spooled counts too (its ID
# is then its token, 2^62 or more).
method GetID(TTY: string) -> (ID: int)

# The time of the newest boot.
method GetBootTime() -> (Success: bool, BootTime: ?int)

# Every row, newest first, in one reply; refused with InternalError when they do not fit
# in one message (use ReadEntries).
method ReadAll() -> (Success: bool, Data: ?[]WtmpdbEntry)

# The rows newest first, in batches: with "more", one reply per batch. Since and Until
# bound the login time (inclusive), User and TTY must match exactly, Limit counts rows.
method ReadEntries(Since: ?int, Until: ?int, User: ?string, TTY: ?string, Limit: ?int) -> (Data: []WtmpdbEntry)

# Moves the rows older than Days days into an archive beside the database.
method Rotate(Days: int) -> (Success: bool, Entries: ?int, BackupName: ?string)

# Stops the daemon with ExitCode (default 0).
method Quit(ExitCode: ?int) -> (Success: bool)

method Ping() -> (Alive: bool)

# 3 (errors) to 7 (debug), as syslog numbers them.
method SetLogLevel(Level: ?int) -> ()

method GetEnvironment() -> (Environment: []string)

# Ours: one failed login attempt, kept in a file of its own beside the database, which only
# root (and the --readers group) may read: a typed user name is often a password.
type FailedEntry (
  ID: int,
  Time: int,
  User: string,
  TTY: ?string,
  RemoteHost: ?string,
  Service: ?string,
  PID: ?int
)

# Ours, root only: records a failed login attempt (User as typed); returns its ID.
method RecordFailure(User: string, Time: int, TTY: ?string, RemoteHost: ?string, Service: ?string, PID: ?int) -> (ID: int)

# Ours, root and the --readers group only: the failed attempts, newest first, at most Limit.
method ReadFailures(Limit: ?int) -> (Data: []FailedEntry)

# Ours, root only: the attempts on User since its last successful login reported, and the
# newest (Last); records Time as User's last successful login.
method FailedNotice(User: string, Time: int) -> (Count: int, Last: ?FailedEntry)

error NoEntryFound (Success: ?bool, ErrorMsg: ?string)

error InternalError (Success: ?bool, ErrorMsg: ?string)
"#;

pub const SERVICE_DESCRIPTION: &str = r#"# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use wtmpdb::interface::{INTERNAL_ERROR, NO_ENTRY_FOUND, method};

    /// The description declares every method and error the core names, and the row the
    /// core writes and reads.
    #[test]
    fn the_description_declares_the_names_of_the_core() {
        assert!(WTMPDB_DESCRIPTION.contains(&format!("\ninterface {WTMPDB}\n")));
        for m in method::ALL {
            assert!(
                WTMPDB_DESCRIPTION.contains(&format!("\nmethod {m}(")),
                "{m}"
            );
        }
        let declared = WTMPDB_DESCRIPTION.matches("\nmethod ").count();
        assert_eq!(declared, method::ALL.len());
        for e in [NO_ENTRY_FOUND, INTERNAL_ERROR] {
            let name = e.strip_prefix(&format!("{WTMPDB}.")).unwrap();
            assert!(
                WTMPDB_DESCRIPTION.contains(&format!("\nerror {name} (")),
                "{e}"
            );
        }
        let e = wtmpdb::storage::Entry::default();
        let p = wtmpdb::process::Process {
            pid: 1,
            start_time: None,
        };
        let row = wtmpdb::interface::entry_value(&e, Some(&p));
        for key in row.as_object().unwrap().keys() {
            assert!(
                WTMPDB_DESCRIPTION.contains(&format!("\n  {key}: ")),
                "{key}"
            );
        }
        assert!(SERVICE_DESCRIPTION.contains(&format!("\ninterface {SERVICE}\n")));
    }
}
