//! popgate-store's reader of Courier's `courierpop3dsizelist`, through the
//! public `migrate::Imported` (and the record count from its `fuzzing`
//! module), on arbitrary files.
//!
//! A line-by-line model of the format as `migrate/courier.rs` documents it
//! (a `/2` or `/3` header with a next-UID number; lines whose last two
//! spaces separate the file name, a decimal size and `UID:UIDVALIDITY[:…]`;
//! UID 0 for the escaped-name UIDL of Courier's oldest format; later lines
//! win) says which unique names the file knows and what UIDL each gets.
//! Invariants: the reader knows exactly those names and no other (every
//! record comes from a name in the input), serves the model's UIDL only
//! when RFC 1939 allows it, and never takes a size from this list.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use popgate_store::fuzzing::{migration_list_len, MigrationList};
use popgate_store::migrate::Imported;
use popgate_store::uidl;

fuzz_target!(|data: &[u8]| {
    let model = model(data);
    assert_eq!(
        migration_list_len(MigrationList::Courier, data),
        model.len(),
        "the names the list knows"
    );
    let imported = Imported::parse(None, Some(data));
    assert_eq!(imported.is_empty(), model.is_empty());
    for (name, expected) in &model {
        assert_eq!(imported.uidl(name), *expected, "{name:?}");
        assert_eq!(imported.wire_size(name), None, "a size from Courier's list");
    }
    let mut probes = vec![Vec::new()];
    for name in model.keys() {
        probes.push(name[..name.len() - 1].to_vec());
        probes.push([&name[..], b"x"].concat());
    }
    probes.extend(data.split(|&b| b == b'\n').take(8).map(<[u8]>::to_vec));
    for probe in probes.iter().filter(|probe| !model.contains_key(*probe)) {
        assert_eq!(
            imported.uidl(probe),
            None,
            "a name not in the list: {probe:?}"
        );
    }
});

/// The unique names the file lists and the UIDL each gets, by the
/// documented format.
fn model(data: &[u8]) -> HashMap<Vec<u8>, Option<String>> {
    let mut known = HashMap::new();
    let mut lines = data.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let Some(header) = header.strip_prefix(b"/") else {
        return known;
    };
    let mut fields = header.split(|&b| b == b' ');
    let version = fields.next();
    if !matches!(version, Some(b"2" | b"3")) || fields.next().and_then(number).is_none() {
        return known;
    }
    for line in lines {
        if let Some((unique, uidl)) = record(line) {
            known.insert(unique, uidl);
        }
    }
    known
}

/// One `file-name size uid:uidvalidity[:…]` line.
fn record(line: &[u8]) -> Option<(Vec<u8>, Option<String>)> {
    let mut parts = line.rsplitn(3, |&b| b == b' ');
    let (ids, size, file_name) = (parts.next()?, parts.next()?, parts.next()?);
    number(size)?;
    let unique: Vec<u8> = file_name
        .iter()
        .copied()
        .take_while(|&b| b != b':')
        .collect();
    if unique.is_empty() {
        return None;
    }
    let mut ids = ids.split(|&b| b == b':');
    let uid = number(ids.next()?)?;
    let validity = number(ids.next()?)?;
    let uidl = match (uid, validity) {
        (0, _) => escaped(&unique),
        (uid, 0) => format!("UID{uid}"),
        (uid, validity) => format!("UID{uid}-{validity}"),
    };
    let uidl = uidl::is_valid(uidl.as_bytes()).then_some(uidl);
    Some((unique, uidl))
}

/// Courier's oldest UIDL: bytes outside 0x21–0x7E and `'`, `"`, `+` as
/// `+XX`.
fn escaped(unique: &[u8]) -> String {
    unique
        .iter()
        .map(|&b| match b {
            b'\'' | b'"' | b'+' => format!("+{b:02X}"),
            0x21..=0x7e => char::from(b).to_string(),
            _ => format!("+{b:02X}"),
        })
        .collect()
}

/// A non-empty run of ASCII digits as a number (`None` on overflow).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
