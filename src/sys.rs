//! The core's plain libc calls: every system call or C library function the standard library
//! does not wrap, each behind a small safe function, with [`cvt`] turning C's `-1` into the
//! error `errno` holds. The rest of the crate calls these and holds no `unsafe` of its own;
//! the two exceptions are FFI by nature: the SQLite VFS (`storage/vfs.rs`) and glibc's utmpx
//! functions (`legacy/utmpx.rs`). `#![deny(unsafe_code)]` in `lib.rs` keeps it so.
//!
//! What is here: the effective user ID, and write access by it; a file's device, inode and
//! type (`statx`); `flock`; Unix stream
//! sockets (the address, the socket, one `connect`, `SO_ERROR`, `poll`, `send` and `recv`)
//! and the bounded connect of the varlink client; the time calls (`tzset`,
//! `clock_gettime`, `localtime_r`, `mktime`); `getnameinfo`; the passwd enumeration; the
//! lock in the way of a byte (F_GETLK); the thread's cancelability for the C entry points;
//! and, for tests only, `fork` and `fcntl` locks.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The C return types whose `-1` means "failed: see errno".
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

impl MinusOne for i32 {
    const MINUS_ONE: i32 = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: isize = -1;
}

/// `rc`, or the error `errno` holds when `rc` is -1. Read errno right after the call.
pub(crate) fn cvt<T: MinusOne>(rc: T) -> io::Result<T> {
    if rc == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// [`cvt`] of `call`, made again while it fails with EINTR. Only for calls whose wait is not
/// bounded by the caller (a bounded wait recomputes what is left after a signal instead).
pub(crate) fn cvt_r<T: MinusOne>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(call()) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            other => return other,
        }
    }
}

/// The effective user ID of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What [`file_id`] tells of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub regular: bool,
}

/// The device, inode and type of `path` itself (a link is not followed), from a `statx`
/// that asks for nothing else.
///
/// Why not `symlink_metadata`: a stat that asks for the modification or change time tells
/// the kernel (Linux 6.13 and later, multigrain timestamps) that someone watches them, and
/// the file's next write then takes a fine-grained time, which marks its inode dirty. On
/// ext4 without a journal (and ext2) the next `fdatasync` then writes the inode too: one
/// more synchronous write per commit of `wtmpdbd`, which looks at its files before each
/// group (`storage::OpenFiles`). Measured on the benchmark's machine (ext4 without a
/// journal): 3 writes per `fdatasync` of a 4 KiB overwrite with a stat before each, 2
/// without.
pub(crate) fn file_id(path: &Path) -> io::Result<FileId> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statx is a plain C struct of integers, for which all zeros is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx reads the NUL-terminated path, a live local, and writes one struct
    // statx through the pointer, which points to a live local of that type.
    cvt(unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_TYPE | libc::STATX_INO,
            &mut stx,
        )
    })?;
    Ok(FileId {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        regular: u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFREG,
    })
}

/// Whether this process may write the file at `path`, by its effective IDs (`faccessat`
/// with `AT_EACCESS`; nothing is opened). False also when it cannot be asked.
pub(crate) fn may_write(path: &Path) -> bool {
    access(path, libc::W_OK).is_ok()
}

/// Whether this process may read the file at `path`, by its effective IDs (`faccessat`
/// with `AT_EACCESS`; nothing is opened): Err says why not, as an open would.
pub(crate) fn may_read(path: &Path) -> io::Result<()> {
    access(path, libc::R_OK)
}

/// `faccessat(path, mode, AT_EACCESS)`: whether this process's effective IDs may access the
/// file at `path` as `mode` says.
fn access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: faccessat reads the NUL-terminated path, a live local, and nothing else.
    cvt(unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) }).map(drop)
}

/// Another process's `fcntl` lock that would keep an exclusive lock of byte `byte` of the
/// file open as descriptor `fd` from being taken (F_GETLK; nothing is locked or released):
/// whether it is exclusive, and its holder's pid (-1 for an open file description lock).
/// Ok(None) when nothing of another process's is in the way. A descriptor closed meanwhile
/// fails (EBADF); one reused for another file answers for that file, which the caller
/// checks by the descriptor's file before and after.
pub(crate) fn lock_in_the_way(fd: i32, byte: i64) -> io::Result<Option<(bool, i32)>> {
    let mut probe = lock_range(libc::F_WRLCK, byte, 1);
    // SAFETY: F_GETLK reads and writes the struct it is given, a live local; on any
    // descriptor it locks and releases nothing (a closed one fails with EBADF).
    cvt(unsafe { libc::fcntl(fd, libc::F_GETLK, &raw mut probe) })?;
    Ok((i32::from(probe.l_type) != libc::F_UNLCK)
        .then(|| (i32::from(probe.l_type) == libc::F_WRLCK, probe.l_pid)))
}

