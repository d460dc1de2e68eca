//! Reader for legacy binary wtmp files: glibc's `struct utmp` as laid out on x86_64 (and
//! i386, which shares it), 384 little-endian bytes per record.
//!
//! Everything is read through bounds-checked slices of one record; nothing here trusts the
//! file. Each string field ends at its first NUL *or at the end of the field*: glibc does
//! not NUL-terminate a field that is completely filled, and a C reader that treats it as a
//! C string runs into the next field (upstream imports a 32-byte user as user+host).
//!
//! Time: `ut_tv.tv_sec` is read as an *unsigned* 32-bit number, i.e. 1970..2106. The
//! field is a signed `int32_t` in glibc, but a wtmp file never holds times before 1970,
//! while a 32-bit writer that keeps running past 2038-01-19 03:14:07 UTC stores the wrapped
//! value; read unsigned, such records land on their real date instead of in 1901.

use std::io::{self, Read};

use crate::escape::decode_lossless;
use crate::time::{USEC_PER_SEC, Usec};

/// Size of one record.
pub const RECORD_SIZE: usize = 384;

/// `ut_type` values of glibc (not wtmpdb's `Type` numbers).
pub const EMPTY: i16 = 0;
pub const RUN_LVL: i16 = 1;
pub const BOOT_TIME: i16 = 2;
pub const NEW_TIME: i16 = 3;
pub const OLD_TIME: i16 = 4;
pub const INIT_PROCESS: i16 = 5;
pub const LOGIN_PROCESS: i16 = 6;
pub const USER_PROCESS: i16 = 7;
pub const DEAD_PROCESS: i16 = 8;
pub const ACCOUNTING: i16 = 9;

const TYPE: usize = 0;
const PID: usize = 4;
const LINE: (usize, usize) = (8, 32);
const ID: (usize, usize) = (40, 4);
const USER: (usize, usize) = (44, 32);
const HOST: (usize, usize) = (76, 256);
const EXIT: usize = 332;
const SESSION: usize = 336;
const TV_SEC: usize = 340;
const TV_USEC: usize = 344;
const ADDR_V6: usize = 348;

/// One record, borrowed from a buffer; the accessors decode fields on demand.
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    bytes: &'a [u8; RECORD_SIZE],
}

impl std::fmt::Debug for RawRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_record().fmt(f)
    }
}

/// The bytes of a string field up to its first NUL, never past the field.
fn c_field(bytes: &[u8], (offset, len): (usize, usize)) -> &[u8] {
    let field = &bytes[offset..offset + len];
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

impl<'a> RawRecord<'a> {
    pub fn new(bytes: &'a [u8; RECORD_SIZE]) -> Self {
        RawRecord { bytes }
    }

    /// The record at the start of `bytes`, if there are enough of them.
    pub fn from_prefix(bytes: &'a [u8]) -> Option<Self> {
        bytes
            .get(..RECORD_SIZE)
            .and_then(|b| b.try_into().ok())
            .map(RawRecord::new)
    }

    pub fn as_bytes(&self) -> &'a [u8; RECORD_SIZE] {
        self.bytes
    }

    fn i16_at(&self, at: usize) -> i16 {
        i16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_le_bytes(b)
    }

    pub fn ut_type(&self) -> i16 {
        self.i16_at(TYPE)
    }

    /// True for the types glibc defines (`EMPTY` ..= `ACCOUNTING`).
    pub fn has_known_type(&self) -> bool {
        (EMPTY..=ACCOUNTING).contains(&self.ut_type())
    }

    pub fn pid(&self) -> i32 {
        self.u32_at(PID) as i32
    }

    /// `ut_line`: the tty without `/dev/` (`pts/3`), or `~` for system records.
    pub fn line(&self) -> &'a [u8] {
        c_field(self.bytes, LINE)
    }

    /// `ut_id`: inittab id or tty suffix; `~~` for system records.
    pub fn id(&self) -> &'a [u8] {
        c_field(self.bytes, ID)
    }

    pub fn user(&self) -> &'a [u8] {
        c_field(self.bytes, USER)
    }

    /// `ut_host`: remote host or X display; the kernel release for system records.
    pub fn host(&self) -> &'a [u8] {
        c_field(self.bytes, HOST)
    }

    /// `ut_exit` (`e_termination`, `e_exit`).
    pub fn exit_status(&self) -> (i16, i16) {
        (self.i16_at(EXIT), self.i16_at(EXIT + 2))
    }

    pub fn session(&self) -> i32 {
        self.u32_at(SESSION) as i32
    }

    /// Seconds since the epoch, unsigned (see the module documentation).
    pub fn tv_sec(&self) -> u32 {
        self.u32_at(TV_SEC)
    }

    /// The microseconds as stored, possibly out of range in a damaged file.
    pub fn tv_usec(&self) -> i32 {
        self.u32_at(TV_USEC) as i32
    }

    /// False when `tv_usec` is outside `0..1_000_000`; [`time`](Self::time) then drops it.
    pub fn tv_usec_is_valid(&self) -> bool {
        (0..USEC_PER_SEC).contains(&i64::from(self.tv_usec()))
    }

    /// When the record was written, in microseconds. An invalid `tv_usec` is taken as 0
    /// rather than clamped: a garbage sub-second part carries no information, and keeping
    /// the whole second keeps the record in the second the writer meant.
    pub fn time(&self) -> Usec {
        let usec = if self.tv_usec_is_valid() {
            i64::from(self.tv_usec())
        } else {
            0
        };
        i64::from(self.tv_sec()) * USEC_PER_SEC + usec
    }

    /// `ut_addr_v6` as stored (network byte order; an IPv4 address uses the first 4 bytes).
    pub fn addr_v6(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.bytes[ADDR_V6..ADDR_V6 + 16]);
        a
    }

    /// An owned copy with the strings decoded (invalid UTF-8 as `\xNN`).
    pub fn to_record(&self) -> Record {
        let text = |b: &[u8]| decode_lossless(b).into_owned();
        Record {
            ut_type: self.ut_type(),
            pid: self.pid(),
            line: text(self.line()),
            id: text(self.id()),
            user: text(self.user()),
            host: text(self.host()),
            exit_status: self.exit_status(),
            session: self.session(),
            time: self.time(),
            addr_v6: self.addr_v6(),
        }
    }
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ut_type: i16,
    pub pid: i32,
    pub line: String,
    pub id: String,
    pub user: String,
    pub host: String,
    pub exit_status: (i16, i16),
    pub session: i32,
    pub time: Usec,
    pub addr_v6: [u8; 16],
}

