//! The wtmp reader and the session matching on arbitrary bytes: never a panic, and the
//! streaming reader agrees with the in-memory one.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use wtmpdb::import::Matcher;
use wtmpdb::utmp_file::{self, RECORD_SIZE, Reader};

/// Hands out the input in uneven pieces, as a pipe or a slow disk may.
struct Uneven<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Uneven<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % 509 + 1;
        let n = out.len().min(self.data.len()).min(self.step);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = utmp_file::recognize_foreign(data);
    let (records, spare) = utmp_file::records(data);
    assert_eq!(spare, data.len() % RECORD_SIZE);
    let mut matcher = Matcher::new();
    for r in records {
        let decoded = r.to_record();
        assert!(decoded.user.len() <= 32 * 4 && decoded.host.len() <= 256 * 4);
        matcher.feed(r);
    }
    let _ = matcher.foreign_reason();
    let _ = matcher.warnings();
    let rows = matcher.entries().count() as u64;
    assert_eq!(rows, matcher.sessions() + matcher.boots());

    let mut reader = Reader::new(Uneven {
        data,
        step: data.first().copied().unwrap_or(0) as usize,
    });
    let mut streamed = Matcher::new();
    while let Some(r) = reader.next_record().unwrap() {
        streamed.feed(r);
    }
    assert_eq!(reader.spare().len(), spare);
    assert_eq!(reader.bytes_read(), data.len() as u64);
    assert_eq!(streamed.records(), matcher.records());
    assert!(streamed.entries().eq(matcher.entries()));
});
