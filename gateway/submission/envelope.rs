//! The arguments of MAIL and RCPT (RFC 5321 §4.1.1.2–3, §4.1.2), read from
//! the command line exactly as the client sent it.
//!
//! smtp-proto recognises these commands, as every other, but the session
//! reads their arguments here: smtp-proto's path parser loses what popgate
//! must relay exactly (see [`address`](super::address)). Spaces around the
//! colon are tolerated, as smtp-proto and most servers tolerate them; a
//! source route (`<@relay.example:alice@example.com>`) is accepted and
//! dropped, as RFC 5321 §4.1.1.3 and Appendix C ask.
//!
//! MAIL parameters (keywords without case; each at most once):
//!
//! | parameter | RFC | what popgate does |
//! | --- | --- | --- |
//! | `SIZE=n` | 1870 | checked against `max_message_size` |
//! | `BODY=7BIT`, `BODY=8BITMIME` | 6152 | accepted (8BITMIME is offered); `BINARYMIME` needs CHUNKING, which is not: 555 |
//! | `AUTH=xtext` | 4954 §5 | parsed and discarded (below) |
//! | `SMTPUTF8` | 6531 | not offered: 555 (below) |
//! | any other | 5321 §4.1.1.11 | 555 |
//!
//! RCPT takes no parameter (DSN is not offered).
//!
//! ## AUTH=
//!
//! An MTA that relays through popgate with SMTP AUTH (Postfix with
//! `smtp_sasl_auth_enable`, Exim, sendmail smarthosts) names the original
//! submitter in `AUTH=`, usually `<>`. popgate does not take a client's
//! word for who submitted a message first: the authenticated login and the
//! sender policy decide. RFC 4954 §5 has such a server parse the value and
//! discard it, so it is checked to be xtext (a malformed one gets 501) and
//! not passed on.
//!
//! ## Why SMTPUTF8 is not offered
//!
//! RFC 6531 §3.4 leaves a server two consistent behaviours: offer SMTPUTF8
//! and carry non-ASCII addresses only to a next hop that offers it too, or
//! offer nothing and refuse them. popgate does the second, because no relay
//! it hands mail to can keep the first promise at the time it is made:
//!
//! - the upstream's EHLO is read only when a message is relayed, after the
//!   client's DATA; a client told at RCPT that its address is fine would
//!   learn only after sending the whole message that the relay cannot take
//!   it;
//! - lettre adds SMTPUTF8 on its own when the envelope is not ASCII (and
//!   fails the send, with no SMTP code, when the relay does not offer it),
//!   but never for an ASCII envelope whose headers are UTF-8, which a
//!   client that declared SMTPUTF8 may send;
//! - the sendmail interface has no portable way to say SMTPUTF8 (Postfix's
//!   `-XU` is Postfix's own), and local Maildir delivery maps recipients to
//!   login names, which are ASCII.
//!
//! So EHLO does not list SMTPUTF8, `SMTPUTF8` on MAIL gets `555 5.5.4`, and
//! a non-ASCII address in MAIL or RCPT gets `553 5.6.7` (X.6.7 is RFC
//! 6531's "Non-ASCII addresses not permitted for that sender/recipient").
//! Mail clients that know SMTPUTF8 see it missing from EHLO and say so
//! before they send.

use super::address::{AddressError, Mailbox};

/// The two commands whose arguments are read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `MAIL FROM:<reverse-path> [parameters]`
    Mail,
    /// `RCPT TO:<forward-path> [parameters]`
    Rcpt,
}

/// What MAIL said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailArguments {
    /// The envelope sender; `None` for the null reverse-path `<>`.
    pub sender: Option<Mailbox>,
    /// The size the client declared (`SIZE=`), if it did; a number too
    /// large to hold is `u64::MAX`.
    pub size: Option<u64>,
}

