//! Writing POP3 responses into an output buffer. Pure: no I/O.
//!
//! Every status line is `+OK text` or `-ERR [CODE] text`, capped at 512
//! octets with its CRLF (RFC 1939 §3), whatever text is passed in. The
//! extended response codes are those of RFC 2449 §8 and RFC 3206.

use std::fmt;
use std::io::Write;

/// The longest status line, CRLF included (RFC 1939 §3).
pub const MAX_STATUS_LINE: usize = 512;

/// An extended response code, written in brackets after `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The mailbox is locked by another session (RFC 2449).
    InUse,
    /// The credentials were wrong (RFC 3206).
    Auth,
    /// A passing server fault: try again later without asking the user (RFC 3206).
    SysTemp,
    /// A lasting fault: retrying will not help (RFC 3206).
    SysPerm,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Code::InUse => "[IN-USE]",
            Code::Auth => "[AUTH]",
            Code::SysTemp => "[SYS/TEMP]",
            Code::SysPerm => "[SYS/PERM]",
        })
    }
}

/// Appends `+OK text\r\n`.
pub fn ok(out: &mut Vec<u8>, text: fmt::Arguments<'_>) {
    status_line(out, format_args!("+OK {text}"));
}

/// Appends `-ERR text\r\n`, or `-ERR [CODE] text\r\n`.
pub fn err(out: &mut Vec<u8>, code: Option<Code>, text: fmt::Arguments<'_>) {
    match code {
        Some(code) => status_line(out, format_args!("-ERR {code} {text}")),
        None => status_line(out, format_args!("-ERR {text}")),
    }
}

/// Appends one line of a multi-line body that we generate ourselves (LIST,
/// UIDL, CAPA): such lines never begin with a dot, so need no stuffing.
pub fn body_line(out: &mut Vec<u8>, text: fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a LIST listing: `number size\r\n`. Written without
/// the formatting machinery, as is [`uidl_line`]: a listing of a big
/// mailbox is 100,000 such lines.
pub fn size_line(out: &mut Vec<u8>, number: usize, size: u64) {
    push_decimal(out, number as u64);
    out.push(b' ');
    push_decimal(out, size);
    out.extend_from_slice(b"\r\n");
}

/// Appends one line of a UIDL listing: `number uidl\r\n`. A UIDL is
/// printable ASCII without spaces, so the line needs no stuffing.
pub fn uidl_line(out: &mut Vec<u8>, number: usize, uidl: &[u8]) {
    push_decimal(out, number as u64);
    out.push(b' ');
    out.extend_from_slice(uidl);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends the terminator of a multi-line response.
pub fn end_multiline(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Appends a SASL continuation: `+ challenge\r\n` (RFC 5034).
pub fn continuation(out: &mut Vec<u8>, challenge: &str) {
    status_line(out, format_args!("+ {challenge}"));
}

fn status_line(out: &mut Vec<u8>, text: fmt::Arguments<'_>) {
    let start = out.len();
    let _ = out.write_fmt(text);
    let limit = start + MAX_STATUS_LINE - 2;
    if out.len() > limit {
        out.truncate(limit);
    }
    // A status line never carries a line break of its own.
    for byte in &mut out[start..] {
        if *byte == b'\r' || *byte == b'\n' {
            *byte = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_bracketed_after_err() {
        let mut out = Vec::new();
        err(&mut out, Some(Code::InUse), format_args!("locked"));
        ok(&mut out, format_args!("{} messages", 2));
        err(&mut out, None, format_args!("no"));
        assert_eq!(
            out,
            b"-ERR [IN-USE] locked\r\n+OK 2 messages\r\n-ERR no\r\n"
        );
    }

    #[test]
    fn listing_lines_are_number_space_value() {
        let mut out = Vec::new();
        size_line(&mut out, 1, 0);
        size_line(&mut out, 100_000, u64::MAX);
        uidl_line(&mut out, 7, b"1700000000.M1P2.host");
        assert_eq!(
            out,
            b"1 0\r\n100000 18446744073709551615\r\n7 1700000000.M1P2.host\r\n"
        );
    }

    #[test]
    fn status_lines_are_capped_and_single() {
        let mut out = Vec::new();
        err(
            &mut out,
            None,
            format_args!("{}\r\nINJECTED", "x".repeat(1000)),
        );
        assert_eq!(out.len(), MAX_STATUS_LINE);
        assert!(out.ends_with(b"\r\n"));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
