//! The protocol log: one log line per command a client sent (`C:`) and, for
//! submission, per reply line popgate sent (`S:`), when `protocol_log = true`
//! in `[pop3]` or `[submission]`. An admin turns it on to see what a mail
//! client does; it must never become a second copy of users' passwords or
//! mail. So what a line may show is decided here, once, for both protocols:
//!
//! - A command's keyword must be one the protocol knows; any other line is
//!   shown as `<unrecognized command, N octets>`. A client that sends its
//!   base64 credentials out of turn (after a refused `AUTH`, say) would
//!   otherwise have them logged as an "unknown command".
//! - `PASS` keeps only its keyword, `AUTH` its keyword and, when it is a
//!   known SASL mechanism name, its mechanism: `AUTH PLAIN <redacted>`
//!   (`AUTH <redacted>` when a client put its response where the mechanism
//!   goes). Words are split at any white space, as the protocol parsers
//!   split them, so a tab cannot smuggle a secret past.
//! - A SASL response line (the client's answer to a `+`/`334` challenge) is
//!   never shown: the session that knows it is one logs [`SASL_RESPONSE`].
//! - Message content is never shown; the session logs its size instead.
//! - Lines are cut to [`MAX_LOGGED`] characters and control characters are
//!   escaped as everywhere else ([`crate::log_text`]), so a client cannot
//!   forge log lines.
//!
//! ```
//! use popgate::protocol_log::command_line;
//! let known = &["USER", "PASS", "AUTH"];
//! assert_eq!(command_line(b"pass\thunter2", known), "pass <redacted>");
//! assert_eq!(command_line(b"AUTH PLAIN AGFsaWNl", known), "AUTH PLAIN <redacted>");
//! assert_eq!(command_line(b"AGFsaWNlAHNlY3JldA==", known), "<unrecognized command, 20 octets>");
//! ```

use std::net::IpAddr;

use tracing::info;

use crate::log_text;

/// What a SASL response line is logged as.
pub const SASL_RESPONSE: &str = "<SASL response redacted>";
/// The most characters of one line that are logged.
pub const MAX_LOGGED: usize = 512;

/// Commands whose arguments are secrets, in every protocol popgate speaks.
const SECRET_ARGUMENTS: &[&str] = &["PASS", "AUTH"];
/// SASL mechanisms clients try, shown after `AUTH`; any other word there
/// may be a misplaced response and is hidden.
const MECHANISMS: &[&str] = &[
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "XOAUTH2",
    "OAUTHBEARER",
    "GSSAPI",
    "NTLM",
    "EXTERNAL",
    "ANONYMOUS",
];

/// Logs what the client of a `service` session at `ip` sent (already made
/// fit to log by [`command_line`] or a placeholder).
pub fn client(service: &'static str, ip: IpAddr, text: &str) {
    info!(target: "popgate::protocol", service, rip = %ip, "C: {text}");
}

/// Logs one reply line popgate sent (without its CRLF).
pub fn server(service: &'static str, ip: IpAddr, line: &[u8]) {
    info!(target: "popgate::protocol", service, rip = %ip, "S: {}", printable(line));
}

/// A client's command line as it may be logged; `known` lists the
/// protocol's keywords (upper case).
pub fn command_line(line: &[u8], known: &[&str]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_ascii_whitespace();
    let keyword = words.next().unwrap_or("");
    if !known.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
        return format!("<unrecognized command, {} octets>", line.len());
    }
    if !SECRET_ARGUMENTS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(keyword))
    {
        return printable(line);
    }
    // A known keyword and mechanism: printable already.
    let mut shown = String::from(keyword);
    let mut rest = words.peekable();
    if keyword.eq_ignore_ascii_case("AUTH") {
        if let Some(mechanism) =
            rest.next_if(|w| MECHANISMS.iter().any(|m| m.eq_ignore_ascii_case(w)))
        {
            shown.push(' ');
            shown.push_str(mechanism);
        }
    }
    if rest.next().is_some() {
        shown.push_str(" <redacted>");
    }
    shown
}

/// `line` without its line break, escaped, cut to [`MAX_LOGGED`]
/// characters.
fn printable(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    log_text::escaped(&String::from_utf8_lossy(line), MAX_LOGGED)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POP3: &[&str] = &["USER", "PASS", "AUTH", "RETR"];

    #[test]
    fn secrets_are_hidden_however_the_words_are_separated() {
        for line in [
            "PASS hunter2",
            "pass hunter2 with spaces",
            "PASS\thunter2",
            "  PASS hunter2",
        ] {
            let shown = command_line(line.as_bytes(), POP3);
            assert!(!shown.contains("hunter2"), "{line:?} -> {shown}");
            assert!(shown.ends_with("<redacted>"), "{line:?} -> {shown}");
        }
        for line in [
            "AUTH PLAIN AGFsaWNlAGh1bnRlcjI=",
            "auth\tplain\tAGFsaWNlAGh1bnRlcjI=",
            "AUTH  PLAIN  AGFsaWNlAGh1bnRlcjI=",
        ] {
            let shown = command_line(line.as_bytes(), POP3);
            assert!(!shown.contains("AGFsaWNl"), "{line:?} -> {shown}");
            assert!(shown.ends_with(" <redacted>"), "{line:?} -> {shown}");
        }
        assert_eq!(
            command_line(b"AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n", POP3),
            "AUTH PLAIN <redacted>"
        );
        assert_eq!(
            command_line(b"AUTH AGFsaWNlAGh1bnRlcjI=", POP3),
            "AUTH <redacted>"
        );
        assert_eq!(command_line(b"AUTH LOGIN", POP3), "AUTH LOGIN");
        assert_eq!(command_line(b"auth cram-md5", POP3), "auth cram-md5");
        assert_eq!(command_line(b"AUTH", POP3), "AUTH");
        assert_eq!(command_line(b"PASS", POP3), "PASS");
    }

    #[test]
    fn other_commands_are_shown_and_unknown_ones_are_not() {
        assert_eq!(command_line(b"USER alice", POP3), "USER alice");
        assert_eq!(command_line(b"retr 1\r\n", POP3), "retr 1");
        assert_eq!(
            command_line(b"aHVudGVyMg==\r\n", POP3),
            "<unrecognized command, 14 octets>"
        );
        assert_eq!(command_line(b"", POP3), "<unrecognized command, 0 octets>");
    }

    #[test]
    fn logged_lines_are_printable_and_bounded() {
        assert_eq!(
            command_line(b"USER a\x1b[2Jb\x00c\nd", POP3),
            r"USER a\x1b[2Jb\x00c\nd"
        );
        let long = format!("USER {}", "x".repeat(2000));
        let shown = command_line(long.as_bytes(), POP3);
        assert_eq!(shown.chars().count(), MAX_LOGGED + 1);
        assert!(shown.ends_with('…'));
    }
}