/// Why a MAIL or RCPT command cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not `MAIL FROM:<…>` / `RCPT TO:<…>` followed by parameters.
    #[error("syntax error")]
    Syntax,
    /// The path is not an RFC 5321 mailbox (or `<>` in RCPT).
    #[error("bad address: {0}")]
    Address(AddressError),
    /// A parameter this server does not offer; its keyword.
    #[error("unsupported parameter {0}")]
    Unsupported(String),
    /// A parameter offered, but with a malformed or repeated value; its
    /// keyword.
    #[error("invalid parameter {0}")]
    Invalid(String),
}

/// The command of `line` when it is MAIL or RCPT (without case, after any
/// leading spaces, as smtp-proto reads it).
pub fn verb(line: &[u8]) -> Option<Verb> {
    let line = trim_line(line);
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let word = line[start..].split(|&b| b == b' ').next()?;
    if word.eq_ignore_ascii_case(b"MAIL") {
        Some(Verb::Mail)
    } else if word.eq_ignore_ascii_case(b"RCPT") {
        Some(Verb::Rcpt)
    } else {
        None
    }
}

/// Reads a `MAIL FROM:<reverse-path> [parameters]` line (CRLF optional).
pub fn mail(line: &[u8]) -> Result<MailArguments, EnvelopeError> {
    let (path, parameters) = path_and_parameters(line, b"FROM")?;
    let sender = match path {
        "" => None,
        path => Some(Mailbox::parse(path).map_err(EnvelopeError::Address)?),
    };
    let mut arguments = MailArguments { sender, size: None };
    let (mut body, mut auth) = (false, false);
    for (keyword, value) in parameters {
        let seen = match keyword.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let size = value.filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
                let size = size.ok_or_else(|| EnvelopeError::Invalid(keyword.into()))?;
                let seen = arguments.size.is_some();
                arguments.size = Some(size.parse().unwrap_or(u64::MAX));
                seen
            }
            "BODY" => match value.map(str::to_ascii_uppercase).as_deref() {
                Some("7BIT" | "8BITMIME") => std::mem::replace(&mut body, true),
                Some("BINARYMIME") => return Err(EnvelopeError::Unsupported(keyword.into())),
                _ => return Err(EnvelopeError::Invalid(keyword.into())),
            },
            "AUTH" => match value {
                Some(value) if is_xtext(value) => std::mem::replace(&mut auth, true),
                _ => return Err(EnvelopeError::Invalid(keyword.into())),
            },
            _ => return Err(EnvelopeError::Unsupported(keyword.into())),
        };
        if seen {
            return Err(EnvelopeError::Invalid(keyword.into()));
        }
    }
    Ok(arguments)
}

/// Reads a `RCPT TO:<forward-path>` line (CRLF optional).
pub fn rcpt(line: &[u8]) -> Result<Mailbox, EnvelopeError> {
    let (path, mut parameters) = path_and_parameters(line, b"TO")?;
    if let Some((keyword, _)) = parameters.next() {
        return Err(EnvelopeError::Unsupported(keyword.into()));
    }
    Mailbox::parse(path).map_err(EnvelopeError::Address)
}

/// The line without its line break.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits `VERB FROM:<path> params` (`word` is `FROM` or `TO`) into the
/// path (source route dropped) and its parameters, `KEYWORD[=value]`.
fn path_and_parameters<'a>(
    line: &'a [u8],
    word: &[u8],
) -> Result<(&'a str, impl Iterator<Item = (&'a str, Option<&'a str>)>), EnvelopeError> {
    // A line that is not even UTF-8 is taken for a non-ASCII address: the
    // path is where such octets are usually meant to be.
    let line = std::str::from_utf8(trim_line(line))
        .map_err(|_| EnvelopeError::Address(AddressError::NonAscii))?;
    let rest = line.trim_start_matches(' ');
    let rest = rest
        .get(4..)
        .ok_or(EnvelopeError::Syntax)?
        .trim_start_matches(' ');
    let after_word = match rest.get(..word.len()) {
        Some(w) if w.as_bytes().eq_ignore_ascii_case(word) => &rest[word.len()..],
        _ => return Err(EnvelopeError::Syntax),
    };
    let after_colon = after_word
        .trim_start_matches(' ')
        .strip_prefix(':')
        .ok_or(EnvelopeError::Syntax)?
        .trim_start_matches(' ');
    let inside = after_colon.strip_prefix('<').ok_or(EnvelopeError::Syntax)?;
    let end = path_end(inside).ok_or(EnvelopeError::Syntax)?;
    let (path, parameters) = (&inside[..end], &inside[end + 1..]);
    if !parameters.is_empty() && !parameters.starts_with(' ') {
        return Err(EnvelopeError::Syntax);
    }
    let path = without_source_route(path)?;
    let mut parsed = Vec::new();
    for parameter in parameters.split(' ').filter(|p| !p.is_empty()) {
        let (keyword, value) = match parameter.split_once('=') {
            Some((keyword, value)) => (keyword, Some(value)),
            None => (parameter, None),
        };
        let keyword_ok = keyword
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| {
            !v.is_empty() && v.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'=')
        });
        if !keyword_ok || !value_ok {
            return Err(EnvelopeError::Syntax);
        }
        parsed.push((keyword, value));
    }
    Ok((path, parsed.into_iter()))
}

