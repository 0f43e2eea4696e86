//! What popgate checks in, and adds to, a submitted message.
//!
//! Three pure functions on the octets the client sent between `DATA` and
//! `<CRLF>.<CRLF>` (already dot-unstuffed):
//!
//! - [`bare_line_break`] finds a CR or LF that is not part of a CRLF. Such a
//!   message is refused outright: MTAs disagree on where a line ends, and
//!   that disagreement is what "SMTP smuggling" exploits to hide a second
//!   message inside the first.
//! - [`originators`] reads the From: and Sender: fields (RFC 5322 §3.6.2)
//!   for the sender policy. A field is found by its name without case and
//!   with any white space before the colon, which RFC 5322 §4.5 still
//!   allows (`From : ceo@example.com` is a From field, and MTAs read it
//!   as one). A message needs exactly one From field and at most one
//!   Sender field of one mailbox (RFC 5322 §3.6): with two From fields,
//!   which one a reader shows is anyone's guess, so such a message is
//!   refused rather than checked by one of them. mailparse splits and
//!   unfolds the header section and reads the addresses; it keeps the
//!   white space before the colon in the name, which [`originators`]
//!   trims.
//! - [`with_trace`] prepends a `Received:` header (who logged in, over which
//!   TLS version) and a `Message-ID:` and `Date:` when the client left them
//!   out (RFC 6409 §8). The rest of the message is passed on byte for byte.

use std::net::IpAddr;

use lettre::message::header::{Date, Headers};
use mailparse::{MailAddr, MailHeader};
use rand::distr::{Alphanumeric, SampleString};

/// Why the originator fields cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginatorError {
    /// The header section, or the named field, does not parse.
    #[error("the {0} cannot be parsed")]
    Unparsable(&'static str),
    /// No From: field, or one with no address in it.
    #[error("the message has no From: address")]
    NoFrom,
    /// More than one From: field (how many).
    #[error("the message has {0} From: fields")]
    ManyFrom(usize),
    /// More than one Sender: field, or one that is not one mailbox.
    #[error("the Sender: field is not one mailbox")]
    BadSender,
}

/// The originator fields of a message (RFC 5322 §3.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originators {
    /// The addresses of the From: field, in order.
    pub from: Vec<String>,
    /// The address of the Sender: field, when there is one.
    pub sender: Option<String>,
}

/// True when `data` holds a CR not followed by LF or an LF not preceded by CR.
pub fn bare_line_break(data: &[u8]) -> bool {
    let mut previous = 0u8;
    for (i, &byte) in data.iter().enumerate() {
        match byte {
            b'\r' if data.get(i + 1) != Some(&b'\n') => return true,
            b'\n' if previous != b'\r' => return true,
            _ => {}
        }
        previous = byte;
    }
    false
}

/// The From: and Sender: fields of `data`, however their names are
/// written; refused unless there is exactly one From field with an
/// address in it and at most one Sender field of one mailbox.
pub fn originators(data: &[u8]) -> Result<Originators, OriginatorError> {
    let (headers, _) = mailparse::parse_headers(data)
        .map_err(|_| OriginatorError::Unparsable("header section"))?;
    let from = match fields(&headers, "From").collect::<Vec<_>>()[..] {
        [] => return Err(OriginatorError::NoFrom),
        [field] => addresses(field).ok_or(OriginatorError::Unparsable("From: field"))?,
        ref many => return Err(OriginatorError::ManyFrom(many.len())),
    };
    if from.is_empty() {
        return Err(OriginatorError::NoFrom);
    }
    let sender = match fields(&headers, "Sender").collect::<Vec<_>>()[..] {
        [] => None,
        [field] => match addresses(field).as_deref() {
            Some([one]) => Some(one.clone()),
            Some(_) => return Err(OriginatorError::BadSender),
            None => return Err(OriginatorError::Unparsable("Sender: field")),
        },
        _ => return Err(OriginatorError::BadSender),
    };
    Ok(Originators { from, sender })
}

/// The fields of `headers` called `name`: without case, and with white
/// space before the colon allowed (RFC 5322 §4.5).
fn fields<'a>(
    headers: &'a [MailHeader<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a MailHeader<'a>> {
    headers.iter().filter(move |header| {
        header
            .get_key_ref()
            .trim_end_matches([' ', '\t'])
            .eq_ignore_ascii_case(name)
    })
}

/// The addresses of an address-list field, groups flattened; `None` when
/// it does not parse.
fn addresses(field: &MailHeader<'_>) -> Option<Vec<String>> {
    let list = mailparse::addrparse_header(field).ok()?;
    let mut addresses = Vec::new();
    for address in list.iter() {
        match address {
            MailAddr::Single(single) => addresses.push(single.addr.clone()),
            MailAddr::Group(group) => addresses.extend(group.addrs.iter().map(|a| a.addr.clone())),
        }
    }
    Some(addresses)
}

/// Who sent a message and how, for its `Received:` header.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// The name the client gave in EHLO/HELO.
    pub helo: &'a str,
    /// The client's address.
    pub ip: IpAddr,
    /// This server's name.
    pub hostname: &'a str,
    /// The authenticated user.
    pub user: &'a str,
    /// The TLS version, e.g. `TLSv1_3`; `None` on a plaintext connection
    /// (allowed only with `login = "plaintext"`).
    pub tls: Option<&'a str>,
}

