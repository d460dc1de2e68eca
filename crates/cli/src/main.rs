//! The `wtmpdb` program. It starts without Rust's runtime start-up (`no_main`), which cost
//! 0.13 ms of CPU at every start (it reads /proc/self/maps to place a guard page for
//! stack-overflow messages, and sets up an alternate signal stack), a tenth of what a
//! `wtmpdb last -n 10` costs above `true`. What of it matters is done here: descriptors 0-2
//! are open (on /dev/null if they were closed, so that no file this program opens takes
//! their place and receives its output), SIGPIPE is ignored (a closed pipe is an error to
//! handle, as before), and a panic ends the program with status 101 after its message.
//! Command-line arguments are std's as before (glibc hands them to it at load time).
#![no_main]

use std::ffi::{c_char, c_int};

// The unwinder (panics unwind, in the reader thread of `last` too) linked in from
// libgcc_eh.a instead of libgcc_s.so.1, whose constructor probes the CPU at every start
// of the program: 0.13-0.16 ms of a 2 ms `wtmpdb last -n 10` on a virtual machine, where
// CPUID traps to the hypervisor. Once the whole archive defines `_Unwind_*`, the linker's
// --as-needed leaves libgcc_s out (a test checks that it is not loaded).
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
unsafe extern "C" {}

// SQLite linked into the program (the `static-sqlite` feature, see build.rs): its entry
// points for `wtmpdb::sqlite::use_linked`, which then loads no libsqlite3.so.0.
#[cfg(feature = "static-sqlite")]
unsafe extern "C" {
    fn sqlite3_auto_extension(entry: Option<unsafe extern "C" fn()>) -> c_int;
    fn sqlite3_cancel_auto_extension(entry: Option<unsafe extern "C" fn()>) -> c_int;
    fn sqlite3_open_v2(
        name: *const c_char,
        db: *mut *mut wtmpdb::sqlite::sqlite3,
        flags: c_int,
        vfs: *const c_char,
    ) -> c_int;
    fn sqlite3_close(db: *mut wtmpdb::sqlite::sqlite3) -> c_int;
    fn sqlite3_config(op: c_int, ...) -> c_int;
}

/// Names the linked SQLite before anything opens a database.
#[cfg(feature = "static-sqlite")]
fn use_linked_sqlite() {
    wtmpdb::sqlite::use_linked(wtmpdb::sqlite::Linked {
        auto_extension: sqlite3_auto_extension,
        cancel_auto_extension: sqlite3_cancel_auto_extension,
        open_v2: sqlite3_open_v2,
        close: sqlite3_close,
        config: Some(sqlite3_config),
    });
}

/// Opens /dev/null in place of each of descriptors 0-2 that is closed (the lowest free
/// number is the one taken), as Rust's start-up does.
fn open_standard_descriptors() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: three valid pollfd structs, not waited for (timeout 0).
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1 {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // poll cannot tell (descriptor limit, memory): ask each descriptor instead.
            for pfd in &mut fds {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                let closed = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) } == -1
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
                pfd.revents = if closed { libc::POLLNVAL } else { 0 };
            }
            break;
        }
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; the descriptor is meant to stay open.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
                std::process::abort();
            }
        }
    }
}

/// The C entry point, called by the C library with the command line (read through
/// `std::env::args_os`, as before).
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    open_standard_descriptors();
    // This process is the command's own, and short: SQLite is set up for that.
    wtmpdb::sqlite::for_short_runs();
    #[cfg(feature = "static-sqlite")]
    use_linked_sqlite();
    // SAFETY: sets the disposition of SIGPIPE; no handler is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code =
        std::panic::catch_unwind(|| wtmpdb_cli::main(std::env::args_os().collect())).unwrap_or(101);
    // Flushes standard output, as a return from Rust's main did.
    std::process::exit(code)
}
