//! Every system call the daemon makes that the standard library does not wrap: the peer's
//! credentials (SO_PEERCRED, SO_PEERGROUPS), the socket passed by socket activation, the
//! open-file limit, epoll(7) for the connections waiting for a call, and the C library's
//! allocator. All of the daemon's `unsafe` is in this file.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

/// Who is at the other end of a connection, as the kernel recorded it when the client
/// called connect(2) (not as it is now: see the README on pid reuse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups at connect time (SO_PEERGROUPS); empty where the kernel
    /// does not have it.
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The credentials of the peer of `stream`. Fails closed: an error, or a kernel answer that
/// does not fill the structure, is an error and the caller refuses the client.
pub fn peer_credentials(stream: &UnixStream) -> io::Result<Peer> {
    let fd = stream.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` holds its exact size, as
    // getsockopt(SOL_SOCKET, SO_PEERCRED) requires; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("SO_PEERCRED returned a short answer"));
    }
    // A socket whose peer has no credentials (not from connect(2), e.g. socketpair from an
    // unknown source) reports the overflow IDs; and pid 0 is no process.
    if cred.pid <= 0 || cred.uid == u32::MAX || cred.gid == u32::MAX {
        return Err(io::Error::other(
            "the peer's credentials are not known (pid or uid missing)",
        ));
    }
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
        // Root reads and writes everything: its groups are never asked (see
        // `Peer::in_group`'s callers), and a login's connection is root's.
        groups: if cred.uid == 0 {
            Vec::new()
        } else {
            peer_groups(fd).unwrap_or_default()
        },
    })
}

/// SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups at connect time.
fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a writable buffer of exactly `len` bytes; the kernel writes at
        // most `len` bytes and sets `len` to the size used (or needed, with ERANGE).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65_536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(e);
    }
}

/// The listening socket passed by socket activation (sd_listen_fds(3)'s protocol:
/// `LISTEN_PID` is this process, `LISTEN_FDS` ≥ 1, the first at fd 3), or None when the
/// process was not socket-activated. The variables are removed so that nothing started
/// from here takes them for its own.
pub fn activation_socket() -> io::Result<Option<UnixListener>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    // SAFETY: removing environment variables at start-up, before any other thread exists.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let n: u32 = fds
        .parse()
        .map_err(|_| io::Error::other(format!("LISTEN_FDS is not a number: {fds}")))?;
    if n == 0 {
        return Ok(None);
    }
    const FIRST: RawFd = 3;
    // The fd must be a listening Unix stream socket, or we would accept on something else.
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `accepting` is a writable c_int and `len` its size; fd 3 is only read.
    let rc = unsafe {
        libc::getsockopt(
            FIRST,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut accepting).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "fd 3 from socket activation is not a socket: {}",
            io::Error::last_os_error()
        )));
    }
    if accepting == 0 {
        return Err(io::Error::other(
            "fd 3 from socket activation is not a listening socket",
        ));
    }
    // SAFETY: fd 3 was handed to this process by its activator (LISTEN_PID is ours) and is
    // owned by nothing else in it; the listener takes it over and closes it on drop.
    let listener = unsafe { UnixListener::from_raw_fd(FIRST) };
    // No child should inherit it.
    // SAFETY: F_SETFD on a valid fd with a valid flag.
    unsafe { libc::fcntl(FIRST, libc::F_SETFD, libc::FD_CLOEXEC) };
    // A listening socket of another family would not give peer credentials: refuse it.
    if listener.local_addr().is_err() {
        return Err(io::Error::other(
            "fd 3 from socket activation is not a Unix socket",
        ));
    }
    Ok(Some(listener))
}

/// Writes what the socket's buffer takes of `bytes` now, never waiting (MSG_DONTWAIT, on a
/// blocking socket too; MSG_NOSIGNAL: a client gone is EPIPE, not a signal).
pub fn send_now(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for reads of its length; the fd is the stream's, open.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Reads what the socket holds now into `buf`, never waiting (MSG_DONTWAIT, on a blocking
/// socket too). 0 is the client's end.
pub fn recv_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length; the fd is the stream's, open.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Waits at most `timeout` (rounded up to a millisecond) for something to read on the
/// socket, or for its end. Returns early on a signal; the caller checks its deadline again.
///
/// A wait in poll(2), not in a blocking read: a thread asleep in read(2) on a Unix stream
/// socket is woken each time its peer reads what it sent (the room freed in its send
/// buffer wakes every waiter on the socket, a reader too, which finds nothing and sleeps
/// again); poll's wait is woken only for what it asked.
pub fn wait_readable(stream: &UnixStream, timeout: Duration) -> io::Result<()> {
    wait_for(stream, libc::POLLIN, timeout)
}

/// Waits at most `timeout` (rounded up to a millisecond) for room in the socket's buffer,
/// or for its end. Returns early on a signal; the caller checks its deadline again.
pub fn wait_writable(stream: &UnixStream, timeout: Duration) -> io::Result<()> {
    wait_for(stream, libc::POLLOUT, timeout)
}

/// One poll(2) of the socket for `events`, at most `timeout` (rounded up to a millisecond);
/// a signal ends it early without an error.
fn wait_for(stream: &UnixStream, events: libc::c_short, timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, its count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit (each connection is a file), and
/// returns the new soft limit.
pub fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// An epoll(7) instance watching sockets for input, each by its file descriptor
/// (level-triggered: a socket with unread input is reported until it is read or removed).
pub struct Poll {
    fd: OwnedFd,
}

impl Poll {
    pub fn new() -> io::Result<Poll> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poll { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call (ignored by EPOLL_CTL_DEL); both
        // descriptors are the caller's, open for the call's length.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for input (or its peer's end); reported by its number.
    pub fn add(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd)
    }

    /// Stops watching `fd` (before it is handed to another thread, or closed).
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd)
    }

    /// Waits at most `timeout` for input; fills `ready` with the descriptors that have it
    /// (an interrupted wait reports none).
    pub fn wait(&self, ready: &mut Vec<RawFd>, timeout: Duration) -> io::Result<()> {
        const MAX: usize = 256;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `events` is writable for MAX entries, as the count passed says.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX as libc::c_int,
                ms,
            )
        };
        ready.clear();
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(events[..n as usize].iter().map(|e| e.u64 as RawFd));
        Ok(())
    }
}

/// Lowers the calling thread's scheduling priority to the lowest (nice 19), and that of the
/// threads it starts: they yield the processors to the daemon's other threads.
pub fn lower_priority() {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority only sets the priority of this thread (Linux takes a thread ID
    // for PRIO_PROCESS); 19 is in the range it takes. A failure leaves it as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Sets the process umask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Makes glibc's allocator give memory back: every allocation of 128 KiB or more (a reply,
/// a batch of rows, SQLite's sort keys) is its own mapping, unmapped when freed, instead of
/// glibc's default that raises this threshold after each large free until 32 MiB and then
/// keeps freed replies in its heaps (measured: 540 MB stayed resident after an attack);
/// and at most two arenas for the small allocations of the connection threads, not eight a
/// core. Other C libraries do not have these knobs; nothing is done there.
pub fn bound_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is called before any
    // thread is started, and both values are in the ranges glibc documents.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives the allocator's free memory back to the system (glibc keeps the small frees of
/// many threads in its arenas); called when the last connection ends.
pub fn trim_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connected_pair_knows_its_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        let p = peer_credentials(&s).unwrap();
        assert_eq!(p.pid as u32, std::process::id());
        // SAFETY: getuid cannot fail.
        assert_eq!(p.uid, unsafe { libc::getuid() });
    }
}
