//! Parsing one POP3 command line into a [`Command`]. Pure: bytes in, a value out.
//!
//! The line given to [`parse`] has had its CRLF (or bare LF) removed by the
//! connection. Keywords are case-insensitive (RFC 1939 §3). Arguments are
//! separated by spaces; `PASS` takes the rest of the line, since passwords may
//! contain spaces. Message numbers are plain decimal digits; anything else —
//! a sign, a fraction, a number too large for any maildrop — is a syntax error,
//! never a silent wrap-around. A NUL or other control byte anywhere is refused
//! rather than truncated.

use std::fmt;

/// A message number as the client wrote it: 1 is the first message.
pub type MessageNumber = u32;

/// One command of RFC 1939, 2449, 2595, 5034 and 6856.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`
    User(String),
    /// `PASS password` (everything after the first space).
    Pass(String),
    /// `AUTH [mechanism [initial-response]]`; no mechanism lists them.
    Auth {
        /// The SASL mechanism, upper-cased; `None` for the discovery form.
        mechanism: Option<String>,
        /// The base64 initial response, if sent on the command line.
        initial_response: Option<String>,
    },
    /// `STLS`
    Stls,
    /// `CAPA`
    Capa,
    /// `STAT`
    Stat,
    /// `LIST [n]`
    List(Option<MessageNumber>),
    /// `UIDL [n]`
    Uidl(Option<MessageNumber>),
    /// `RETR n`
    Retr(MessageNumber),
    /// `TOP n lines`; `lines` saturates, so `TOP 1 99999999999999999999` is the whole message.
    Top(MessageNumber, u64),
    /// `DELE n`
    Dele(MessageNumber),
    /// `NOOP`
    Noop,
    /// `RSET`
    Rset,
    /// `QUIT`
    Quit,
    /// `UTF8`
    Utf8,
}

impl fmt::Debug for Command {
    /// Like a derived Debug, but never shows a password or SASL response.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass(<redacted>)"),
            Command::Auth {
                mechanism,
                initial_response,
            } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field(
                    "initial_response",
                    &initial_response.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
            Command::User(name) => f.debug_tuple("User").field(name).finish(),
            Command::List(n) => f.debug_tuple("List").field(n).finish(),
            Command::Uidl(n) => f.debug_tuple("Uidl").field(n).finish(),
            Command::Retr(n) => f.debug_tuple("Retr").field(n).finish(),
            Command::Top(n, lines) => f.debug_tuple("Top").field(n).field(lines).finish(),
            Command::Dele(n) => f.debug_tuple("Dele").field(n).finish(),
            Command::Stls => f.write_str("Stls"),
            Command::Capa => f.write_str("Capa"),
            Command::Stat => f.write_str("Stat"),
            Command::Noop => f.write_str("Noop"),
            Command::Rset => f.write_str("Rset"),
            Command::Quit => f.write_str("Quit"),
            Command::Utf8 => f.write_str("Utf8"),
        }
    }
}

/// The keywords [`parse`] knows, for the protocol log (which shows any
/// other line only by its length).
pub const KEYWORDS: &[&str] = &[
    "USER", "PASS", "AUTH", "STLS", "CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP",
    "RSET", "QUIT", "UTF8",
];

/// Why a line is not a command. Each becomes an `-ERR` with [`ParseError`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but white space.
    #[error("Empty command")]
    Empty,
    /// Longer than the configured maximum.
    #[error("Command line too long")]
    TooLong,
    /// NUL, or another control character than space.
    #[error("Command contains a control character")]
    ControlCharacter,
    /// Not UTF-8.
    #[error("Command is not valid UTF-8")]
    NotUtf8,
    /// Not a command we know.
    #[error("Unknown command")]
    Unknown,
    /// A required argument is missing.
    #[error("Missing argument")]
    MissingArgument,
    /// An argument too many.
    #[error("Noise after the arguments")]
    ExtraArgument,
    /// Not a message number, or a line count that is not a number.
    #[error("Invalid number")]
    BadNumber,
    /// An argument longer than RFC 2449 allows (40 octets), PASS and AUTH aside.
    #[error("Argument too long")]
    ArgumentTooLong,
}

/// The longest argument of ordinary commands (RFC 2449 §4 allows 40; we take
/// a little more for long login names).
const MAX_ARGUMENT_LEN: usize = 255;

