//! Time: microseconds since the epoch as `i64` everywhere, local-time formatting in the C
//! locale (as upstream, which never calls `setlocale`), and the `TIME` arguments of `last`.
//!
//! Formatting goes through `localtime_r` after one `tzset`, so the zone rules are read once
//! per process instead of once per call (upstream's `localtime` stats /etc/localtime each
//! time). The libc time calls are safe functions in `sys.rs`, called from here only.

use std::sync::{Once, OnceLock};

/// Microseconds since 1970-01-01 00:00:00 UTC.
pub type Usec = i64;

pub const USEC_PER_SEC: i64 = 1_000_000;

/// The broken-down local time of an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Full year, e.g. 2025 (may exceed 9999 or be negative for extreme inputs).
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// Offset east of UTC in seconds.
    pub utc_offset: i64,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn init_zone() {
    static TZSET: Once = Once::new();
    TZSET.call_once(|| {
        // Once, before any localtime_r or mktime.
        crate::sys::tzset();
    });
}

/// The current time.
pub fn now() -> Usec {
    clock_usec(libc::CLOCK_REALTIME)
}

/// When the running system booted, as wall-clock time: now minus the time since boot
/// (CLOCK_BOOTTIME includes suspend, as upstream computes it).
pub fn boot_time() -> Usec {
    now() - clock_usec(libc::CLOCK_BOOTTIME)
}

fn clock_usec(clock: libc::clockid_t) -> Usec {
    // Both clocks exist on every Linux since 2.6.39.
    let Ok(ts) = crate::sys::clock_gettime(clock) else {
        return 0;
    };
    ts.tv_sec.saturating_mul(USEC_PER_SEC) + ts.tv_nsec / 1000
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn broken_down(secs: i64, utc_offset: i64) -> LocalTime {
    let t = secs + utc_offset;
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    LocalTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        utc_offset,
    }
}

fn localtime_r(secs: i64) -> Option<LocalTime> {
    init_zone();
    let secs: libc::time_t = secs;
    let tm = crate::sys::localtime_r(secs)?;
    Some(LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        utc_offset: tm.tm_gmtoff,
    })
}

/// Zone offsets change only at transitions, and every transition of the tz database falls
/// on a quarter hour: within one 15-minute bucket whose two ends have the same offset, the
/// offset is known and the calendar is plain arithmetic. A listing of a million rows then
/// asks libc about once per distinct quarter hour instead of twice per row.
const BUCKET: i64 = 900;

/// Direct-mapped: logins and logouts of neighbouring rows fall in different buckets.
const CACHE_SLOTS: usize = 64;

thread_local! {
    static OFFSET_CACHE: std::cell::RefCell<[(i64, i64); CACHE_SLOTS]> =
        const { std::cell::RefCell::new([(i64::MIN, 0); CACHE_SLOTS]) };
}

/// Local time of `usec` (truncated to whole seconds toward negative infinity).
pub fn local(usec: Usec) -> Option<LocalTime> {
    let secs = usec.div_euclid(USEC_PER_SEC);
    let bucket = secs.div_euclid(BUCKET);
    let slot = bucket.rem_euclid(CACHE_SLOTS as i64) as usize;
    let (cached, offset) = OFFSET_CACHE.with(|c| c.borrow()[slot]);
    if cached == bucket {
        return Some(broken_down(secs, offset));
    }
    if let Some(offset) = fixed_offset_after_misses() {
        return Some(broken_down(secs, offset));
    }
    let start = localtime_r(bucket.checked_mul(BUCKET)?)?;
    let end = localtime_r(bucket * BUCKET + BUCKET - 1)?;
    if start.utc_offset == end.utc_offset {
        OFFSET_CACHE.with(|c| c.borrow_mut()[slot] = (bucket, start.utc_offset));
        Some(broken_down(secs, start.utc_offset))
    } else {
        localtime_r(secs)
    }
}

/// Misses of the offset cache after which [`fixed_offset`] is asked: rows far apart (`last
/// USER`, a row every few days) miss it nearly every time, and a miss asks libc twice.
const MISSES_BEFORE_ZONE_LOOK: u32 = 64;

