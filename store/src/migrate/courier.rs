//! Reading Courier's `courierpop3dsizelist`.
//!
//! Courier's pop3d keeps, in the Maildir root, the size and UID it gave
//! each message:
//!
//! ```text
//! /3 4 1700000000
//! 1700000001.M1P2.host:2,S 1042 1:1700000000:0
//! 1700000002.M2P2.host:2, 588 2:1700000000:0
//! ```
//!
//! The first line is `/`, the format version (2 or 3), the next UID and the
//! UIDVALIDITY. Each further line is the file name (it may contain spaces:
//! the last two spaces separate the fields), Courier's size, then
//! `UID:UIDVALIDITY` and, in version 3, `:UTF8` (0 or 1). Courier serves
//! `UID<uid>-<uidvalidity>` as the UIDL (`UID<uid>` when the UIDVALIDITY is
//! 0). A line whose UID is 0 comes from Courier's oldest format, whose UIDL
//! was the unique name with bytes outside 0x21–0x7E and `'`, `"`, `+`
//! written as `+XX` (uppercase hex).
//!
//! Courier's size counts a CR for every LF, CRLF lines included, so it is
//! not used: popgate's own size is what its RETR sends.

use super::{Entry, Record};
use crate::name::{parse_decimal, unique_name};

/// The file's name in the Maildir root.
pub const FILE: &str = "courierpop3dsizelist";

/// The lines after the header of a `courierpop3dsizelist`; `None` when
/// the header is not a version 2 or 3 one.
pub(crate) fn header(bytes: &[u8]) -> Option<&[u8]> {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    if !is_header(bytes.get(..end)?) {
        return None;
    }
    Some(bytes.get(end + 1..).unwrap_or_default())
}

/// `true` for a `/2 ...` or `/3 ...` header with a next-UID number.
fn is_header(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"/") else {
        return false;
    };
    let mut fields = rest.split(|&b| b == b' ');
    matches!(fields.next(), Some(b"2" | b"3")) && fields.next().and_then(parse_decimal).is_some()
}

/// One line: its unique name and UIDL.
pub(crate) fn parse_line(line: &[u8]) -> Option<(&[u8], Record<'_>)> {
    let last = memchr::memrchr(b' ', line)?;
    let ids = line.get(last + 1..)?;
    let head = line.get(..last)?;
    let size_at = memchr::memrchr(b' ', head)?;
    parse_decimal(head.get(size_at + 1..)?)?;
    let file_name = head.get(..size_at)?;
    let unique = unique_name(file_name);
    if unique.is_empty() {
        return None;
    }
    let mut ids = ids.split(|&b| b == b':');
    let uid = parse_decimal(ids.next()?)?;
    let validity = parse_decimal(ids.next()?)?;
    let uidl = if uid == 0 {
        Entry::CourierName(unique)
    } else {
        Entry::Courier { uid, validity }
    };
    Some((
        unique,
        Record {
            uidl,
            wire_size: None,
        },
    ))
}

/// Courier's oldest UIDL: the unique name with unsafe bytes as `+XX`.
pub(crate) fn escaped_name(unique: &[u8]) -> String {
    let mut out = String::with_capacity(unique.len());
    for &byte in unique {
        if !(0x21..=0x7e).contains(&byte) || matches!(byte, b'\'' | b'"' | b'+') {
            out.push_str(&format!("+{byte:02X}"));
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::migrate::List;

    fn parse(bytes: &[u8]) -> List<'_> {
        List::courier(bytes)
    }

    #[test]
    fn reads_uids_and_names_with_spaces() {
        let text = b"/3 4 1700000000\n\
            1700000001.M1P2.host:2,S 1042 1:1700000000:0\n\
            17 with space.host:2, 588 2:1700000000:1\n\
            3.c.host 10 3:0\n";
        let records = parse(text);
        assert_eq!(records.len(), 3);
        let uidl = |name: &[u8]| records.get(name).and_then(|r| r.uidl.render());
        assert_eq!(
            uidl(b"1700000001.M1P2.host").as_deref(),
            Some("UID1-1700000000")
        );
        assert_eq!(
            uidl(b"17 with space.host").as_deref(),
            Some("UID2-1700000000")
        );
        assert_eq!(uidl(b"3.c.host").as_deref(), Some("UID3"));
        for name in [
            &b"1700000001.M1P2.host"[..],
            b"17 with space.host",
            b"3.c.host",
        ] {
            assert_eq!(records.get(name).map(|r| r.wire_size), Some(None));
        }
    }

    #[test]
    fn version_zero_uidls_are_escaped_names() {
        let records = parse(b"/2 1 5\n9.a+b'c\"d e.host 10 0:5\n");
        assert_eq!(
            records
                .get(b"9.a+b'c\"d e.host")
                .and_then(|r| r.uidl.render())
                .as_deref(),
            Some("9.a+2Bb+27c+22d+20e.host")
        );
    }

    #[test]
    fn bad_headers_and_lines() {
        for bad in [
            &b""[..],
            b"/4 1 1\na 1 1:1\n",
            b"3 1 1\na 1 1:1\n",
            b"/3 x 1\na 1 1:1\n",
        ] {
            assert_eq!(parse(bad).len(), 0, "{:?}", String::from_utf8_lossy(bad));
        }
        let records = parse(b"/3 9 1\nnosize 1:1\na x 1:1\nb 1 x:1\nc 1 1\n 1 1:1\nd 1 2:1:0\n");
        assert_eq!(records.len(), 1);
        assert!(records.get(b"d").is_some());
    }
}
