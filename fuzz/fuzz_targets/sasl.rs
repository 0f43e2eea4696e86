//! `popgate_auth::sasl` on arbitrary strings, both ways.
//!
//! Invariants: a response is refused as too long exactly when it is; `*`
//! always cancels; whatever decodes re-encodes to the same base64; a PLAIN
//! response decodes to a non-empty user and fields without NUL; and any
//! user and password (without NUL) survive an encode/decode round trip.

#![no_main]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use popgate_auth::sasl::{decode_login_line, decode_plain, SaslError, MAX_RESPONSE_LEN};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());

    let line = decode_login_line(&text);
    if text.len() > MAX_RESPONSE_LEN {
        assert_eq!(line, Err(SaslError::TooLong));
        assert_eq!(decode_plain(&text).err(), Some(SaslError::TooLong));
        return;
    }
    if trimmed == "*" {
        assert_eq!(line, Err(SaslError::Cancelled));
    }
    if let Ok(decoded) = &line {
        if trimmed != "=" {
            assert_eq!(
                STANDARD_NO_PAD.encode(decoded.as_bytes()),
                trimmed.trim_end_matches('='),
                "decoding is not the inverse of encoding"
            );
        }
    }
    match decode_plain(&text) {
        Ok(credentials) => {
            let user = &credentials.user;
            let password = credentials.password.expose();
            assert!(!user.is_empty());
            assert!(!user.contains('\0') && !password.contains('\0'));
            let decoded = line.expect("a PLAIN response is a valid LOGIN line");
            assert!(
                decoded == format!("\0{user}\0{password}")
                    || decoded == format!("{user}\0{user}\0{password}")
            );
        }
        Err(SaslError::TooLong) => panic!("TooLong under the limit"),
        Err(_) => {}
    }

    // The other direction: the input, split in two, as user and password.
    round_trip(&text);
});

/// Any user and password without NUL come back from PLAIN and LOGIN unchanged.
fn round_trip(text: &str) {
    let middle = (0..=text.len() / 2)
        .rev()
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(0);
    let (user, password) = text.split_at(middle);
    if user.is_empty() || user.contains('\0') || password.contains('\0') {
        return;
    }
    let plain = STANDARD.encode(format!("\0{user}\0{password}"));
    if plain.len() > MAX_RESPONSE_LEN {
        return;
    }
    let credentials = decode_plain(&plain).expect("a well-formed PLAIN response");
    assert_eq!(credentials.user, user);
    assert_eq!(credentials.password.expose(), password);
    let login = STANDARD_NO_PAD.encode(password);
    if !login.is_empty() {
        assert_eq!(decode_login_line(&login).as_deref(), Ok(password));
    }
}