/// The complete records of an in-memory file, and the number of trailing bytes that do not
/// make a whole record.
pub fn records(bytes: &[u8]) -> (impl Iterator<Item = RawRecord<'_>>, usize) {
    let chunks = bytes.chunks_exact(RECORD_SIZE);
    let spare = chunks.remainder().len();
    (chunks.filter_map(RawRecord::from_prefix), spare)
}

/// Reads records one at a time from any reader (wrap a file in a `BufReader`), so that a
/// file of any size needs one record of memory here.
pub struct Reader<R> {
    inner: R,
    buf: Box<[u8; RECORD_SIZE]>,
    /// Bytes in `buf` after the end: the incomplete last record.
    spare: usize,
    records: u64,
    bytes: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            buf: Box::new([0; RECORD_SIZE]),
            spare: 0,
            records: 0,
            bytes: 0,
            done: false,
        }
    }

    /// The next complete record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<RawRecord<'_>>> {
        if self.done {
            return Ok(None);
        }
        let mut filled = 0;
        while filled < RECORD_SIZE {
            match self.inner.read(&mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        self.bytes += filled as u64;
        if filled < RECORD_SIZE {
            self.done = true;
            self.spare = filled;
            return Ok(None);
        }
        self.records += 1;
        Ok(Some(RawRecord::new(&self.buf)))
    }

    /// After the end: the bytes of the incomplete last record (empty if there was none).
    pub fn spare(&self) -> &[u8] {
        &self.buf[..self.spare]
    }

    /// Complete records returned so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Bytes consumed so far, including an incomplete last record.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

/// What a file that starts with `head` (its first record, or all of it when shorter)
/// clearly is when it is not a wtmp file, e.g. `"an SQLite database"`.
pub fn recognize_foreign(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 8] = [
        (b"SQLite format 3\0", "an SQLite database"),
        (b"\x7fELF", "an ELF binary"),
        (b"\x1f\x8b", "gzip-compressed (decompress it first)"),
        (b"\xfd7zXZ\0", "xz-compressed (decompress it first)"),
        (b"BZh", "bzip2-compressed (decompress it first)"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first)"),
        (b"PK\x03\x04", "a zip archive"),
        (b"%PDF", "a PDF document"),
    ];
    for (magic, what) in MAGIC {
        if head.starts_with(magic) {
            return Some(what);
        }
    }
    // Every real record has NUL bytes (the padding after ut_type at least); text has none.
    if head.len() >= 4 && !head.contains(&0) {
        return Some("a text file");
    }
    None
}

