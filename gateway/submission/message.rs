//! What popgate checks in, and adds to, a submitted message.
//!
//! Three pure functions on the octets the client sent between `DATA` and
//! `<CRLF>.<CRLF>` (already dot-unstuffed):
//!
//! - [`bare_line_break`] finds a CR or LF that is not part of a CRLF. Such a
//!   message is refused outright: MTAs disagree on where a line ends, and
//!   that disagreement is what "SMTP smuggling" exploits to hide a second
//!   message inside the first.
//! - [`from_addresses`] lists the addresses of the From: header, for the
//!   sender policy.
//! - [`with_trace`] prepends a `Received:` header (who logged in, over which
//!   TLS version) and a `Message-ID:` and `Date:` when the client left them
//!   out (RFC 6409 §8). The rest of the message is passed on byte for byte.

use std::net::IpAddr;

use lettre::message::header::{Date, Headers};
use mailparse::{MailAddr, MailHeaderMap};
use rand::distr::{Alphanumeric, SampleString};

/// Why the From: header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromError {
    /// The header section does not parse.
    #[error("the message header cannot be parsed")]
    Unparsable,
    /// No From: header, or one with no address in it.
    #[error("the message has no From: address")]
    Missing,
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

/// The addresses in the From: header(s) of `data`, in order.
pub fn from_addresses(data: &[u8]) -> Result<Vec<String>, FromError> {
    let (headers, _) = mailparse::parse_headers(data).map_err(|_| FromError::Unparsable)?;
    let mut addresses = Vec::new();
    for header in headers.get_all_headers("From") {
        let list = mailparse::addrparse_header(header).map_err(|_| FromError::Unparsable)?;
        for address in list.iter() {
            match address {
                MailAddr::Single(single) => addresses.push(single.addr.clone()),
                MailAddr::Group(group) => {
                    addresses.extend(group.addrs.iter().map(|a| a.addr.clone()))
                }
            }
        }
    }
    if addresses.is_empty() {
        return Err(FromError::Missing);
    }
    Ok(addresses)
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
            headers.get_first_header("Message-ID").is_some(),
            headers.get_first_header("Date").is_some(),
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
    fn from_addresses_are_listed() {
        let data = b"From: Alice <alice@example.com>, bob@example.com\r\nTo: x@y\r\n\r\nhi\r\n";
        assert_eq!(
            from_addresses(data).unwrap(),
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(
            from_addresses(b"To: x@y\r\n\r\nhi\r\n"),
            Err(FromError::Missing)
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
        let plaintext = Trace { tls: None, ..trace };
        let out = String::from_utf8(with_trace(dated, &plaintext)).unwrap();
        assert!(
            out.contains("\tby mail.example.com (popgate) with ESMTPA\r\n"),
            "{out}"
        );
    }
}
