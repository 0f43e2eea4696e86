//! `popgate_auth::sasl` on arbitrary strings, both ways, and the whole
//! exchange on arbitrary lines.
//!
//! Invariants of the decoders: a response is refused as too long exactly
//! when it is; `*` always cancels; whatever decodes re-encodes to the same
//! base64; a PLAIN response decodes to a non-empty user and fields without
//! NUL; and any user and password (without NUL) survive an encode/decode
//! round trip.
//!
//! Invariants of the exchange (`SaslExchange`, driven over the input's
//! lines, the first byte choosing the mechanism and whether the first line
//! is the initial response): it asks at most two questions, only the
//! mechanism's own; it ends at the first `*` with a cancel; credentials it
//! gives are the decoders' own reading of the lines, with a valid login
//! name; and every refusal is one of the two kinds (acting as another
//! user, a malformed name).

#![no_main]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use popgate_auth::sasl::{
    decode_login_line, decode_plain, Mechanism, Progress, SaslError, SaslExchange,
    LOGIN_PASSWORD_PROMPT, LOGIN_USER_PROMPT, MAX_RESPONSE_LEN,
};
use popgate_auth::validate_login_name;

fuzz_target!(|data: &[u8]| {
    exchange(data);

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

/// Drives an exchange over `data`'s lines and checks how it went.
fn exchange(data: &[u8]) {
    let [choice, rest @ ..] = data else {
        return;
    };
    let mechanism = if choice & 1 == 0 {
        Mechanism::Plain
    } else {
        Mechanism::Login
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let initial = if choice & 2 == 0 { None } else { lines.next() };
    let mut given: Vec<&[u8]> = initial.into_iter().collect();
    let mut asked = 0;
    let mut progress = SaslExchange::start(mechanism, initial);
    let ended = loop {
        match progress {
            Progress::Challenge(exchange) => {
                asked += 1;
                let expected = match (mechanism, given.len()) {
                    (Mechanism::Plain, 0) => "",
                    (Mechanism::Login, 0) => LOGIN_USER_PROMPT,
                    (Mechanism::Login, 1) => LOGIN_PASSWORD_PROMPT,
                    (mechanism, n) => panic!("{mechanism:?} asked again after {n} lines"),
                };
                assert_eq!(exchange.challenge(), expected);
                let Some(line) = lines.next() else {
                    return;
                };
                given.push(line);
                progress = exchange.respond(line);
            }
            Progress::Done(credentials) => break Ok(credentials),
            Progress::Failed(error) => break Err(error),
        }
    };
    assert!(asked <= 2);
    let text = |line: &[u8]| String::from_utf8(line.to_vec()).ok();
    let cancelled = given.iter().position(|line| {
        text(line).is_some_and(|t| {
            t.trim_matches(|c: char| c.is_ascii_whitespace()) == "*"
                && line.len() <= MAX_RESPONSE_LEN
        })
    });
    if let Some(at) = cancelled {
        assert_eq!(at + 1, given.len(), "lines handed over after a cancel");
        assert_eq!(ended.as_ref().err(), Some(&SaslError::Cancelled));
    }
    match ended {
        Ok(credentials) => {
            assert!(validate_login_name(&credentials.user).is_ok());
            match mechanism {
                Mechanism::Plain => {
                    let decoded =
                        decode_plain(&text(given[0]).expect("UTF-8")).expect("a PLAIN message");
                    assert_eq!(decoded.user, credentials.user);
                    assert_eq!(decoded.password.expose(), credentials.password.expose());
                }
                Mechanism::Login => {
                    assert_eq!(given.len(), 2);
                    let user = decode_login_line(&text(given[0]).expect("UTF-8"));
                    let password = decode_login_line(&text(given[1]).expect("UTF-8"));
                    assert_eq!(user.as_deref(), Ok(credentials.user.as_str()));
                    assert_eq!(password.as_deref(), Ok(credentials.password.expose()));
                }
            }
        }
        Err(error) if error.is_refusal() => assert!(matches!(
            error,
            SaslError::ProxyAuthorization | SaslError::InvalidLoginName
        )),
        Err(_) => {}
    }
}
