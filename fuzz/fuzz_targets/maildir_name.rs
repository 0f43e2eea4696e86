//! The Maildir file-name parser of popgate-store (`name.rs`, through its
//! `fuzzing` module), on arbitrary names and on names built from parts.
//!
//! Invariants, for any bytes: the unique name is the prefix before the
//! first `:`; the delivery time is the leading digits (0 without, the
//! maximum on overflow); a `W=` size found is exactly the digits of the
//! first `,W=` field that has only digits; the `cur/` name only ever adds
//! `:2,`; adding the seen flag changes nothing but the flags, adds exactly
//! one `S`, keeps sorted flags sorted, and is refused exactly when the
//! flag is there or the info is not `:2,`. For a name built from parts
//! (delivery time, the rest of the unique name, fields such as `S=` and
//! `W=` in any order, flags): each part parses back, `S=` is never read as
//! a wire size, and the unique name never depends on the flags.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use popgate_store::fuzzing::name::{
    cur_name, delivery_seconds, parse_decimal, unique_name, wire_size_hint, with_seen_flag,
};

fuzz_target!(|data: &[u8]| {
    check_any_name(data);
    let _ = check_built_name(&mut Unstructured::new(data));
});

/// The properties every byte string has as a file name.
fn check_any_name(name: &[u8]) {
    let unique = unique_name(name);
    let colon = name.iter().position(|&b| b == b':');
    assert_eq!(unique, &name[..colon.unwrap_or(name.len())]);

    let digits: Vec<u8> = name
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    let expected_seconds = match digits.is_empty() {
        true => 0,
        false => std::str::from_utf8(&digits)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(u64::MAX),
    };
    assert_eq!(delivery_seconds(name), expected_seconds);

    let fields: Vec<&[u8]> = unique.split(|&b| b == b',').skip(1).collect();
    let expected_wire = fields
        .iter()
        .find_map(|field| number(field.strip_prefix(b"W=")?));
    let wire = wire_size_hint(unique);
    assert_eq!(wire, expected_wire);
    if let Some(size) = wire {
        // Exactly the digits in the name: the field, leading zeros aside.
        let field = fields
            .iter()
            .find(|field| field.strip_prefix(b"W=").and_then(number) == Some(size))
            .expect("the W= field");
        let text = std::str::from_utf8(&field[2..]).expect("digits");
        assert_eq!(text.trim_start_matches('0').to_owned(), nonzero(size));
    }

    let cur = cur_name(name);
    match colon {
        Some(_) => assert_eq!(cur, name),
        None => assert_eq!(cur, [name, b":2,"].concat()),
    }
    assert_eq!(unique_name(&cur), unique);

    let info = &name[unique.len()..];
    let old_flags = match colon {
        None => Some(&b""[..]),
        Some(_) => info.strip_prefix(b":2,"),
    };
    match (with_seen_flag(name), old_flags) {
        (Some(seen), Some(old)) => {
            assert!(!old.contains(&b'S'));
            assert_eq!(unique_name(&seen), unique);
            let new = seen[unique.len()..]
                .strip_prefix(b":2,")
                .expect("a :2, info");
            assert_eq!(new.iter().filter(|&&f| f == b'S').count(), 1);
            let without: Vec<u8> = new.iter().copied().filter(|&f| f != b'S').collect();
            assert_eq!(without, old, "flags other than S changed");
            if old.is_sorted() {
                assert!(new.is_sorted(), "sorted flags no longer sorted");
            }
        }
        (None, Some(old)) => assert!(old.contains(&b'S'), "seen flag refused"),
        (None, None) => {}
        (Some(_), None) => panic!("seen flag added to an info that is not :2,"),
    }

    let text_number = std::str::from_utf8(unique)
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok());
    assert_eq!(parse_decimal(unique), text_number);
}

/// Builds a name from parts and checks that each parses back.
fn check_built_name(u: &mut Unstructured<'_>) -> Result<()> {
    let seconds: u64 = u.arbitrary()?;
    let rest = field_text(u, 24)?;
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let field = match u.int_in_range(0..=3)? {
            0 => format!("S={}", u.arbitrary::<u64>()?).into_bytes(),
            1 => format!("W={}", u.arbitrary::<u64>()?).into_bytes(),
            2 => [b"W=".to_vec(), field_text(u, 6)?].concat(),
            _ => field_text(u, 12)?,
        };
        fields.push(field);
    }
    let mut unique = format!("{seconds}.").into_bytes();
    unique.extend_from_slice(&rest);
    for field in &fields {
        unique.push(b',');
        unique.extend_from_slice(field);
    }
    let flags: Option<Vec<u8>> = match u.arbitrary::<bool>()? {
        true => {
            let mut flags: Vec<u8> = b"DFPRST"
                .iter()
                .copied()
                .filter(|_| u.arbitrary::<bool>().unwrap_or(false))
                .collect();
            if u.arbitrary::<bool>()? {
                flags.reverse();
            }
            Some(flags)
        }
        false => None,
    };
    let mut name = unique.clone();
    if let Some(flags) = &flags {
        name.extend_from_slice(b":2,");
        name.extend_from_slice(flags);
    }

    assert_eq!(unique_name(&name), unique, "the unique name");
    assert_eq!(delivery_seconds(&name), seconds, "the delivery time");
    let expected_wire = fields
        .iter()
        .find_map(|field| number(field.strip_prefix(b"W=")?));
    assert_eq!(
        wire_size_hint(unique_name(&name)),
        expected_wire,
        "the W= size"
    );
    let seen = with_seen_flag(&name);
    match &flags {
        Some(flags) if flags.contains(&b'S') => assert_eq!(seen, None),
        Some(flags) => {
            let seen = seen.expect("the seen flag added");
            assert_eq!(unique_name(&seen), unique);
            if flags.is_sorted() {
                let mut expected = flags.clone();
                expected.push(b'S');
                expected.sort_unstable();
                assert_eq!(seen[unique.len() + 3..], expected[..]);
            }
        }
        None => assert_eq!(seen, Some([&unique[..], b":2,S"].concat())),
    }
    Ok(())
}

/// Up to `max` octets for a part of a unique name: anything but the
/// separators `,` and `:` and the `/` no file name holds.
fn field_text(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let bytes = u.bytes(len)?;
    Ok(bytes
        .iter()
        .map(|&b| {
            if matches!(b, b',' | b':' | b'/') {
                b'_'
            } else {
                b
            }
        })
        .collect())
}

/// A non-empty run of ASCII digits as a number (`None` on overflow).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `size` in decimal without leading zeros ("" for zero, as trimming
/// "000" gives).
fn nonzero(size: u64) -> String {
    match size {
        0 => String::new(),
        size => size.to_string(),
    }
}
