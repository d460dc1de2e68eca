//! The glibc mirror: `pututxline` into a utmp file and `updwtmpx` into a wtmp file.
//!
//! glibc keeps the utmp file name and the open descriptor in process-global state, so every
//! use of `utmpxname`/`setutxent`/`getutxline`/`pututxline`/`endutxent` here runs under one
//! process-wide lock, and the default file name is put back afterwards: a PAM module lives
//! inside sshd or login, which use the same functions on the default file.
//!
//! What this cannot protect against: the host program calling those functions from another
//! thread at the same moment (no libc-level lock exists), and glibc's own lock wait, which
//! arms `alarm(2)` with a temporary `SIGALRM` handler for up to 10 s while another process
//! holds the utmp lock.
//!
//! glibc opens both files without `O_CREAT`: a missing file is reported as an error, and
//! whether the legacy files exist stays the administrator's decision.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{
    LegacyError, LegacySession, LegacySink, UT_DEAD_PROCESS, UT_USER_PROCESS, fill, legacy_timeval,
};
use crate::time::{USEC_PER_SEC, Usec};

/// glibc's compiled-in default, restored after each use.
const GLIBC_PATH_UTMP: &std::ffi::CStr = c"/var/run/utmp";

/// libc's utmp state is global, so is this lock.
static LIBC_UTMP: Mutex<()> = Mutex::new(());

unsafe extern "C" {
    // Not bound by the libc crate for glibc targets.
    fn updwtmpx(wtmpx_file: *const libc::c_char, utmpx: *const libc::utmpx);
}

/// Writes sessions into a utmp and a wtmp file through glibc.
#[derive(Debug)]
pub struct UtmpxMirror {
    utmp: CString,
    wtmp: CString,
    utmp_path: PathBuf,
    wtmp_path: PathBuf,
}