/// The index of the `>` that closes the path, skipping quoted strings.
fn path_end(inside: &str) -> Option<usize> {
    let bytes = inside.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `path` without an RFC 5321 source route (`@a.example,@b.example:`).
fn without_source_route(path: &str) -> Result<&str, EnvelopeError> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    let (route, mailbox) = path.split_once(':').ok_or(EnvelopeError::Syntax)?;
    let hops_ok = route.split(',').all(|hop| {
        hop.strip_prefix('@')
            .is_some_and(|domain| Mailbox::parse(&format!("x@{domain}")).is_ok())
    });
    if hops_ok {
        Ok(mailbox)
    } else {
        Err(EnvelopeError::Syntax)
    }
}

/// RFC 3461 §4 `xtext`: printable ASCII less `+` and `=`, or `+` and two
/// upper-case hex digits.
fn is_xtext(value: &str) -> bool {
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => {
                let hex = |b: Option<u8>| b.is_some_and(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
                if !hex(bytes.next()) || !hex(bytes.next()) {
                    return false;
                }
            }
            b'!'..=b'~' if b != b'=' => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(line: &str) -> Option<String> {
        mail(line.as_bytes()).unwrap().sender.map(|m| m.to_string())
    }

    #[test]
    fn verbs_are_found_without_case() {
        assert_eq!(verb(b"MAIL FROM:<>\r\n"), Some(Verb::Mail));
        assert_eq!(verb(b"  mail from:<>\r\n"), Some(Verb::Mail));
        assert_eq!(verb(b"Rcpt TO:<a@b.c>\n"), Some(Verb::Rcpt));
        assert_eq!(verb(b"MAIL\r\n"), Some(Verb::Mail));
        assert_eq!(verb(b"MAILX FROM:<>\r\n"), None);
        assert_eq!(verb(b"DATA\r\n"), None);
        assert_eq!(verb(b""), None);
    }

    #[test]
    fn paths_are_kept_exactly() {
        assert_eq!(
            sender("MAIL FROM:<alice@example.com>\r\n").unwrap(),
            "alice@example.com"
        );
        assert_eq!(sender("MAIL FROM:<>\r\n"), None);
        assert_eq!(
            sender("mail from: <\"john doe\"@example.net>").unwrap(),
            "\"john doe\"@example.net"
        );
        assert_eq!(
            sender("MAIL FROM : <a@[192.0.2.1]>").unwrap(),
            "a@[192.0.2.1]"
        );
        assert_eq!(sender("MAIL FROM:<\"a>b\"@x.y>").unwrap(), "\"a>b\"@x.y");
        assert_eq!(
            sender("MAIL FROM:<\"a\\\">\"@x.y>").unwrap(),
            "\"a\\\">\"@x.y"
        );
        assert_eq!(
            sender("MAIL FROM:<@relay.example,@[192.0.2.1]:alice@example.com>").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            rcpt(b"RCPT TO:<carol@[IPv6:2001:db8::1]>\r\n")
                .unwrap()
                .as_str(),
            "carol@[IPv6:2001:db8::1]"
        );
    }

    #[test]
    fn auth_size_and_body_are_taken_together() {
        let arguments =
            mail(b"MAIL FROM:<alice@example.com> SIZE=1234 BODY=8BITMIME AUTH=<>\r\n").unwrap();
        assert_eq!(arguments.size, Some(1234));
        assert_eq!(arguments.sender.unwrap().as_str(), "alice@example.com");
        for line in [
            "MAIL FROM:<a@b.c> AUTH=e+3Dmc2@example.com",
            "MAIL FROM:<a@b.c> auth=<>  body=7bit",
            "MAIL FROM:<a@b.c>   ",
        ] {
            assert!(mail(line.as_bytes()).is_ok(), "{line}");
        }
        assert_eq!(
            mail(b"MAIL FROM:<a@b.c> SIZE=99999999999999999999999")
                .unwrap()
                .size,
            Some(u64::MAX)
        );
    }

    #[test]
    fn bad_and_unoffered_parameters_are_told_apart() {
        let invalid = |k: &str| Err(EnvelopeError::Invalid(k.into()));
        let unsupported = |k: &str| Err(EnvelopeError::Unsupported(k.into()));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> AUTH=+zz"), invalid("AUTH"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> AUTH"), invalid("AUTH"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> AUTH=<> AUTH=<>"), invalid("AUTH"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> SIZE=12x"), invalid("SIZE"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> SIZE=1 size=2"), invalid("size"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> BODY=OTHER"), invalid("BODY"));
        assert_eq!(
            mail(b"MAIL FROM:<a@b.c> BODY=BINARYMIME"),
            unsupported("BODY")
        );
        assert_eq!(mail(b"MAIL FROM:<a@b.c> SMTPUTF8"), unsupported("SMTPUTF8"));
        assert_eq!(mail(b"MAIL FROM:<a@b.c> RET=FULL"), unsupported("RET"));
        assert_eq!(
            rcpt(b"RCPT TO:<a@b.c> NOTIFY=NEVER"),
            Err(EnvelopeError::Unsupported("NOTIFY".into()))
        );
    }

    #[test]
    fn malformed_lines_are_syntax_errors() {
        for line in [
            &b"MAIL"[..],
            b"MAIL TO:<a@b.c>",
            b"MAIL FROM<a@b.c>",
            b"MAIL FROM:a@b.c",
            b"MAIL FROM:<a@b.c",
            b"MAIL FROM:<a@b.c>SIZE=1",
            b"MAIL FROM:<a@b.c> =1",
            b"MAIL FROM:<a@b.c> SIZE=",
            b"MAIL FROM:<a@b.c> X=\xc3\xa9",
            b"MAIL FROM:<a@b.c> S\tIZE=1",
            b"MAIL FROM:<@:a@b.c>",
            b"MAIL FROM:<@bad_host:a@b.c>",
            b"MAIL FROM:<\"a@b.c>",
        ] {
            assert_eq!(
                mail(line),
                Err(EnvelopeError::Syntax),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(rcpt(b"RCPT FROM:<a@b.c>"), Err(EnvelopeError::Syntax));
    }

    #[test]
    fn bad_and_non_ascii_addresses_are_told_apart() {
        assert_eq!(
            mail("MAIL FROM:<josé@example.com>".as_bytes()),
            Err(EnvelopeError::Address(AddressError::NonAscii))
        );
        assert_eq!(
            rcpt("RCPT TO:<bob@exämple.com>".as_bytes()),
            Err(EnvelopeError::Address(AddressError::NonAscii))
        );
        assert_eq!(
            rcpt(b"RCPT TO:<bob@\xff>"),
            Err(EnvelopeError::Address(AddressError::NonAscii))
        );
        assert_eq!(
            rcpt(b"RCPT TO:<>"),
            Err(EnvelopeError::Address(AddressError::Syntax))
        );
        assert_eq!(
            rcpt(b"RCPT TO:<Postmaster>"),
            Err(EnvelopeError::Address(AddressError::Syntax))
        );
        assert_eq!(
            mail(b"MAIL FROM:<a@192.0.2.1>"),
            Err(EnvelopeError::Address(AddressError::Syntax))
        );
    }
}
