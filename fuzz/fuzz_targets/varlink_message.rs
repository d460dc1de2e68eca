//! wtmpdbd's varlink message parser (wtmpdbd::protocol::parse_call) and its typed parameter
//! access on arbitrary bytes: it never panics, a call it accepts has a qualified method
//! name, and every parameter getter answers a value or an InvalidParameter reply that
//! encodes as one NUL-terminated JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtmpdbd::protocol::{INVALID_PARAMETER, Params, Reply, parse_call};

fuzz_target!(|data: &[u8]| {
    let call = match parse_call(data) {
        Ok(c) => c,
        Err(bad) => {
            let r = Reply::invalid(bad.parameter(), bad.to_string()).encode();
            assert_eq!(r.last(), Some(&0));
            assert!(serde_json::from_slice::<serde_json::Value>(&r[..r.len() - 1]).is_ok());
            return;
        }
    };
    assert!(call.method.contains('.'));
    assert!(!call.interface().is_empty() && !call.name().is_empty());
    let p = Params::new(&call.parameters, 1024);
    for name in call.parameters.keys() {
        for r in [
            p.opt_int(name).err(),
            p.opt_str(name).err(),
            p.only(&["ID", "TTY"]).err(),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(r.error, Some(INVALID_PARAMETER));
            let bytes = r.encode();
            assert!(serde_json::from_slice::<serde_json::Value>(&bytes[..bytes.len() - 1]).is_ok());
        }
        if let Ok(Some(s)) = p.opt_str(name) {
            assert!(s.len() <= 1024 && !s.contains('\0'));
        }
    }
});
