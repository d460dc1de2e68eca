//! The spool's record parser (wtmpdb::session::spool::decode) on arbitrary bytes: it never
//! panics, and whatever it accepts encodes back to exactly the bytes it was given (there is
//! one way to write each record, so no two files can mean the same thing differently). The
//! seeds hold one record of each kind: a login, a logout by ID or token, a logout by lookup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtmpdb::session::spool::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(record) = decode(data) {
        assert_eq!(encode(&record).as_bytes(), data);
    }
});
