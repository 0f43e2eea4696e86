//! popgate-store's reader of Dovecot's `dovecot-uidlist`, through the
//! public `migrate::Imported` (and the record count from its `fuzzing`
//! module), on arbitrary files.
//!
//! A line-by-line model of the format as `migrate/dovecot.rs` documents it
//! (a version 3 header with a `V` field; `UID [fields] :file-name` lines;
//! `P` a saved UIDL, empty for the unique name; `W` the wire size; later
//! lines win) says which unique names the file knows and what each gets.
//! Invariants: the reader knows exactly those names, no other (so every
//! record comes from a name in the input); each gets the model's UIDL —
//! served only when RFC 1939 allows it — and wire size. With a Courier list
//! that knows every name too, Dovecot's UIDL wins where it is valid and
//! Courier's is served where it is not, while the size stays Dovecot's.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use popgate_store::fuzzing::{migration_list_len, MigrationList};
use popgate_store::migrate::Imported;
use popgate_store::uidl;

/// What the model says about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    uidl: Option<String>,
    wire_size: Option<u64>,
}

fuzz_target!(|data: &[u8]| {
    let model = model(data);
    assert_eq!(
        migration_list_len(MigrationList::Dovecot, data),
        model.len(),
        "the names the list knows"
    );
    let imported = Imported::parse(Some(data), None);
    assert_eq!(imported.is_empty(), model.is_empty());
    for (name, expected) in &model {
        assert_eq!(imported.uidl(name), expected.uidl, "{name:?}");
        assert_eq!(imported.wire_size(name), expected.wire_size, "{name:?}");
    }
    for probe in probes(data, &model) {
        assert_eq!(
            imported.uidl(&probe),
            None,
            "a name not in the list: {probe:?}"
        );
        assert_eq!(imported.wire_size(&probe), None);
    }

    // Courier's list as the fallback for every name.
    let mut courier = b"/3 1 7\n".to_vec();
    let names: Vec<&Vec<u8>> = model.keys().collect();
    for (index, name) in names.iter().enumerate() {
        courier.extend_from_slice(name);
        courier.extend_from_slice(format!(" 1 {}:7\n", index + 1).as_bytes());
    }
    let both = Imported::parse(Some(data), Some(&courier));
    for (index, name) in names.iter().enumerate() {
        let expected = &model[*name];
        let courier_uidl = format!("UID{}-7", index + 1);
        assert_eq!(
            both.uidl(name),
            Some(expected.uidl.clone().unwrap_or(courier_uidl)),
            "{name:?}"
        );
        assert_eq!(both.wire_size(name), expected.wire_size);
    }
});

/// The unique names the file lists and what each gets, by the documented
/// format.
fn model(data: &[u8]) -> HashMap<Vec<u8>, Expected> {
    let mut known = HashMap::new();
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &b""[..]),
    };
    let mut fields = header.split(|&b| b == b' ');
    if fields.next() != Some(b"3") {
        return known;
    }
    let Some(validity) = fields
        .find(|field| field.first() == Some(&b'V'))
        .and_then(|field| number(&field[1..]))
        .and_then(|v| u32::try_from(v).ok())
    else {
        return known;
    };
    for line in body.split(|&b| b == b'\n') {
        if let Some((unique, expected)) = record(line, validity) {
            known.insert(unique, expected);
        }
    }
    known
}

/// One `UID [fields] :file-name` line.
fn record(line: &[u8], validity: u32) -> Option<(Vec<u8>, Expected)> {
    let space = line.iter().position(|&b| b == b' ')?;
    let uid = u32::try_from(number(&line[..space])?).ok()?;
    let rest = &line[space + 1..];
    // The file name starts at the first `:` that starts a field.
    let colon =
        (0..rest.len()).find(|&at| rest[at] == b':' && (at == 0 || rest[at - 1] == b' '))?;
    let file_name = &rest[colon + 1..];
    let unique: Vec<u8> = file_name
        .iter()
        .copied()
        .take_while(|&b| b != b':')
        .collect();
    if unique.is_empty() {
        return None;
    }
    let mut saved = None;
    let mut wire_size = None;
    if colon > 0 {
        for field in rest[..colon - 1].split(|&b| b == b' ') {
            match field.split_first() {
                Some((b'P', value)) => saved = Some(value),
                Some((b'W', value)) => wire_size = number(value),
                _ => {}
            }
        }
    }
    let uidl = match saved {
        Some([]) => unique.clone(),
        Some(value) => value.to_vec(),
        None => format!("{uid:08x}{validity:08x}").into_bytes(),
    };
    let uidl = uidl::is_valid(&uidl).then(|| String::from_utf8(uidl).expect("ASCII"));
    Some((unique, Expected { uidl, wire_size }))
}

/// Names the list does not know: each known name cut short or made longer,
/// whole lines, the empty name.
fn probes(data: &[u8], model: &HashMap<Vec<u8>, Expected>) -> Vec<Vec<u8>> {
    let mut probes = vec![Vec::new()];
    for name in model.keys() {
        probes.push(name[..name.len() - 1].to_vec());
        probes.push([&name[..], b"x"].concat());
    }
    probes.extend(data.split(|&b| b == b'\n').take(8).map(<[u8]>::to_vec));
    probes.retain(|probe| !model.contains_key(probe));
    probes
}

/// A non-empty run of ASCII digits as a number (`None` on overflow).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
