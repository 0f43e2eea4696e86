//! `popgate::pop3::command::parse` on arbitrary bytes and limits.
//!
//! Invariants: the limit only ever adds `TooLong`; an accepted line is
//! UTF-8 without control characters; every accepted command prints back to a
//! line that parses to the same command; arguments respect their bounds; and
//! `Debug` never shows a password.

#![no_main]

use libfuzzer_sys::fuzz_target;
use popgate::pop3::command::{parse, Command, ParseError};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, line)) = data.split_first() else {
        return;
    };
    // Limits from 0 (nothing fits) through the usual 512 to unbounded.
    let max_len = match limit {
        0 => 0,
        255 => usize::MAX,
        n => usize::from(n) * 4,
    };
    let unbounded = parse(line, usize::MAX);
    let bounded = parse(line, max_len);
    if line.len() + 2 > max_len {
        assert_eq!(bounded, Err(ParseError::TooLong));
    } else {
        assert_eq!(bounded, unbounded);
    }
    let Ok(command) = unbounded else {
        return;
    };
    let text = std::str::from_utf8(line).expect("an accepted line is UTF-8");
    assert!(
        !text.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f),
        "an accepted line has no control characters"
    );
    match &command {
        Command::User(name) => {
            assert!(!name.is_empty() && name.len() <= 255);
            assert!(!name.contains([' ', '\t']));
        }
        Command::Pass(password) => {
            assert!(!password.is_empty());
            assert!(text.ends_with(password.as_str()));
            let shown = format!("{command:?}");
            assert!(
                "Pass(<redacted>)".contains(password.as_str())
                    || !shown.contains(password.as_str()),
                "Debug shows the password"
            );
        }
        Command::Auth {
            mechanism,
            initial_response,
        } => {
            assert!(mechanism.is_some() || initial_response.is_none());
            if let Some(mechanism) = mechanism {
                assert_eq!(*mechanism, mechanism.to_ascii_uppercase());
                assert!(!mechanism.is_empty() && mechanism.len() <= 255);
            }
        }
        _ => {}
    }
    let printed = print(&command);
    assert_eq!(
        parse(printed.as_bytes(), usize::MAX),
        Ok(command),
        "printed as {printed:?}"
    );
});

/// The canonical line for a command.
fn print(command: &Command) -> String {
    let number = |n: &Option<u32>| n.map(|n| format!(" {n}")).unwrap_or_default();
    match command {
        Command::User(name) => format!("USER {name}"),
        Command::Pass(password) => format!("PASS {password}"),
        Command::Auth {
            mechanism,
            initial_response,
        } => {
            let mut line = String::from("AUTH");
            for part in [mechanism, initial_response].into_iter().flatten() {
                line.push(' ');
                line.push_str(part);
            }
            line
        }
        Command::Stls => "STLS".into(),
        Command::Capa => "CAPA".into(),
        Command::Stat => "STAT".into(),
        Command::List(n) => format!("LIST{}", number(n)),
        Command::Uidl(n) => format!("UIDL{}", number(n)),
        Command::Retr(n) => format!("RETR {n}"),
        Command::Top(n, lines) => format!("TOP {n} {lines}"),
        Command::Dele(n) => format!("DELE {n}"),
        Command::Noop => "NOOP".into(),
        Command::Rset => "RSET".into(),
        Command::Quit => "QUIT".into(),
        Command::Utf8 => "UTF8".into(),
    }
}