/// `data` with a `Received:` header in front, and `Message-ID:` and `Date:`
/// added when missing. The client's octets follow unchanged.
pub fn with_trace(data: &[u8], trace: &Trace<'_>) -> Vec<u8> {
    let mut dated = Headers::new();
    dated.set(Date::now());
    let now = dated.to_string();
    let date = now.trim_start_matches("Date: ").trim_end();
    let helo: String = trace
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()\\".contains(*c))
        .take(64)
        .collect();
    // RFC 3848: ESMTPSA is ESMTP with TLS and authentication, ESMTPA without TLS.
    let with = match trace.tls {
        Some(version) => format!("ESMTPSA ({version})"),
        None => "ESMTPA".to_owned(),
    };
    let mut out = Vec::with_capacity(data.len() + 512);
    out.extend_from_slice(
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (popgate) with {with}\r\n\t(authenticated user {user});\r\n\t{date}\r\n",
            ip = trace.ip,
            host = trace.hostname,
            user = trace.user,
        )
        .as_bytes(),
    );
    let (has_id, has_date) = match mailparse::parse_headers(data) {
        Ok((headers, _)) => (
            fields(&headers, "Message-ID").next().is_some(),
            fields(&headers, "Date").next().is_some(),
        ),
        Err(_) => (false, false),
    };
    if !has_id {
        let id = Alphanumeric.sample_string(&mut rand::rng(), 24);
        out.extend_from_slice(format!("Message-ID: <{id}@{}>\r\n", trace.hostname).as_bytes());
    }
    if !has_date {
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crlf_ends_a_line() {
        assert!(!bare_line_break(b"a\r\nb\r\n"));
        assert!(!bare_line_break(b""));
        assert!(bare_line_break(b"a\nb\r\n"));
        assert!(bare_line_break(b"a\r\n.\n"));
        assert!(bare_line_break(b"a\rb\r\n"));
        assert!(bare_line_break(b"a\r"));
        assert!(bare_line_break(b"\n"));
    }

    #[test]
    fn originators_are_listed() {
        let data = b"From: Alice <alice@example.com>, bob@example.com\r\nTo: x@y\r\n\r\nhi\r\n";
        assert_eq!(
            originators(data).unwrap(),
            Originators {
                from: vec!["alice@example.com".into(), "bob@example.com".into()],
                sender: None
            }
        );
        let data = b"FROM\t:\r\n Alice <alice@example.com>\r\nsender : <bob@example.com>\r\n\r\n";
        assert_eq!(
            originators(data).unwrap(),
            Originators {
                from: vec!["alice@example.com".into()],
                sender: Some("bob@example.com".into())
            }
        );
        assert_eq!(
            originators(b"To: x@y\r\n\r\nFrom: a@b.c\r\n"),
            Err(OriginatorError::NoFrom)
        );
        assert_eq!(
            originators(b"From: undisclosed:;\r\n\r\n"),
            Err(OriginatorError::NoFrom)
        );
    }

    /// RFC 5322 §3.6 allows one From field and one Sender field; the
    /// obsolete `From :` form (§4.5) is a From field too.
    #[test]
    fn every_from_field_counts_however_it_is_written() {
        for data in [
            &b"From : ceo@example.com\r\nFrom: alice@example.com\r\n\r\n"[..],
            b"From: alice@example.com\r\nfrom\t: ceo@example.com\r\n\r\n",
            b"From: alice@example.com\r\nSubject: x\r\nFROM: ceo@example.com\r\n\r\n",
        ] {
            assert_eq!(originators(data), Err(OriginatorError::ManyFrom(2)));
        }
        for data in [
            &b"From: a@b.c\r\nSender: a@b.c\r\nSender : a@b.c\r\n\r\n"[..],
            b"From: a@b.c\r\nSender: a@b.c, d@e.f\r\n\r\n",
        ] {
            assert_eq!(originators(data), Err(OriginatorError::BadSender));
        }
        assert_eq!(
            originators(b"From: <alice@example.com\r\n\r\n"),
            Err(OriginatorError::Unparsable("From: field"))
        );
    }

    #[test]
    fn trace_headers_are_prepended_and_the_message_kept() {
        let trace = Trace {
            helo: "client.example",
            ip: "127.0.0.1".parse().unwrap(),
            hostname: "mail.example.com",
            user: "alice",
            tls: Some("TLSv1_3"),
        };
        let data = b"From: alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
        let out = with_trace(data, &trace);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("Received: from client.example ([127.0.0.1])\r\n\tby mail.example.com (popgate) with ESMTPSA (TLSv1_3)\r\n\t(authenticated user alice);\r\n\t"), "{text}");
        assert!(text.contains("\r\nMessage-ID: <"), "{text}");
        assert!(text.contains("@mail.example.com>\r\nDate: "), "{text}");
        assert!(out.ends_with(data));
        let dated = b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nx\r\n";
        let out = String::from_utf8(with_trace(dated, &trace)).unwrap();
        assert_eq!(out.matches("Date:").count(), 1);
        assert_eq!(out.matches("Message-ID:").count(), 1);
        // The obsolete `Date :` form is a Date field too: none is added.
        let obsolete = b"date : Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID\t: <a@b>\r\n\r\nx\r\n";
        let out = String::from_utf8(with_trace(obsolete, &trace)).unwrap();
        assert!(
            !out.contains("\r\nDate:") && !out.contains("\r\nMessage-ID:"),
            "{out}"
        );
        let plaintext = Trace { tls: None, ..trace };
        let out = String::from_utf8(with_trace(dated, &plaintext)).unwrap();
        assert!(
            out.contains("\tby mail.example.com (popgate) with ESMTPA\r\n"),
            "{out}"
        );
    }
}