/// Parses one line (without its line ending). `max_len` is the configured
/// `max_command_size` and counts the CRLF, as Exchange does.
pub fn parse(line: &[u8], max_len: usize) -> Result<Command, ParseError> {
    if line.len() + 2 > max_len {
        return Err(ParseError::TooLong);
    }
    if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(ParseError::ControlCharacter);
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let line = line.trim_start_matches([' ', '\t']);
    let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    if keyword.is_empty() {
        return Err(ParseError::Empty);
    }
    if keyword.len() > 4 {
        return Err(ParseError::Unknown);
    }
    // Upper-cased on the stack: every command line passes here.
    let mut upper = [0u8; 4];
    upper[..keyword.len()].copy_from_slice(keyword.as_bytes());
    upper.make_ascii_uppercase();
    let keyword = &upper[..keyword.len()];
    if keyword == b"PASS" {
        return match rest {
            "" => Err(ParseError::MissingArgument),
            password => Ok(Command::Pass(password.to_string())),
        };
    }
    let mut args = Arguments(rest.split([' ', '\t']).filter(|a| !a.is_empty()));
    let command = match keyword {
        b"USER" => Command::User(args.required()?.to_string()),
        b"AUTH" => {
            let mechanism = args.optional()?.map(|m| m.to_ascii_uppercase());
            let initial_response = match mechanism {
                Some(_) => args.optional_unbounded().map(str::to_string),
                None => None,
            };
            Command::Auth {
                mechanism,
                initial_response,
            }
        }
        b"STLS" => Command::Stls,
        b"CAPA" => Command::Capa,
        b"STAT" => Command::Stat,
        b"LIST" => Command::List(args.optional()?.map(message_number).transpose()?),
        b"UIDL" => Command::Uidl(args.optional()?.map(message_number).transpose()?),
        b"RETR" => Command::Retr(message_number(args.required()?)?),
        b"TOP" => {
            let n = message_number(args.required()?)?;
            Command::Top(n, line_count(args.required()?)?)
        }
        b"DELE" => Command::Dele(message_number(args.required()?)?),
        b"NOOP" => Command::Noop,
        b"RSET" => Command::Rset,
        b"QUIT" => Command::Quit,
        b"UTF8" => Command::Utf8,
        _ => return Err(ParseError::Unknown),
    };
    args.end()?;
    Ok(command)
}

/// The space-separated arguments after the keyword.
struct Arguments<'a, I: Iterator<Item = &'a str>>(I);

