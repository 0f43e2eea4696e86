//! The protocol log: one log line per command a client sent (`C:`) and per
//! reply line popgate sent (`S:`), when `protocol_log = true` in `[pop3]` or
//! `[submission]`. An admin turns it on to see what a mail client does; it
//! must never become a second copy of users' passwords or mail. So what a
//! line may show is decided here, once, for every protocol.
//!
//! It is a [`Tap`] in the connection core ([`crate::connection`]), not
//! something the sessions do: the core hands each session its input and
//! collects its output, so it shows the tap both, and asks the session only
//! what it is reading ([`Tapped::reading`]). Neither session keeps any
//! logging state.
//!
//! - Input is shown as the session reads it: a [`Reading::Command`] line
//!   through [`command_line`], a [`Reading::SecretResponse`] (the answer to
//!   a SASL challenge) as [`SASL_RESPONSE`], and [`Reading::MessageText`]
//!   not at all, but counted and shown once by its size
//!   (`<message, N octets>`, the octets as the client sent them, dot
//!   stuffing and the final `.` line included) when the session stops
//!   reading it.
//! - Output is shown line by line, for every reply line: the session's
//!   status lines, EHLO and CAPA lines, and the driver's goodbyes. What the
//!   driver streams (message bodies, LIST and UIDL listings) is written
//!   past the tap and never shown.
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
//!   never shown, not even its length.
//! - Message content is never shown, only its size.
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

/// What a session reads next, as the protocol log is to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Command lines: each shown through [`command_line`].
    Command,
    /// The answer to a SASL challenge: shown as [`SASL_RESPONSE`].
    SecretResponse,
    /// Message text (DATA, or a BDAT chunk read past): shown by its size.
    MessageText,
}

/// A session the connection core hands input to: it says what it reads
/// next (for the protocol log and the [request deadlines](crate::request_deadline))
/// and what state it is in (for `popgate who`).
pub trait Tapped {
    /// What the next input is, to the session.
    fn reading(&self) -> Reading;

    /// The session's state in a word (`authorization`, `transaction`,
    /// `data`, …), as `popgate who` shows it.
    fn state(&self) -> &'static str;
}

/// One line of the protocol log, before it is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// What the client sent (`C: …`), made fit to log.
    Client(String),
    /// A reply line popgate sent (`S: …`), made fit to log.
    Server(String),
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Client(text) => write!(f, "C: {text}"),
            Shown::Server(text) => write!(f, "S: {text}"),
        }
    }
}

/// The protocol log of one connection.
#[derive(Debug)]
pub struct Tap {
    service: &'static str,
    ip: IpAddr,
    keywords: &'static [&'static str],
    /// Octets of message text seen so far, while the session reads it.
    message: Option<usize>,
}

impl Tap {
    /// The log of a `service` connection from `ip`, whose commands start
    /// with `keywords` (upper case).
    pub fn new(service: &'static str, ip: IpAddr, keywords: &'static [&'static str]) -> Tap {
        Tap {
            service,
            ip,
            keywords,
            message: None,
        }
    }

    /// Logs a session call: `input` was handed to a session reading
    /// `before`, which then reads `after` and wrote `output`.
    pub fn exchange(&mut self, before: Reading, input: &[u8], after: Reading, output: &[u8]) {
        for shown in self.show(before, input, after, output) {
            self.log(&shown);
        }
    }

    /// Logs reply lines written apart from any input (a greeting, the
    /// answer to a driver's step, a goodbye).
    pub fn said(&self, output: &[u8]) {
        for shown in replies(output) {
            self.log(&shown);
        }
    }

    fn log(&self, shown: &Shown) {
        info!(target: "popgate::protocol", service = self.service, rip = %self.ip, "{shown}");
    }

    /// What [`Tap::exchange`] logs, in order: the input (or, when message
    /// text has just ended, its size), then each reply line.
    pub fn show(
        &mut self,
        before: Reading,
        input: &[u8],
        after: Reading,
        output: &[u8],
    ) -> Vec<Shown> {
        let mut shown = Vec::new();
        match before {
            Reading::Command if !input.is_empty() => {
                shown.push(Shown::Client(command_line(input, self.keywords)))
            }
            Reading::SecretResponse if !input.is_empty() => {
                shown.push(Shown::Client(SASL_RESPONSE.to_owned()))
            }
            Reading::MessageText => *self.message.get_or_insert(0) += input.len(),
            Reading::Command | Reading::SecretResponse => {}
        }
        if after != Reading::MessageText {
            if let Some(octets) = self.message.take() {
                shown.push(Shown::Client(format!("<message, {octets} octets>")));
            }
        }
        shown.extend(replies(output));
        shown
    }
}

/// Each line of `output`, as the protocol log shows a reply line.
pub fn replies(output: &[u8]) -> impl Iterator<Item = Shown> + '_ {
    output
        .split_inclusive(|&b| b == b'\n')
        .map(|line| Shown::Server(printable(line)))
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

