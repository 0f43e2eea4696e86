//! Reading Dovecot's `dovecot-uidlist` (format version 3).
//!
//! Dovecot numbers the messages of a Maildir with IMAP UIDs and keeps the
//! numbers in `dovecot-uidlist` in the Maildir root:
//!
//! ```text
//! 3 V1700000000 N4 G3085f01b7f11094c501100008c4a11c1
//! 1 W1030 :1035478339.27041_118.foo.org,S=1000:2,S
//! 2 GAbC P1700000002.M2P9.host :1700000002.M2P9.host:2,
//! 3 :1700000003.M3P9.host
//! ```
//!
//! The header is the version `3`, then fields that each start with a key
//! letter: `V` the UIDVALIDITY, `N` the next UID, `G` the mailbox GUID.
//! Each further line is a UID, optional fields (again a key letter and a
//! value without spaces), then ` :` and the file name as Dovecot last saw
//! it. The fields used here:
//!
//! * `P<uidl>`: the POP3 UIDL Dovecot saved (`pop3_save_uidl = yes`, or a
//!   migration); it is served as it is. An empty `P` means "the unique name".
//! * `W<vsize>`: the message's size with CRLF line ends, as POP3 counts it.
//!
//! A message without `P` gets Dovecot's default `pop3_uidl_format`,
//! `%08Xu%08Xv`: the UID and then the UIDVALIDITY, each as at least eight
//! hex digits. Despite the `X`, Dovecot 2.3 writes the digits in lowercase
//! (its variable expansion has no uppercase hex; checked against Debian's
//! Dovecot 2.3.19 by the end-to-end test `migration`). A file that does not start with a version 3
//! header with a `V` field is ignored as a whole; a malformed line is
//! skipped.

use super::{Entry, Record};
use crate::name::{parse_decimal, unique_name};

/// The file's name in the Maildir root.
pub const FILE: &str = "dovecot-uidlist";

/// The UIDVALIDITY from the header of a `dovecot-uidlist`, and the lines
/// after it; `None` when the header is not a version 3 one with a `V`.
pub(crate) fn header(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let validity = header_validity(bytes.get(..end)?)?;
    Some((validity, bytes.get(end + 1..).unwrap_or_default()))
}

/// The UIDVALIDITY from a version 3 header line.
fn header_validity(line: &[u8]) -> Option<u32> {
    let mut fields = line.split(|&b| b == b' ');
    if fields.next()? != b"3" {
        return None;
    }
    fields
        .find_map(|field| field.strip_prefix(b"V"))
        .and_then(parse_decimal)
        .and_then(|v| u32::try_from(v).ok())
}

/// One record line: its unique name and what it says.
pub(crate) fn parse_line(line: &[u8], validity: u32) -> Option<(&[u8], Record<'_>)> {
    let space = memchr::memchr(b' ', line)?;
    let uid = u32::try_from(parse_decimal(line.get(..space)?)?).ok()?;
    let mut rest = line.get(space + 1..)?;
    let mut pop3_uidl = None;
    let mut wire_size = None;
    let file_name = loop {
        if let Some(file_name) = rest.strip_prefix(b":") {
            break file_name;
        }
        let end = memchr::memchr(b' ', rest)?;
        let field = rest.get(..end)?;
        match field.split_first() {
            Some((b'P', value)) => pop3_uidl = Some(value),
            Some((b'W', value)) => wire_size = parse_decimal(value),
            _ => {}
        }
        rest = rest.get(end + 1..)?;
    };
    let unique = unique_name(file_name);
    if unique.is_empty() {
        return None;
    }
    let uidl = match pop3_uidl {
        Some([]) => Entry::Literal(unique),
        Some(saved) => Entry::Literal(saved),
        None => Entry::UidValidity { uid, validity },
    };
    Some((unique, Record { uidl, wire_size }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::List;

    fn parse(bytes: &[u8]) -> List<'_> {
        List::dovecot(bytes)
    }

    #[test]
    fn reads_default_saved_and_empty_uidls() -> Result<(), &'static str> {
        let text = b"3 V1700000000 N5 G3085f01b7f11094c501100008c4a11c1\n\
            1 W1030 :1035478339.27041_118.foo.org,S=1000:2,S\n\
            2 GAbC P1700000002.M2P9.host :1700000002.M2P9.host:2,\n\
            3 P :3.c.host\n\
            4294967295 :4.d.host\n";
        let records = parse(text);
        assert_eq!(records.len(), 4);
        let get = |name: &[u8]| records.get(name).ok_or("missing");
        let first = get(b"1035478339.27041_118.foo.org,S=1000")?;
        assert_eq!(first.wire_size, Some(1030));
        assert_eq!(first.uidl.render().as_deref(), Some("000000016553f100"));
        assert_eq!(
            get(b"1700000002.M2P9.host")?.uidl.render().as_deref(),
            Some("1700000002.M2P9.host")
        );
        assert_eq!(get(b"1700000002.M2P9.host")?.wire_size, None);
        assert_eq!(get(b"3.c.host")?.uidl.render().as_deref(), Some("3.c.host"));
        assert_eq!(
            get(b"4.d.host")?.uidl.render().as_deref(),
            Some("ffffffff6553f100")
        );
        Ok(())
    }

    #[test]
    fn wide_numbers_are_not_truncated() -> Result<(), &'static str> {
        let records = parse(b"3 V4294967295\n305419896 :a\n");
        assert_eq!(
            records
                .get(b"a")
                .map(|r| r.uidl)
                .ok_or("missing")?
                .render()
                .as_deref(),
            Some("12345678ffffffff")
        );
        Ok(())
    }

    #[test]
    fn other_versions_and_broken_headers_are_ignored() {
        for bad in [
            &b""[..],
            b"1 1700000000 5\n1 :a\n",
            b"2 V1 N2\n1 :a\n",
            b"3 N2\n1 :a\n",
            b"3 Vx N2\n1 :a\n",
            b"3 V4294967296\n1 :a\n",
        ] {
            assert_eq!(parse(bad).len(), 0, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn malformed_lines_are_skipped_and_later_lines_win() {
        let text = b"3 V7\nx :a\n1 W5\n2 :\n\n3 :b\n4 Pnew :b:2,S\n";
        let records = parse(text);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records.get(b"b").map(|r| r.uidl),
            Some(Entry::Literal(b"new"))
        );
    }
}