impl<'a, I: Iterator<Item = &'a str>> Arguments<'a, I> {
    fn optional(&mut self) -> Result<Option<&'a str>, ParseError> {
        match self.0.next() {
            Some(arg) if arg.len() > MAX_ARGUMENT_LEN => Err(ParseError::ArgumentTooLong),
            other => Ok(other),
        }
    }

    fn optional_unbounded(&mut self) -> Option<&'a str> {
        self.0.next()
    }

    fn required(&mut self) -> Result<&'a str, ParseError> {
        self.optional()?.ok_or(ParseError::MissingArgument)
    }

    fn end(mut self) -> Result<(), ParseError> {
        match self.0.next() {
            Some(_) => Err(ParseError::ExtraArgument),
            None => Ok(()),
        }
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn message_number(text: &str) -> Result<MessageNumber, ParseError> {
    if !all_digits(text) {
        return Err(ParseError::BadNumber);
    }
    text.parse().map_err(|_| ParseError::BadNumber)
}

fn line_count(text: &str) -> Result<u64, ParseError> {
    if !all_digits(text) {
        return Err(ParseError::BadNumber);
    }
    Ok(text.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes(), 512).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn err(line: &str) -> ParseError {
        parse(line.as_bytes(), 512).expect_err(line)
    }

    #[test]
    fn the_logged_keywords_are_exactly_the_parsed_ones() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut parsed = Vec::new();
        let mut word = Vec::new();
        for len in 1..=4u32 {
            for mut n in 0..alphabet.len().pow(len) {
                word.clear();
                for _ in 0..len {
                    word.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                if parse(&word, 512) != Err(ParseError::Unknown) {
                    parsed.push(String::from_utf8(word.clone()).unwrap());
                }
            }
        }
        let mut known: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
        parsed.sort();
        known.sort();
        assert_eq!(parsed, known);
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(ok("USER alice"), Command::User("alice".into()));
        assert_eq!(ok("PASS two words "), Command::Pass("two words ".into()));
        assert_eq!(
            ok("AUTH"),
            Command::Auth {
                mechanism: None,
                initial_response: None
            }
        );
        assert_eq!(
            ok("auth plain AGEAYg=="),
            Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial_response: Some("AGEAYg==".into())
            }
        );
        assert_eq!(ok("STLS"), Command::Stls);
        assert_eq!(ok("CAPA"), Command::Capa);
        assert_eq!(ok("STAT"), Command::Stat);
        assert_eq!(ok("LIST"), Command::List(None));
        assert_eq!(ok("LIST 2"), Command::List(Some(2)));
        assert_eq!(ok("UIDL"), Command::Uidl(None));
        assert_eq!(ok("UIDL 3"), Command::Uidl(Some(3)));
        assert_eq!(ok("RETR 1"), Command::Retr(1));
        assert_eq!(ok("TOP 1 0"), Command::Top(1, 0));
        assert_eq!(ok("TOP 1 99999999"), Command::Top(1, 99_999_999));
        assert_eq!(ok("DELE 7"), Command::Dele(7));
        assert_eq!(ok("NOOP"), Command::Noop);
        assert_eq!(ok("RSET"), Command::Rset);
        assert_eq!(ok("QUIT"), Command::Quit);
        assert_eq!(ok("UTF8"), Command::Utf8);
    }

    #[test]
    fn keywords_are_case_insensitive_and_spacing_is_lenient() {
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("Retr  12"), Command::Retr(12));
        assert_eq!(ok("  top\t1\t5"), Command::Top(1, 5));
    }

    #[test]
    fn huge_top_line_counts_saturate() {
        assert_eq!(
            ok("TOP 1 999999999999999999999999"),
            Command::Top(1, u64::MAX)
        );
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        assert_eq!(err(""), ParseError::Empty);
        assert_eq!(err("   "), ParseError::Empty);
        assert_eq!(err("HELO x"), ParseError::Unknown);
        assert_eq!(err("APOP a b"), ParseError::Unknown);
        assert_eq!(err("RETRIEVE 1"), ParseError::Unknown);
        assert_eq!(err("RETR"), ParseError::MissingArgument);
        assert_eq!(err("PASS"), ParseError::MissingArgument);
        assert_eq!(err("TOP 1"), ParseError::MissingArgument);
        assert_eq!(err("RETR 1 2"), ParseError::ExtraArgument);
        assert_eq!(err("STAT now"), ParseError::ExtraArgument);
        assert_eq!(err("RETR -1"), ParseError::BadNumber);
        assert_eq!(err("RETR +1"), ParseError::BadNumber);
        assert_eq!(err("RETR 1.5"), ParseError::BadNumber);
        assert_eq!(err("LIST 4294967297"), ParseError::BadNumber);
        assert_eq!(err("TOP 1 x"), ParseError::BadNumber);
        assert_eq!(err("USER a\0b"), ParseError::ControlCharacter);
        assert_eq!(err("USER a\rb"), ParseError::ControlCharacter);
        assert_eq!(parse(b"USER \xff", 512), Err(ParseError::NotUtf8));
        assert_eq!(
            err(&format!("USER {}", "a".repeat(300))),
            ParseError::ArgumentTooLong
        );
    }

    #[test]
    fn the_length_limit_counts_the_line_ending() {
        let line = format!("USER {}", "a".repeat(505));
        assert_eq!(line.len() + 2, 512);
        assert!(parse(line.as_bytes(), 512).is_err_and(|e| e == ParseError::ArgumentTooLong));
        assert_eq!(
            parse(format!("{line}a").as_bytes(), 512),
            Err(ParseError::TooLong)
        );
        assert_eq!(parse(b"NOOP", 6), Ok(Command::Noop));
        assert_eq!(parse(b"NOOP", 5), Err(ParseError::TooLong));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let shown = format!("{:?} {:?}", ok("PASS hunter2"), ok("AUTH PLAIN c2VjcmV0"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(line in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&line, 512);
        }

        #[test]
        fn message_numbers_round_trip(n in 0u32.., verb in prop::sample::select(vec!["RETR", "DELE", "LIST", "UIDL"])) {
            let parsed = parse(format!("{verb} {n}").as_bytes(), 512).unwrap();
            let number = match parsed {
                Command::Retr(x) | Command::Dele(x) => x,
                Command::List(Some(x)) | Command::Uidl(Some(x)) => x,
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(number, n);
        }
    }
}