    const SMTP: &[&str] = &["EHLO", "AUTH", "MAIL", "DATA", "QUIT"];

    fn tap() -> Tap {
        Tap::new("submission", IpAddr::from([192, 0, 2, 1]), SMTP)
    }

    fn texts(shown: Vec<Shown>) -> Vec<String> {
        shown.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_reading_is_shown_as_it_may_be() {
        let mut tap = tap();
        use Reading::*;
        assert_eq!(
            texts(tap.show(
                Command,
                b"AUTH LOGIN\r\n",
                SecretResponse,
                b"334 VXNlcm5hbWU6\r\n"
            )),
            ["C: AUTH LOGIN", "S: 334 VXNlcm5hbWU6"]
        );
        assert_eq!(
            texts(tap.show(
                SecretResponse,
                b"YWxpY2U=\r\n",
                SecretResponse,
                b"334 x\r\n"
            )),
            ["C: <SASL response redacted>", "S: 334 x"]
        );
        assert_eq!(
            texts(tap.show(Command, b"YWxpY2UAcHc=\r\n", Command, b"")),
            ["C: <unrecognized command, 14 octets>"]
        );
        // Nothing handed over, only replies (a greeting, a relay's answer).
        assert_eq!(
            texts(tap.show(Command, b"", Command, b"220 ready\r\n")),
            ["S: 220 ready"]
        );
    }

    #[test]
    fn message_text_is_counted_across_calls_and_shown_once_by_size() {
        let mut tap = tap();
        use Reading::*;
        assert_eq!(
            texts(tap.show(Command, b"DATA\r\n", MessageText, b"354 go\r\n")),
            ["C: DATA", "S: 354 go"]
        );
        assert!(tap
            .show(MessageText, b"Subject: secret\r\n", MessageText, b"")
            .is_empty());
        assert!(tap.show(MessageText, b"", MessageText, b"").is_empty());
        assert_eq!(
            texts(tap.show(MessageText, b"text\r\n.\r\n", Command, b"250 ok\r\n")),
            ["C: <message, 26 octets>", "S: 250 ok"]
        );
        // The next message is counted from zero.
        tap.show(Command, b"DATA\r\n", MessageText, b"");
        assert_eq!(
            texts(tap.show(MessageText, b".\r\n", Command, b"")),
            ["C: <message, 3 octets>"]
        );
    }

    #[test]
    fn reply_lines_are_shown_one_by_one_and_escaped() {
        let shown: Vec<String> =
            replies(b"+OK Capability list follows\r\nTOP\r\n.\r\n-ERR a\x1bb\r\n")
                .map(|s| s.to_string())
                .collect();
        assert_eq!(
            shown,
            [
                "S: +OK Capability list follows",
                "S: TOP",
                "S: .",
                r"S: -ERR a\x1bb"
            ]
        );
    }

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