/// An `fcntl` lock of `kind` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) on `len` bytes from `start`.
fn lock_range(kind: i32, start: i64, len: i64) -> libc::flock {
    // SAFETY: a plain C struct, all zeros a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl
}

/// Eight random bytes from the kernel (`/dev/urandom`), as one integer.
pub(crate) fn random_i64() -> io::Result<i64> {
    use std::io::Read;
    let mut b = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(i64::from_ne_bytes(b))
}

/// Takes a shared open-file-description lock (`F_OFD_SETLK`) on the byte `start` of `file`,
/// without waiting. It belongs to the open file, not to the process: it lasts until `file`
/// (its last descriptor) is closed, and that close drops no other lock of this process.
pub(crate) fn ofd_read_lock(file: &File, start: i64) -> io::Result<()> {
    let fl = lock_range(libc::F_RDLCK, start, 1);
    // SAFETY: F_OFD_SETLK with a descriptor `file` keeps open and a pointer to a live flock
    // whose l_pid is 0, as OFD locks require.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) })?;
    Ok(())
}

/// `FS_NOCOW_FL` of `<linux/fs.h>`: btrfs writes the file's blocks in place (`chattr +C`).
const FS_NOCOW_FL: libc::c_int = 0x0080_0000;

/// Marks the directory `dir`, when it lies on btrfs, so that the files made in it from now on
/// are written in place (`chattr +C`): Ok(true) when this call set the mark, Ok(false) when
/// it was set already or the file system is another. Why: btrfs copies a block on every
/// write, so a write fault on a shared mapping (SQLite's `-shm` index) needs free space,
/// and on a full disk the kernel answers it with SIGBUS, killing the process that maps it
/// (the PAM module's host: sshd, login). Written in place, those pages need none.
pub(crate) fn no_copy_on_write_on_btrfs(dir: &File) -> io::Result<bool> {
    // SAFETY: a plain C struct, all zeros a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs on a descriptor `dir` keeps open, writing into a live local.
    cvt(unsafe { libc::fstatfs(dir.as_raw_fd(), &raw mut fs) })?;
    // The magic number as 32 bits: `f_type` is a signed word of the platform's size.
    if fs.f_type as u32 != 0x9123_683E {
        return Ok(false);
    }
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's size for it) into a live local.
    cvt(unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &raw mut flags) })?;
    if flags & FS_NOCOW_FL != 0 {
        return Ok(false);
    }
    flags |= FS_NOCOW_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from a live local.
    cvt(unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &raw const flags) })?;
    Ok(true)
}

/// Takes an exclusive `flock` on `file` without waiting: Ok(true) taken (held until every
/// descriptor of that open file is closed), Ok(false) someone else holds it.
pub(crate) fn flock_exclusive_nonblocking(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor `file` keeps open for the call; no memory is involved.
    match cvt_r(|| unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---- Unix stream sockets ----

/// The `AF_UNIX` address of a path in the file system.
pub(crate) struct UnixAddr(libc::sockaddr_un);

impl UnixAddr {
    /// None when `path` cannot be one: empty, too long for `sun_path` (with its NUL), or
    /// holding a NUL.
    pub(crate) fn new(path: &Path) -> Option<UnixAddr> {
        // SAFETY: sockaddr_un is plain data; all-zero is a valid (unnamed) address.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = path.as_os_str().as_bytes();
        if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
            return None;
        }
        for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
            *dst = src as libc::c_char;
        }
        Some(UnixAddr(addr))
    }
}