fn c_path(p: &Path) -> Result<CString, LegacyError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| LegacyError::File {
        path: p.to_path_buf(),
        op: "use as file name",
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

impl UtmpxMirror {
    pub fn new(utmp: &Path, wtmp: &Path) -> Result<UtmpxMirror, LegacyError> {
        Ok(UtmpxMirror {
            utmp: c_path(utmp)?,
            wtmp: c_path(wtmp)?,
            utmp_path: utmp.to_path_buf(),
            wtmp_path: wtmp.to_path_buf(),
        })
    }

    /// The record as sshd would write it.
    fn record(&self, s: &LegacySession, kind: i16, at: Usec) -> libc::utmpx {
        // SAFETY: utmpx is a plain C struct of integers and byte arrays; all-zero is the
        // "empty" record every writer starts from.
        let mut ut: libc::utmpx = unsafe { std::mem::zeroed() };
        ut.ut_type = kind;
        ut.ut_pid = s.pid;
        fill(as_bytes(&mut ut.ut_line), &s.line);
        as_bytes(&mut ut.ut_id).copy_from_slice(&s.id);
        if kind == UT_USER_PROCESS {
            fill(as_bytes(&mut ut.ut_user), &s.user);
            fill(as_bytes(&mut ut.ut_host), s.host.as_deref().unwrap_or(""));
            let addr = s.addr_v6();
            for (word, bytes) in ut.ut_addr_v6.iter_mut().zip(addr.chunks_exact(4)) {
                // The field holds the address bytes in network order, whatever the type says.
                *word = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        set_time(&mut ut, at);
        ut
    }

    /// Writes `ut` into the utmp file.
    ///
    /// Login: like login(1), an entry already describing the line (`LOGIN_PROCESS` from a
    /// getty, or a `USER_PROCESS` left behind by a crashed session) lends its `ut_id`, so it
    /// is replaced instead of staying next to ours.
    ///
    /// Logout: only our own entry (same line and PID) is marked dead. When there is none,
    /// the line has been taken over by a newer session (a late close after the pty was
    /// reused) whose entry must survive, and utmp is left alone.
    ///
    /// `ut.ut_id` is updated so that wtmp gets the same id.
    fn write_utmp(&self, ut: &mut libc::utmpx) -> Result<(), LegacyError> {
        let _guard = LIBC_UTMP.lock().unwrap_or_else(|p| p.into_inner());
        let fail = |op| LegacyError::File {
            path: self.utmp_path.clone(),
            op,
            source: std::io::Error::last_os_error(),
        };
        // SAFETY: the name is a valid NUL-terminated string; glibc copies it. The global
        // state it changes is guarded by LIBC_UTMP.
        let result = if unsafe { libc::utmpxname(self.utmp.as_ptr()) } != 0 {
            Err(fail("utmpxname"))
        } else {
            // SAFETY: guarded by LIBC_UTMP.
            unsafe { libc::setutxent() };
            // After an entry was found, pututxline overwrites that entry (the last one
            // read); otherwise it searches by id forward from the current position, so
            // rewind first.
            let write = if ut.ut_type == UT_USER_PROCESS {
                match find_line(ut) {
                    Some(id) => ut.ut_id = id,
                    // SAFETY: guarded by LIBC_UTMP.
                    None => unsafe { libc::setutxent() },
                }
                true
            } else if let Some(id) = find_own(ut) {
                ut.ut_id = id;
                true
            } else {
                false
            };
            // SAFETY: guarded by LIBC_UTMP; glibc only reads `ut`.
            if write && unsafe { libc::pututxline(ut) }.is_null() {
                Err(fail("pututxline"))
            } else {
                Ok(())
            }
        };
        // SAFETY: guarded by LIBC_UTMP; closes the descriptor and restores the default name
        // for the host program's own utmp calls.
        unsafe {
            libc::endutxent();
            libc::utmpxname(GLIBC_PATH_UTMP.as_ptr());
        }
        result
    }

    fn write_wtmp(&self, ut: &libc::utmpx) -> Result<(), LegacyError> {
        let fail = |op, source| LegacyError::File {
            path: self.wtmp_path.clone(),
            op,
            source,
        };
        let before = std::fs::metadata(&self.wtmp_path)
            .map_err(|e| fail("updwtmpx", e))?
            .len();
        let _guard = LIBC_UTMP.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: both pointers are valid for the call; glibc opens, locks, appends and
        // closes the file itself and only reads `ut`.
        unsafe { updwtmpx(self.wtmp.as_ptr(), ut) };
        // updwtmpx returns nothing. A failure leaves errno set and the file unchanged;
        // errno alone is not proof, since glibc's internal calls (the lock wait) may set it
        // on the way to a successful append.
        let errno = std::io::Error::last_os_error();
        if errno.raw_os_error().unwrap_or(0) == 0 {
            return Ok(());
        }
        let after = std::fs::metadata(&self.wtmp_path)
            .map(|m| m.len())
            .unwrap_or(before);
        if after > before {
            Ok(())
        } else {
            Err(fail("updwtmpx", errno))
        }
    }

    fn write(&self, mut ut: libc::utmpx) -> Result<(), LegacyError> {
        let utmp = self.write_utmp(&mut ut);
        LegacyError::combine(utmp, self.write_wtmp(&ut))
    }
}

/// The id of the first `LOGIN_PROCESS`/`USER_PROCESS` entry on `ut`'s line, if any.
/// Must run under LIBC_UTMP after `setutxent`.
fn find_line(ut: &libc::utmpx) -> Option<[libc::c_char; 4]> {
    // SAFETY: the caller holds LIBC_UTMP; getutxline returns NULL or a pointer to glibc's
    // static entry, which is copied out before any other utmp call.
    unsafe { libc::getutxline(ut).as_ref().map(|f| f.ut_id) }
}

/// The id of our own live entry: same line and PID. Must run under LIBC_UTMP after
/// `setutxent`.
fn find_own(ut: &libc::utmpx) -> Option<[libc::c_char; 4]> {
    loop {
        // SAFETY: as in find_line; getutxent reads the next entry into glibc's static
        // buffer, or returns NULL at the end of the file.
        let entry = unsafe { libc::getutxent().as_ref() }?;
        if (entry.ut_type == UT_USER_PROCESS || entry.ut_type == libc::LOGIN_PROCESS)
            && entry.ut_pid == ut.ut_pid
            && entry.ut_line == ut.ut_line
        {
            return Some(entry.ut_id);
        }
    }
}

fn as_bytes(field: &mut [libc::c_char]) -> &mut [u8] {
    // SAFETY: c_char and u8 have the same size and alignment, and every bit pattern is
    // valid for both; the slice borrows `field` exclusively for its lifetime.
    unsafe { std::slice::from_raw_parts_mut(field.as_mut_ptr().cast::<u8>(), field.len()) }
}

/// On bi-arch glibc (x86_64) `ut_tv` has 32-bit fields: store unsigned 32-bit seconds (see
/// the Y2038 section of the module documentation). Where it is a native 64-bit timeval,
/// store the exact time.
fn set_time(ut: &mut libc::utmpx, at: Usec) {
    if std::mem::size_of_val(&ut.ut_tv.tv_sec) == 4 {
        let (secs, usec) = legacy_timeval(at);
        // Bit-for-bit: glibc 2.40+ reads this field as uint32_t.
        ut.ut_tv.tv_sec = secs as _;
        ut.ut_tv.tv_usec = usec as _;
    } else {
        ut.ut_tv.tv_sec = at.div_euclid(USEC_PER_SEC) as _;
        ut.ut_tv.tv_usec = at.rem_euclid(USEC_PER_SEC) as _;
    }
}

impl LegacySink for UtmpxMirror {
    fn name(&self) -> &'static str {
        "utmpx"
    }
    fn login(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        self.write(self.record(session, UT_USER_PROCESS, at))
    }
    fn logout(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        self.write(self.record(session, UT_DEAD_PROCESS, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn glibc_x86_64_layout_has_32_bit_time() {
        assert_eq!(std::mem::size_of::<libc::utmpx>(), 384);
        assert_eq!(std::mem::offset_of!(libc::utmpx, ut_tv), 340);
        // SAFETY: all-zero is a valid utmpx (plain integers and arrays).
        let ut: libc::utmpx = unsafe { std::mem::zeroed() };
        assert_eq!(std::mem::size_of_val(&ut.ut_tv.tv_sec), 4);
    }

    #[test]
    fn logout_record_clears_user_and_host() {
        let m = UtmpxMirror::new(Path::new("u"), Path::new("w")).unwrap();
        let s = LegacySession::new("alice", Some("pts/3"), Some("192.0.2.1"), None, 99);
        let login = m.record(&s, UT_USER_PROCESS, 5_000_001);
        assert_eq!(login.ut_user[0] as u8, b'a');
        assert_eq!(login.ut_host[0] as u8, b'1');
        assert_ne!(login.ut_addr_v6[0], 0);
        let out = m.record(&s, UT_DEAD_PROCESS, 6_000_000);
        assert!(out.ut_user.iter().all(|&c| c == 0));
        assert!(out.ut_host.iter().all(|&c| c == 0));
        assert_eq!(out.ut_addr_v6, [0; 4]);
        assert_eq!(
            out.ut_line[..5]
                .iter()
                .map(|&c| c as u8)
                .collect::<Vec<_>>(),
            b"pts/3"
        );
        assert_eq!(out.ut_pid, 99);
        assert_eq!(out.ut_tv.tv_sec as i64, 6);
    }
}