thread_local! {
    static MISSES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// [`fixed_offset`], once the offset cache has missed often enough on this thread to make
/// the look worth it (it reads the zone file again).
fn fixed_offset_after_misses() -> Option<i64> {
    let misses = MISSES.with(|m| {
        let n = m.get().saturating_add(1);
        m.set(n);
        n
    });
    if misses < MISSES_BEFORE_ZONE_LOOK {
        return None;
    }
    static FIXED: OnceLock<Option<i64>> = OnceLock::new();
    *FIXED.get_or_init(fixed_offset)
}

/// The one offset of the local zone when it has a single one for all time (UTC, most
/// often, on servers): then every local time is plain arithmetic. Only for the zone libc
/// reads when TZ is not set (/etc/localtime), and only when what libc answers agrees.
fn fixed_offset() -> Option<i64> {
    if std::env::var_os("TZ").is_some() {
        return None;
    }
    let offset = tzif_fixed_offset(&std::fs::read("/etc/localtime").ok()?)?;
    [i64::from(i32::MIN), 0, 2_000_000_000, 40_000_000_000]
        .into_iter()
        .all(|t| localtime_r(t).is_some_and(|l| l.utc_offset == offset))
        .then_some(offset)
}

/// The offset of a TZif file (RFC 8536) that has no transitions, no leap seconds and one
/// standard-time type: libc uses that type at every instant (a zone without transitions
/// never reaches the rule of its footer). None for any other file.
fn tzif_fixed_offset(file: &[u8]) -> Option<i64> {
    fn counts(header: &[u8]) -> Option<[usize; 6]> {
        if header.len() < 44 || &header[..4] != b"TZif" {
            return None;
        }
        let mut c = [0usize; 6];
        for (i, n) in c.iter_mut().enumerate() {
            let b = &header[20 + 4 * i..24 + 4 * i];
            *n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        }
        Some(c)
    }
    // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    let [isut, isstd, leap, time, types, chars] = counts(file)?;
    let mut data = 44;
    if file.get(4).is_some_and(|&v| v >= b'2') {
        // Version 2 and later: libc reads the second header and its 64-bit data.
        let v1 = time * 5 + types * 6 + chars + leap * 8 + isstd + isut;
        let second = file.get(44 + v1..)?;
        let [_, _, leap2, time2, types2, _] = counts(second)?;
        if (leap2, time2, types2) != (0, 0, 1) {
            return None;
        }
        data = 44 + v1 + 44;
    } else if (leap, time, types) != (0, 0, 1) {
        return None;
    }
    let ttinfo = file.get(data..data + 6)?;
    let utoff = i32::from_be_bytes([ttinfo[0], ttinfo[1], ttinfo[2], ttinfo[3]]);
    (ttinfo[4] == 0).then_some(i64::from(utoff))
}

impl LocalTime {
    fn weekday_name(&self) -> &'static str {
        WEEKDAYS[(self.weekday % 7) as usize]
    }
    fn month_name(&self) -> &'static str {
        MONTHS[((self.month + 11) % 12) as usize]
    }
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `%a %b %e %H:%M` (e.g. `Wed Mar  5 10:00`).
pub fn push_short(out: &mut Vec<u8>, t: &LocalTime) {
    out.extend_from_slice(t.weekday_name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(t.month_name().as_bytes());
    out.push(b' ');
    out.push(if t.day >= 10 {
        b'0' + (t.day / 10) as u8
    } else {
        b' '
    });
    out.push(b'0' + (t.day % 10) as u8);
    out.push(b' ');
    push_hour_minute(out, t);
}

/// Appends `%b %e %H:%M` (e.g. `Mar  5 10:00`): coreutils `who`'s time in the C locale.
pub fn push_month_day_time(out: &mut Vec<u8>, t: &LocalTime) {
    let start = out.len();
    push_short(out, t);
    out.drain(start..start + 4);
}

/// Appends `%Y-%m-%d %H:%M` (e.g. `2025-03-05 10:00`): coreutils `who`'s time in other
/// locales.
pub fn push_date_time(out: &mut Vec<u8>, t: &LocalTime) {
    out.extend_from_slice(format!("{:04}-", t.year).as_bytes());
    push2(out, t.month);
    out.push(b'-');
    push2(out, t.day);
    out.push(b' ');
    push_hour_minute(out, t);
}

/// Appends `%a %b %e %H:%M:%S %z %Y` (e.g. `Wed Mar  5 10:00:00 +0100 2025`): lastlog's
/// time.
pub fn push_lastlog(out: &mut Vec<u8>, t: &LocalTime) {
    push_short(out, t);
    out.push(b':');
    push2(out, t.second);
    let off = t.utc_offset;
    let (sign, a) = if off < 0 { (b'-', -off) } else { (b'+', off) };
    out.push(b' ');
    out.push(sign);
    push2(out, (a / 3600) as u32);
    push2(out, (a / 60 % 60) as u32);
    out.extend_from_slice(format!(" {}", t.year).as_bytes());
}

/// Appends `%H:%M`.
pub fn push_hour_minute(out: &mut Vec<u8>, t: &LocalTime) {
    push2(out, t.hour);
    out.push(b':');
    push2(out, t.minute);
}

/// Appends `ctime()` without the newline (e.g. `Wed Mar  5 10:00:00 2025`).
pub fn push_full(out: &mut Vec<u8>, t: &LocalTime) {
    push_short(out, t);
    out.push(b':');
    push2(out, t.second);
    out.push(b' ');
    out.extend_from_slice(t.year.to_string().as_bytes());
}

/// Appends `%FT%T%z` (e.g. `2025-03-05T10:00:00+0000`).
pub fn push_iso(out: &mut Vec<u8>, t: &LocalTime) {
    use std::io::Write;
    let _ = write!(out, "{:04}-", t.year);
    push2(out, t.month);
    out.push(b'-');
    push2(out, t.day);
    out.push(b'T');
    push_hour_minute(out, t);
    out.push(b':');
    push2(out, t.second);
    out.push(if t.utc_offset < 0 { b'-' } else { b'+' });
    let off = t.utc_offset.unsigned_abs();
    let _ = write!(out, "{:02}", off / 3600);
    push2(out, (off / 60 % 60) as u32);
}

fn with_local(usec: Usec, f: fn(&mut Vec<u8>, &LocalTime)) -> String {
    let mut out = Vec::with_capacity(32);
    if let Some(t) = local(usec) {
        f(&mut out, &t);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `%a %b %e %H:%M`, e.g. `Wed Mar  5 10:00`.
pub fn format_short(usec: Usec) -> String {
    with_local(usec, push_short)
}

/// `%H:%M`.
pub fn format_hour_minute(usec: Usec) -> String {
    with_local(usec, push_hour_minute)
}

/// `ctime()` without the newline, e.g. `Wed Mar  5 10:00:00 2025`.
pub fn format_full(usec: Usec) -> String {
    with_local(usec, push_full)
}

/// `%FT%T%z`, e.g. `2025-03-05T10:00:00+0000`.
pub fn format_iso(usec: Usec) -> String {
    with_local(usec, push_iso)
}

/// Fields of a local date and time to be converted by `mktime`.
#[derive(Clone, Copy, Debug, Default)]
struct Fields {
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    second: i32,
}

fn mktime(f: Fields) -> Option<i64> {
    init_zone();
    let t = crate::sys::mktime(
        f.year - 1900,
        f.month - 1,
        f.day,
        f.hour,
        f.minute,
        f.second,
    );
    // -1 is both the error value and a real time: one second before the epoch, whose local
    // date is 1969-12-31 west of UTC and 1970-01-01 east of it. It is the answer when the
    // local time of -1 is the time asked for.
    if t == -1 {
        let lt = localtime_r(-1)?;
        let asked = (f.year, f.month, f.day, f.hour, f.minute, f.second);
        let minus_one = (
            lt.year as i32,
            lt.month as i32,
            lt.day as i32,
            lt.hour as i32,
            lt.minute as i32,
            lt.second as i32,
        );
        if asked != minus_one {
            return None;
        }
    }
    Some(t)
}

fn today() -> Fields {
    let t = local(now()).unwrap_or(LocalTime {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        weekday: 4,
        utc_offset: 0,
    });
    Fields {
        year: t.year as i32,
        month: t.month as i32,
        day: t.day as i32,
        ..Fields::default()
    }
}

/// A tiny `strptime` for the fixed formats `last` accepts: `Y` (up to 4 digits), `m`, `d`,
/// `H`, `M`, `S` (up to 2 digits each, leading blanks allowed as glibc does), literal
/// characters, and a blank in the pattern matching any run of blanks. The whole input must
/// be consumed.
fn scan(input: &str, pattern: &str, f: &mut Fields) -> bool {
    let mut s = input.as_bytes();
    for p in pattern.bytes() {
        let (max_digits, lo, hi) = match p {
            b'Y' => (4, 0, 9999),
            b'm' => (2, 1, 12),
            b'd' => (2, 1, 31),
            b'H' => (2, 0, 23),
            b'M' => (2, 0, 59),
            b'S' => (2, 0, 61),
            b' ' => {
                while let [c, rest @ ..] = s {
                    if !c.is_ascii_whitespace() {
                        break;
                    }
                    s = rest;
                }
                continue;
            }
            lit => {
                match s {
                    [c, rest @ ..] if *c == lit => s = rest,
                    _ => return false,
                }
                continue;
            }
        };
        while let [c, rest @ ..] = s {
            if !c.is_ascii_whitespace() {
                break;
            }
            s = rest;
        }
        let n = s
            .iter()
            .take(max_digits)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return false;
        }
        let v: i32 = std::str::from_utf8(&s[..n])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1);
        if v < lo || v > hi {
            return false;
        }
        s = &s[n..];
        match p {
            b'Y' => f.year = v,
            b'm' => f.month = v,
            b'd' => f.day = v,
            b'H' => f.hour = v,
            b'M' => f.minute = v,
            _ => f.second = v,
        }
    }
    s.is_empty()
}

/// Parses a `TIME` argument of `last` (`-s`, `-t`, `-p`) into seconds since the epoch,
/// in the forms upstream accepts, tried in the same order.
pub fn parse_time(arg: &str) -> Option<i64> {
    const DATED: [&str; 4] = ["YmdHMS", "Y-m-d H:M:S", "Y-m-d H:M", "Y-m-d"];
    for pattern in DATED {
        let mut f = Fields::default();
        if scan(arg, pattern, &mut f) {
            return mktime(f);
        }
    }
    for pattern in ["H:M:S", "H:M"] {
        let mut f = today();
        if scan(arg, pattern, &mut f) {
            return mktime(f);
        }
    }
    let offset = match arg {
        "now" => return Some(now().div_euclid(USEC_PER_SEC)),
        "today" => 0,
        "yesterday" => -1,
        "tomorrow" => 1,
        _ => return None,
    };
    let mut f = today();
    f.day += offset;
    mktime(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tests here run with whatever TZ the process has; the golden tests pin TZ in
    // subprocesses. Only zone-independent properties are checked.
    #[test]
    fn rejects_garbage_and_partial_matches() {
        for bad in [
            "next week",
            "2025-13-01",
            "2025-03-05 10:00:00x",
            "",
            "2025-03-05T10:00",
            "25:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn accepts_every_upstream_form() {
        for good in [
            "20250303120000",
            "2025-03-03 12:00:00",
            "2025-03-03 12:00",
            "2025-03-03",
            "12:00:00",
            "12:00",
            "now",
            "today",
            "yesterday",
            "tomorrow",
        ] {
            assert!(parse_time(good).is_some(), "{good:?}");
        }
        let day = parse_time("2025-03-03").unwrap();
        assert_eq!(parse_time("2025-03-03 00:00:00"), Some(day));
        assert_eq!(parse_time("20250303000000"), Some(day));
        let tomorrow = parse_time("tomorrow").unwrap();
        let today = parse_time("today").unwrap();
        assert!((tomorrow - today - 86_400).abs() <= 3600);
    }

    #[test]
    fn cached_offsets_agree_with_libc() {
        // Whatever zone the test runs in, the arithmetic path must equal localtime_r,
        // including across the quarter hours around DST changes and far dates.
        let mut t = -86_400 * 400;
        while t < 4_500_000_000 {
            for probe in [t, t + 1, t + 899, t + 1799] {
                assert_eq!(local(probe * USEC_PER_SEC), localtime_r(probe), "{probe}");
            }
            t += 86_400 * 7 + 3_601;
        }
    }

    /// A TZif file of one offset for all time, in version 1 or 2 (whose first block a
    /// reader of the second skips), with `transitions` transition times and `leaps` leap
    /// seconds in both blocks, and one type of offset `utoff` (`dst`: a daylight type).
    fn tzif(version: u8, utoff: i32, dst: bool, transitions: u32, leaps: u32) -> Vec<u8> {
        let block = |wide: bool| {
            let mut b = Vec::from(&b"TZif"[..]);
            b.push(version);
            b.extend([0; 15]);
            for n in [0, 0, leaps, transitions, 1, 4] {
                b.extend(n.to_be_bytes());
            }
            let t = if wide { 8 } else { 4 };
            b.extend(vec![0; transitions as usize * (t + 1)]);
            b.extend(utoff.to_be_bytes());
            b.extend([u8::from(dst), 0]);
            b.extend(b"ZZZ\0");
            b.extend(vec![0; leaps as usize * (t + 4)]);
            b
        };
        let mut f = block(false);
        if version >= b'2' {
            f.extend(block(true));
            f.extend(b"\nZZZ0\n");
        }
        f
    }

    #[test]
    fn a_zone_of_one_offset_is_recognized_and_no_other() {
        for v in [0, b'2', b'3'] {
            assert_eq!(tzif_fixed_offset(&tzif(v, 0, false, 0, 0)), Some(0));
            assert_eq!(
                tzif_fixed_offset(&tzif(v, 19_800, false, 0, 0)),
                Some(19_800)
            );
            assert_eq!(
                tzif_fixed_offset(&tzif(v, -18_000, false, 0, 0)),
                Some(-18_000)
            );
            assert_eq!(tzif_fixed_offset(&tzif(v, 3_600, false, 1, 0)), None);
            assert_eq!(tzif_fixed_offset(&tzif(v, 0, false, 0, 1)), None);
            assert_eq!(tzif_fixed_offset(&tzif(v, 3_600, true, 0, 0)), None);
            let whole = tzif(v, 0, false, 0, 0);
            for cut in 0..whole.len() - 6 {
                if v == 0 || cut < whole.len() / 2 {
                    assert_eq!(tzif_fixed_offset(&whole[..cut]), None, "{v} {cut}");
                }
            }
        }
        assert_eq!(
            tzif_fixed_offset(b"not a zone file at all, not at all, no, not this"),
            None
        );
        // The zone files of the system, where there are: UTC has one offset, Paris does not.
        if let Ok(utc) = std::fs::read("/usr/share/zoneinfo/Etc/UTC") {
            assert_eq!(tzif_fixed_offset(&utc), Some(0));
        }
        if let Ok(paris) = std::fs::read("/usr/share/zoneinfo/Europe/Paris") {
            assert_eq!(tzif_fixed_offset(&paris), None);
        }
    }

    #[test]
    fn far_future_dates_round_trip() {
        // 2038-01-19 03:14:08 UTC is the first second a 32-bit time_t cannot hold.
        let y2038 = 2_147_483_648 * USEC_PER_SEC;
        let t = local(y2038).unwrap();
        assert_eq!(t.year, 2038);
        // 2106-02-07 06:28:16 UTC is where an unsigned 32-bit counter wraps.
        let y2106 = 4_294_967_296 * USEC_PER_SEC;
        assert!(local(y2106).unwrap().year >= 2106);
        assert!(format_full(y2106).ends_with("2106"));
        let y3000 = 32_503_680_000 * USEC_PER_SEC;
        assert!(format_full(y3000 + 86_400 * USEC_PER_SEC).ends_with("3000"));
    }
}