/// A new `AF_UNIX` stream socket, close-on-exec, non-blocking when asked.
pub(crate) fn unix_stream_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        kind |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain system call; the result is checked.
    let raw = cvt(unsafe { libc::socket(libc::AF_UNIX, kind, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// One `connect(2)` of the socket `fd` to `addr`, not made again on any error: EINTR, EAGAIN
/// (a full listen queue) and EINPROGRESS are the caller's to handle.
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &UnixAddr) -> io::Result<()> {
    // SAFETY: `addr.0` is an initialised sockaddr_un and the length is its size.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr.0).cast(),
            size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The pending error of the socket `fd` (`SO_ERROR`, which reading clears): 0 for none.
pub(crate) fn socket_error(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value/len describe a writable c_int, as SO_ERROR expects.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Connects to the Unix socket `socket`, waiting at most `timeout` for a place in its listen
/// queue. `UnixStream::connect` waits for good when the queue is full (a daemon that is
/// stopped or stuck, whose queue anyone who may connect can fill); here the socket's send
/// timeout, which Linux applies to that wait, bounds it, and a queue still full at the
/// deadline is EAGAIN. A signal shortens the wait to what is left of `timeout`.
pub(crate) fn connect_unix_within(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let addr = UnixAddr::new(socket)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a usable socket path"))?;
    let stream = UnixStream::from(unix_stream_socket(false)?);
    let deadline = Instant::now().checked_add(timeout);
    loop {
        // What is left of the bound (a signal may have cut a wait short).
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        stream.set_write_timeout(Some(left))?;
        match connect(stream.as_fd(), &addr) {
            Ok(()) => return Ok(stream),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits at most `timeout` (rounded up to whole milliseconds, at most `i32::MAX` of them)
/// until `fd` is ready for `events` or has an error or hang-up to report: Ok(true) when it
/// is, Ok(false) when the time ran out. A signal is Err (EINTR), for the caller to recompute
/// what is left of its wait.
fn poll(fd: BorrowedFd<'_>, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let n = cvt(unsafe { libc::poll(&mut pfd, 1, ms) })?;
    Ok(n > 0)
}

/// [`poll`] for input (`POLLIN`).
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    poll(fd, libc::POLLIN, timeout)
}

/// [`poll`] for room to write (`POLLOUT`; also how a non-blocking connect ends).
pub(crate) fn poll_writable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    poll(fd, libc::POLLOUT, timeout)
}

/// One `send(2)` of `buf` with `MSG_NOSIGNAL`: a peer gone away is EPIPE, never the
/// `SIGPIPE` that would kill a host process (a PAM module's) that does not ignore it.
pub(crate) fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    let n = cvt(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(n as usize)
}

/// One `recv(2)` into `buf`: the bytes received, 0 when the peer closed.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(n as usize)
}

// ---- Time ----

mod c {
    unsafe extern "C" {
        // Not in the libc crate.
        pub(super) fn tzset();
    }
}

/// Reads the zone rules (`TZ`, else /etc/localtime) for the calls below; time.rs calls it
/// once per process.
pub(crate) fn tzset() {
    // SAFETY: tzset has no preconditions: it only reads TZ and the zone files.
    unsafe { c::tzset() };
}

/// The time of `clock`.
pub(crate) fn clock_gettime(clock: libc::clockid_t) -> io::Result<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    cvt(unsafe { libc::clock_gettime(clock, &mut ts) })?;
    Ok(ts)
}

/// The local broken-down time of `secs`, or None (a year beyond an `int`). Called for each
/// distinct quarter hour of a listing: no allocation.
#[inline]
pub(crate) fn localtime_r(secs: libc::time_t) -> Option<libc::tm> {
    // SAFETY: an all-zero tm is a valid value for a plain C struct of integers and pointers.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is reentrant.
    let res = unsafe { libc::localtime_r(&secs, &mut tm) };
    (!res.is_null()).then_some(tm)
}

/// `mktime` of a local date and time given as `struct tm`'s fields (years since 1900,
/// months from 0), with `tm_isdst` -1 (the zone rules decide). -1 is both the error value and
/// one second before the epoch: the caller tells them apart.
pub(crate) fn mktime(
    year: i32,
    mon: i32,
    mday: i32,
    hour: i32,
    min: i32,
    sec: i32,
) -> libc::time_t {
    // SAFETY: an all-zero tm is a valid value for a plain C struct of integers and pointers.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year;
    tm.tm_mon = mon;
    tm.tm_mday = mday;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    // SAFETY: tm is valid and writable; mktime normalises it in place.
    unsafe { libc::mktime(&mut tm) }
}

// ---- Names ----

/// The registered name of `addr`'s host (`getnameinfo` with `NI_NAMEREQD`), or None.
pub(crate) fn name_of_address(addr: SocketAddr) -> Option<String> {
    let sa = raw_sockaddr(addr);
    let mut name = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a properly initialised sockaddr of the length passed, `name` is a
    // writable buffer of the length passed, and no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            (&raw const sa.storage).cast(),
            sa.len,
            name.as_mut_ptr(),
            name.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `name`.
    let c = unsafe { CStr::from_ptr(name.as_ptr()) };
    Some(c.to_string_lossy().into_owned())
}

/// A C socket address built from a std one, kept as raw storage and its length.
struct RawSockaddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

fn raw_sockaddr(addr: SocketAddr) -> RawSockaddr {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    RawSockaddr {
        storage,
        len: len as libc::socklen_t,
    }
}

/// Calls `each` with the name of every account `getpwent` lists, in its order. Not safe to
/// call from two threads at once (the enumeration is process-wide state): callers are the
/// command line.
pub(crate) fn for_each_passwd_name(mut each: impl FnMut(&[u8])) {
    // SAFETY: setpwent, getpwent and endpwent have no preconditions; each entry is read
    // before the next call, which may overwrite it, and pw_name is a valid C string.
    unsafe {
        libc::setpwent();
        loop {
            let pw = libc::getpwent();
            if pw.is_null() {
                break;
            }
            each(CStr::from_ptr((*pw).pw_name).to_bytes());
        }
        libc::endpwent();
    }
}

// ---- For tests only ----

/// Runs `child` in a forked copy of this process and returns the child's wait status; the
/// child ends with `_exit` and the code `child` returns (101 if it panics), running no
/// destructors and no exit handlers. Test code only: the copy has only the calling thread,
/// so `child` must not wait for a lock another thread may have held at the fork.
#[cfg(test)]
pub(crate) fn wait_status_of_child(child: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: the child runs only `child` (whose contract is above) and then calls _exit,
    // without unwinding out of this function or running destructors.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child at once, as after fork in a multi-threaded process.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a live, writable int.
    let got = cvt_r(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
    assert_eq!(got, pid);
    Ok(status)
}

/// Sets (`F_RDLCK`, `F_WRLCK`) or clears (`F_UNLCK`) a POSIX lock on `len` bytes of `file`
/// from `start`, without waiting (`F_SETLK`). Test code only.
#[cfg(test)]
pub(crate) fn fcntl_setlk(file: &File, kind: i32, start: i64, len: i64) -> io::Result<()> {
    let fl = lock_range(kind, start, len);
    // SAFETY: F_SETLK with a descriptor `file` keeps open and a pointer to a live flock.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) })?;
    Ok(())
}

/// The numeric ID of group `name` (or `name` itself when it is a number).
pub(crate) fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let c = std::ffi::CString::new(name).ok()?;
    let mut grp = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut buf = vec![0 as libc::c_char; 16_384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the name is NUL-terminated, `grp` and
    // `buf` are writable with `buf.len()` given, and `result` receives NULL or `grp`.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            grp.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getgrnam_r succeeded and `result` points at `grp`, which it filled in.
    Some(unsafe { grp.assume_init() }.gr_gid)
}

// ---- The journal's large entries ----

/// A new sealable memory file (`memfd_create(2)`, close-on-exec), for an entry too large for
/// one datagram.
pub(crate) fn memfd(name: &CStr) -> io::Result<File> {
    // SAFETY: name is a NUL-terminated string that outlives the call.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Seals `file` against any change (journald accepts only a sealed memory file).
pub(crate) fn seal_all(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor `file` keeps open; no memory is involved.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(())
}

/// Sends the descriptor `passed` alone (no bytes but one the kernel needs none of) over the
/// datagram socket `fd` to `addr`, without waiting (`MSG_DONTWAIT`) and without `SIGPIPE`.
pub(crate) fn send_fd_to(
    fd: BorrowedFd<'_>,
    addr: &UnixAddr,
    passed: BorrowedFd<'_>,
) -> io::Result<()> {
    // Room for one descriptor's control message, aligned as cmsghdr needs.
    #[repr(C)]
    union Control {
        buf: [u8; 64],
        _align: libc::cmsghdr,
    }
    let mut control = Control { buf: [0; 64] };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    assert!(space <= 64);
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&addr.0 as *const libc::sockaddr_un).cast_mut().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: writing the buffer field of a union of plain bytes.
    msg.msg_control = unsafe { control.buf.as_mut_ptr() }.cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` bytes of zeroed, aligned memory, so the first
    // header exists and lies within it; CMSG_DATA of it has room for one c_int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
            passed.as_raw_fd(),
        );
    }
    // SAFETY: msg and everything it points to (the address, the control buffer) live
    // across the call; it has no data vectors.
    cvt(unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(())
}

// ---- Signals held back ----

/// Holds back the signals it is given (this thread's mask) for as long as it lives; they
/// are delivered when it is dropped. For a step that must not be cut in the middle, such as
/// an export's output and the move of its cursor.
pub(crate) struct HoldSignals {
    old: libc::sigset_t,
}

impl HoldSignals {
    pub(crate) fn new(signals: &[libc::c_int]) -> HoldSignals {
        // SAFETY: an all-zero sigset_t is valid storage; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above, for the old mask pthread_sigmask fills.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a valid sigset_t; sigaddset only writes into it.
        unsafe {
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
        }
        // SAFETY: both pointers are to valid sigset_t values that outlive the call.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        HoldSignals { old }
    }
}

impl Drop for HoldSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by new; the pointer is to a valid sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// While it lives, the calling thread is not cancelled (`pthread_cancel`): a cancellation
/// that becomes pending meanwhile is acted on at the thread's next cancellation point after
/// it is dropped, which restores the state it found. For the C entry points (the PAM
/// module's, the C library's): a cancellation acted on inside them (at an `open` or a
/// `read`, or in a callback of the caller's) would unwind through Rust frames, which their
/// `catch_unwind` cannot let pass, and the process would abort (with the unwinder linked
/// into those libraries, their copy of it is handed the host's unwinding state and aborts at
/// once). Upstream's code is C, which a cancellation unwinds through.
pub struct CancelDeferred(libc::c_int);

// Not in the libc crate for Linux; the values are glibc's and musl's (pthread.h).
const PTHREAD_CANCEL_ENABLE: libc::c_int = 0;
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;
unsafe extern "C" {
    fn pthread_setcancelstate(state: libc::c_int, oldstate: *mut libc::c_int) -> libc::c_int;
}

impl CancelDeferred {
    #[allow(clippy::new_without_default)]
    pub fn new() -> CancelDeferred {
        let mut previous = PTHREAD_CANCEL_ENABLE;
        // SAFETY: sets the calling thread's cancelability (no system call); `previous` is a
        // valid out pointer.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut previous) };
        CancelDeferred(previous)
    }
}

impl Drop for CancelDeferred {
    fn drop(&mut self) {
        let mut unused = 0;
        // SAFETY: restores the state `new` found; `unused` is a valid out pointer.
        unsafe { pthread_setcancelstate(self.0, &mut unused) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `file_id` answers as `symlink_metadata` does for a file, a link (itself, not where it
    /// leads), a directory and a missing name.
    #[test]
    fn file_id_is_what_symlink_metadata_says() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for p in [&file, &link, &dir.path().to_path_buf()] {
            let m = std::fs::symlink_metadata(p).unwrap();
            let want = FileId {
                dev: m.dev(),
                ino: m.ino(),
                regular: m.is_file(),
            };
            assert_eq!(file_id(p).unwrap(), want, "{}", p.display());
        }
        assert!(!file_id(&link).unwrap().regular);
        let missing = file_id(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn cvt_reads_errno_on_minus_one_only() {
        assert_eq!(cvt(0).unwrap(), 0);
        assert_eq!(cvt(7isize).unwrap(), 7);
        // SAFETY: close of a descriptor that is not open fails with EBADF and touches nothing.
        let err = cvt(unsafe { libc::close(-1) }).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn socket_paths_that_cannot_be_addresses() {
        assert!(UnixAddr::new(Path::new("")).is_none());
        assert!(UnixAddr::new(Path::new(&"x".repeat(108))).is_none());
        assert!(UnixAddr::new(Path::new(&"x".repeat(107))).is_some());
        let err = connect_unix_within(Path::new(""), Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "not a usable socket path");
    }

    #[test]
    fn a_child_s_exit_code_and_panic_reach_the_parent() {
        let status = wait_status_of_child(|| 3).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
        let status = wait_status_of_child(|| panic!("in the child")).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 101);
    }

    #[test]
    fn a_second_flock_is_refused_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let first = File::open(dir.path()).unwrap();
        let second = File::open(dir.path()).unwrap();
        assert!(flock_exclusive_nonblocking(&first).unwrap());
        assert!(!flock_exclusive_nonblocking(&second).unwrap());
        drop(first);
        assert!(flock_exclusive_nonblocking(&second).unwrap());
    }
}
