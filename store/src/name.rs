//! Reading Maildir file names.
//!
//! A Maildir message file name carries most of what the store needs:
//!
//! ```text
//! 1035478339.27041_118.foo.org,S=1000,W=1030:2,RS
//! └─ seconds ┘                                      delivery time, for ordering
//! └────────────── unique name ─────────────┘        the UIDL (see `uidl`), the size-cache key
//!                               └─ W= ──┘          the wire size, when the delivery agent wrote it
//!                                           └info┘  ":2," then the flags in ASCII order
//! ```
//!
//! The functions here only look at bytes; they never touch the file system.

/// The info part that marks a Maildir file name with flags.
const INFO_PREFIX: &[u8] = b":2,";

/// The flag that marks a message seen.
const SEEN: u8 = b'S';

/// The unique name: the file name before its first `:`.
pub(crate) fn unique_name(file_name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', file_name) {
        Some(colon) => file_name.get(..colon).unwrap_or_default(),
        None => file_name,
    }
}

/// The delivery time in seconds: the leading decimal digits of the name
/// (0 when there are none, `u64::MAX` when they overflow).
pub(crate) fn delivery_seconds(file_name: &[u8]) -> u64 {
    let digits = file_name.iter().take_while(|b| b.is_ascii_digit()).count();
    file_name
        .get(..digits)
        .and_then(parse_decimal)
        .unwrap_or(if digits == 0 { 0 } else { u64::MAX })
}

/// The wire size from a `,W=<digits>` field of the unique name, if any.
pub(crate) fn wire_size_hint(unique: &[u8]) -> Option<u64> {
    // Every field after the first starts right after a comma.
    memchr::memchr_iter(b',', unique).find_map(|comma| {
        let value = unique.get(comma + 1..)?.strip_prefix(b"W=")?;
        let end = memchr::memchr(b',', value).unwrap_or(value.len());
        parse_decimal(value.get(..end)?)
    })
}

/// The name a file from `new/` gets in `cur/`: `:2,` appended when the name
/// has no info part yet, unchanged otherwise.
pub(crate) fn cur_name(file_name: &[u8]) -> Vec<u8> {
    let mut name = file_name.to_vec();
    if memchr::memchr(b':', file_name).is_none() {
        name.extend_from_slice(INFO_PREFIX);
    }
    name
}

/// The file name with the seen flag `S` added, or `None` when nothing is to
/// change: the flag is already there, or the info part is not the `:2,`
/// kind this crate understands. Other flags keep their order; `S` goes
/// before the first flag that sorts after it, so sorted flags stay sorted.
pub(crate) fn with_seen_flag(file_name: &[u8]) -> Option<Vec<u8>> {
    let unique = unique_name(file_name);
    let mut name = Vec::with_capacity(file_name.len() + INFO_PREFIX.len() + 1);
    if unique.len() == file_name.len() {
        name.extend_from_slice(file_name);
        name.extend_from_slice(INFO_PREFIX);
        name.push(SEEN);
        return Some(name);
    }
    let info = file_name.get(unique.len()..)?;
    let flags = info.strip_prefix(INFO_PREFIX)?;
    if flags.contains(&SEEN) {
        return None;
    }
    let split = flags.iter().position(|&f| f > SEEN).unwrap_or(flags.len());
    let (before, after) = flags.split_at(split);
    name.extend_from_slice(unique);
    name.extend_from_slice(INFO_PREFIX);
    name.extend_from_slice(before);
    name.push(SEEN);
    name.extend_from_slice(after);
    Some(name)
}

/// Parses a non-empty run of ASCII digits; `None` on anything else or
/// overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_name_is_before_the_first_colon() {
        assert_eq!(unique_name(b"123.abc:2,S"), b"123.abc");
        assert_eq!(unique_name(b"123.abc"), b"123.abc");
        assert_eq!(unique_name(b"a:b:2,S"), b"a");
        assert_eq!(unique_name(b":2,S"), b"");
    }

    #[test]
    fn delivery_seconds_are_the_leading_digits() {
        assert_eq!(
            delivery_seconds(b"1035478339.27041_118.foo.org"),
            1_035_478_339
        );
        assert_eq!(delivery_seconds(b"42"), 42);
        assert_eq!(delivery_seconds(b"abc.123"), 0);
        assert_eq!(delivery_seconds(b""), 0);
        assert_eq!(delivery_seconds(b"99999999999999999999999.x"), u64::MAX);
    }

    #[test]
    fn wire_size_hint_reads_w_field() {
        assert_eq!(
            wire_size_hint(b"1035478339.27041_118.foo.org,S=1000,W=1030"),
            Some(1030)
        );
        assert_eq!(wire_size_hint(b"1.2.host,W=7,S=5"), Some(7));
        assert_eq!(wire_size_hint(b"1.2.host,S=1000"), None);
        assert_eq!(wire_size_hint(b"1.2.host,W="), None);
        assert_eq!(wire_size_hint(b"1.2.host,W=12x"), None);
        assert_eq!(wire_size_hint(b"W=12.host"), None);
        assert_eq!(wire_size_hint(b"1.2.host,W=x,W=9"), Some(9));
        assert_eq!(wire_size_hint(b"1.2.host,,W=3,"), Some(3));
        assert_eq!(wire_size_hint(b"1.2.host,W=99999999999999999999999"), None);
    }

    #[test]
    fn cur_name_adds_info_only_when_missing() {
        assert_eq!(cur_name(b"1.2.host"), b"1.2.host:2,");
        assert_eq!(cur_name(b"1.2.host:2,F"), b"1.2.host:2,F");
    }

    #[test]
    fn seen_flag_keeps_flags_sorted() {
        assert_eq!(with_seen_flag(b"1.x:2,").as_deref(), Some(&b"1.x:2,S"[..]));
        assert_eq!(
            with_seen_flag(b"1.x:2,FR").as_deref(),
            Some(&b"1.x:2,FRS"[..])
        );
        assert_eq!(
            with_seen_flag(b"1.x:2,DT").as_deref(),
            Some(&b"1.x:2,DST"[..])
        );
        assert_eq!(
            with_seen_flag(b"1.x:2,Ta").as_deref(),
            Some(&b"1.x:2,STa"[..])
        );
        assert_eq!(with_seen_flag(b"1.x").as_deref(), Some(&b"1.x:2,S"[..]));
        assert_eq!(with_seen_flag(b"1.x:2,RS"), None);
        assert_eq!(with_seen_flag(b"1.x:1,foo"), None);
    }

    #[test]
    fn parse_decimal_rejects_junk() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"1 "), None);
    }
}
