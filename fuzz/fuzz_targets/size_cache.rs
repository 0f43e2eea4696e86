//! popgate-store's size cache (`popgate-sizes`): its reader on arbitrary
//! files against a listing of the Maildir, and its writer, through the
//! store's `fuzzing` module.
//!
//! A model of the format as `size_cache.rs` documents it (the line
//! `popgate-sizes 1`, then `NAME RAW WIRE` lines, every line ending in LF)
//! says whether the file is valid. Invariants: the reader refuses exactly
//! the files the model refuses, and a name listed twice; otherwise each
//! listed file gets the sizes of its own line and no other, a file sized
//! elsewhere gets none, and the reader asks for a rewrite exactly when a
//! line went unused or most lines were out of listing order. The writer's
//! text, for names taken from the input, is the header and one line per
//! storable name (the first of each), and reads back whole.
//!
//! Input: a byte that shapes the listing (order, gaps, a name the file
//! lacks, files sized elsewhere), then the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use popgate_store::fuzzing::{size_cache_read, size_cache_text, ListedFile};

/// The first line of a valid file.
const HEADER: &[u8] = b"popgate-sizes 1";

fuzz_target!(|data: &[u8]| {
    let &[shape, ref file @ ..] = data else {
        return;
    };
    let lines = model(file);
    let mut names: Vec<&[u8]> = Vec::new();
    for (name, _) in lines.iter().flatten() {
        if !names.contains(name) {
            names.push(name);
        }
    }
    if shape & 1 != 0 {
        names.reverse();
    }
    if shape & 2 != 0 {
        names = names.into_iter().step_by(2).collect();
    }
    if shape & 4 != 0 && !names.contains(&&b"absent.host"[..]) {
        names.insert(names.len() / 2, b"absent.host");
    }
    let mut listed: Vec<ListedFile> = names
        .iter()
        .enumerate()
        .map(|(index, name)| ListedFile {
            unique: name.to_vec(),
            sized_elsewhere: shape & 8 != 0 && index.is_multiple_of(3),
            sizes: None,
        })
        .collect();

    let result = size_cache_read(file, &mut listed);
    let expected = lines.and_then(|lines| expected(&lines, &names, shape));
    match expected {
        None => assert_eq!(result, None, "a file the format refuses was read"),
        Some((rewrite, sizes)) => {
            assert_eq!(result, Some(rewrite), "rewrite");
            let given: Vec<Given> = listed.iter().map(|file| file.sizes).collect();
            assert_eq!(given, sizes, "the sizes given");
        }
    }

    check_writer(file);
});

/// One `NAME RAW WIRE` line: the name, the size on disk and on the wire.
type Line<'a> = (&'a [u8], (u64, u64));

/// The sizes a listed file is given, if any.
type Given = Option<(u64, u64)>;

/// The lines of a valid file, `None` for a file the format refuses.
fn model(file: &[u8]) -> Option<Vec<Line<'_>>> {
    let text = file.strip_suffix(b"\n")?;
    let mut lines = text.split(|&b| b == b'\n');
    if lines.next()? != HEADER {
        return None;
    }
    lines
        .map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let [name, raw, wire] = fields[..] else {
                return None;
            };
            if name.is_empty() {
                return None;
            }
            Some((name, (number(raw)?, number(wire)?)))
        })
        .collect()
}

/// What the reader must return for a valid file: whether to rewrite it,
/// and the sizes each listed file gets; `None` when a listed name has two
/// lines.
fn expected(lines: &[Line<'_>], names: &[&[u8]], shape: u8) -> Option<(bool, Vec<Given>)> {
    let sized_elsewhere = |index: usize| shape & 8 != 0 && index.is_multiple_of(3);
    let mut sizes = vec![None; names.len()];
    let mut given = vec![false; names.len()];
    let (mut cursor, mut jumps, mut unused) = (0, 0, 0);
    for &(name, line_sizes) in lines {
        let at = if names.get(cursor) == Some(&name) {
            Some(cursor)
        } else {
            let found = names.iter().position(|listed| *listed == name);
            jumps += usize::from(found.is_some());
            found
        };
        let Some(at) = at else {
            unused += 1;
            continue;
        };
        if given[at] {
            return None;
        }
        given[at] = true;
        cursor = at + 1;
        if sized_elsewhere(at) {
            unused += 1;
        } else {
            sizes[at] = Some(line_sizes);
        }
    }
    Some((unused > 0 || jumps > lines.len() / 2, sizes))
}

/// The writer on names from the input: the text the format wants, read
/// back whole.
fn check_writer(input: &[u8]) {
    let entries: Vec<(&[u8], u64, u64)> = input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, name)| {
            (
                name,
                name.len() as u64 * 1000 + index as u64,
                u64::MAX - index as u64,
            )
        })
        .collect();
    let text = size_cache_text(&entries);
    let mut expected = [HEADER, b"\n"].concat();
    let mut written: Vec<&[u8]> = Vec::new();
    for &(name, raw, wire) in &entries {
        let storable = !name.is_empty() && !name.contains(&b' ');
        if storable && !written.contains(&name) {
            written.push(name);
            expected.extend_from_slice(name);
            expected.extend_from_slice(format!(" {raw} {wire}\n").as_bytes());
        }
    }
    assert_eq!(text, expected, "the text written");
    let mut listed: Vec<ListedFile> = written
        .iter()
        .map(|name| ListedFile {
            unique: name.to_vec(),
            sized_elsewhere: false,
            sizes: None,
        })
        .collect();
    assert_eq!(
        size_cache_read(&text, &mut listed),
        Some(false),
        "read back"
    );
    for file in &listed {
        let &(_, raw, wire) = entries
            .iter()
            .find(|(name, _, _)| *name == file.unique)
            .expect("a written name");
        assert_eq!(file.sizes, Some((raw, wire)));
    }
}

/// A non-empty run of ASCII digits as a number (`None` on overflow).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