/// True when `path` looks like a legacy utmp/wtmp file: a whole number of records, the
/// first of a known type. Used to point a user who runs `last -f /var/log/wtmp` at the
/// right tool.
pub fn looks_like_wtmp(path: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; RECORD_SIZE];
    len > 0
        && len % RECORD_SIZE as u64 == 0
        && f.read_exact(&mut head).is_ok()
        && recognize_foreign(&head).is_none()
        && RawRecord::new(&head).has_known_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ut_type: i16, line: &[u8], user: &[u8], host: &[u8], sec: u32) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_SIZE];
        b[0..2].copy_from_slice(&ut_type.to_le_bytes());
        b[4..8].copy_from_slice(&4242i32.to_le_bytes());
        b[8..8 + line.len()].copy_from_slice(line);
        b[40..42].copy_from_slice(b"/3");
        b[44..44 + user.len()].copy_from_slice(user);
        b[76..76 + host.len()].copy_from_slice(host);
        b[340..344].copy_from_slice(&sec.to_le_bytes());
        b[344..348].copy_from_slice(&250_000i32.to_le_bytes());
        b[348..352].copy_from_slice(&[10, 0, 0, 1]);
        b
    }

    #[test]
    fn fields_are_decoded_at_their_offsets() {
        let b = record(
            USER_PROCESS,
            b"pts/3",
            b"alice",
            b"host.example",
            1_700_000_000,
        );
        let r = RawRecord::from_prefix(&b).unwrap().to_record();
        assert_eq!(r.ut_type, USER_PROCESS);
        assert_eq!(r.pid, 4242);
        assert_eq!(r.line, "pts/3");
        assert_eq!(r.id, "/3");
        assert_eq!(r.user, "alice");
        assert_eq!(r.host, "host.example");
        assert_eq!(r.time, 1_700_000_000_250_000);
        assert_eq!(&r.addr_v6[..4], &[10, 0, 0, 1]);
    }

    #[test]
    fn full_fields_stop_at_their_end() {
        let user = [b'B'; 32];
        let line = [b'L'; 32];
        let host = [b'H'; 256];
        let mut b = record(USER_PROCESS, &line, &user, &host, 1);
        b[40..44].copy_from_slice(b"IIII");
        let r = RawRecord::from_prefix(&b).unwrap();
        assert_eq!(r.user(), &user[..]);
        assert_eq!(r.line(), &line[..]);
        assert_eq!(r.host(), &host[..]);
        assert_eq!(r.id(), b"IIII");
    }

    #[test]
    fn times_after_2038_and_invalid_microseconds() {
        let mut b = record(BOOT_TIME, b"~", b"reboot", b"", 0x9000_0000);
        let r = RawRecord::from_prefix(&b).unwrap();
        assert_eq!(r.time(), 0x9000_0000i64 * USEC_PER_SEC + 250_000);
        assert!(r.time() > 2_147_483_647 * USEC_PER_SEC);
        for bad in [-1i32, 1_000_000, i32::MAX] {
            b[344..348].copy_from_slice(&bad.to_le_bytes());
            let r = RawRecord::from_prefix(&b).unwrap();
            assert!(!r.tv_usec_is_valid());
            assert_eq!(r.time(), 0x9000_0000i64 * USEC_PER_SEC);
        }
    }

    #[test]
    fn non_utf8_is_escaped() {
        let b = record(USER_PROCESS, b"pts/1", b"m\xfcller", b"", 1);
        assert_eq!(
            RawRecord::from_prefix(&b).unwrap().to_record().user,
            "m\\xfcller"
        );
    }

    #[test]
    fn reader_counts_spare_bytes() {
        let mut data = record(USER_PROCESS, b"pts/1", b"a", b"", 1);
        data.extend(record(DEAD_PROCESS, b"pts/1", b"", b"", 2));
        data.extend([7u8; 100]);
        // A reader that hands out a few bytes at a time must give the same records.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Reader::new(Trickle(&data));
        let mut types = vec![];
        while let Some(rec) = r.next_record().unwrap() {
            types.push(rec.ut_type());
        }
        assert_eq!(types, [USER_PROCESS, DEAD_PROCESS]);
        assert_eq!(r.spare().len(), 100);
        assert_eq!(r.records_read(), 2);
        assert_eq!(r.bytes_read(), data.len() as u64);
        assert!(r.next_record().unwrap().is_none());

        let (it, spare) = records(&data);
        assert_eq!(it.count(), 2);
        assert_eq!(spare, 100);
    }

    #[test]
    fn foreign_files_are_recognized() {
        assert_eq!(
            recognize_foreign(b"SQLite format 3\0\x10\x00"),
            Some("an SQLite database")
        );
        assert_eq!(recognize_foreign(b"\x7fELF\x02\x01"), Some("an ELF binary"));
        assert_eq!(recognize_foreign(b"hello world\n"), Some("a text file"));
        let b = record(BOOT_TIME, b"~", b"reboot", b"6.1.0", 1);
        assert_eq!(recognize_foreign(&b), None);
    }
}
