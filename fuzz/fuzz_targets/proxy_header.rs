//! `popgate::proxy_protocol::parse` on arbitrary first octets of a
//! connection from a trusted proxy.
//!
//! Invariants: a complete header is no longer than the input nor than
//! `MAX_HEADER_LEN`; every proper prefix of it parses as incomplete (the
//! reader consumes incomplete input whole, so it must all be header); the
//! octets after it do not change the result; and input is never reported
//! incomplete once it has reached `MAX_HEADER_LEN`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use popgate::proxy_protocol::{parse, Parsed, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete { len, source }) => {
            assert!(len <= data.len() && len <= MAX_HEADER_LEN);
            for end in 0..len {
                assert_eq!(parse(&data[..end]).ok(), Some(Parsed::Incomplete), "{end}");
            }
            assert_eq!(
                parse(&data[..len]).ok(),
                Some(Parsed::Complete { len, source })
            );
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_HEADER_LEN),
        Err(_) => {}
    }
});
