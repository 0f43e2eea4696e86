//! The size cache: wire sizes computed once, kept in the Maildir.
//!
//! LIST and STAT must give exact CRLF sizes (see [`wire`](crate::wire)), and
//! a Maildir file with LF line ends does not know its own. When the file
//! name carries no `,W=` size, the store reads the message once, and keeps
//! the result in `popgate-sizes` in the Maildir root so the next login reads
//! nothing:
//!
//! ```text
//! popgate-sizes 1
//! 1700000000.M1P2.host 5120 5187
//! 1700000100.M7P8.host 803 822
//! ```
//!
//! After the version line, one line per message: the unique name (see
//! [`uidl`](crate::uidl)), the file's size on disk and its wire size,
//! separated by single spaces, each line ending in LF. The lines come in
//! the order the store lists the Maildir's directories, so the next login
//! finds them front to back; any order is valid.
//!
//! The cache is only an optimisation, so it is never trusted when in doubt:
//! a wrong version line, a malformed line or a missing final LF (a file cut
//! short) makes the whole file count as absent, and every size is computed
//! again. Writing is atomic (a temporary file renamed over the old one) and
//! best-effort: a cache that cannot be written (read-only Maildir, full
//! disk) only means the sizes are computed again next time. A temporary
//! file left by a process killed while writing is removed by the next
//! successful write once it is an hour old.
//!
//! The size on disk guards against a stale entry: when a message is opened
//! for RETR or TOP, the size of the opened file is compared with the cached
//! one, and a mismatch drops the entry from the cache at once (see
//! [`Mailbox::open_message`](crate::Mailbox::open_message)).

use std::collections::hash_map::RandomState;
use std::fs::{self, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use hashbrown::hash_table::{self, HashTable};
use nix::libc;

use crate::file;
use crate::name::parse_decimal;

/// The cache file's name in the Maildir root.
pub const SIZE_CACHE_FILE: &str = "popgate-sizes";

/// The largest cache file read: about a million messages. A bigger file
/// is not read into memory; it is replaced.
const MAX_BYTES: u64 = 64 << 20;

/// The first line of a cache file of the current format.
const HEADER: &[u8] = b"popgate-sizes 1\n";

/// The two sizes kept for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// The file's length on disk.
    pub(crate) raw: u64,
    /// The length RETR sends, before dot-stuffing and without terminator.
    pub(crate) wire: u64,
}

/// One cache entry: where its name is in the file, its sizes, and whether
/// the snapshot asked for it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    name_start: u32,
    name_len: u16,
    used: bool,
    sizes: Sizes,
}

/// What the file on disk turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No file (or it could not be read).
    Missing,
    /// A file that failed validation; it should be replaced.
    Corrupt,
    /// A valid file.
    Valid,
}

/// A cache loaded for one snapshot, borrowing names from the file's bytes.
///
/// The store writes the entries in the order it lists the directories,
/// and asks for them again in that order at the next login, which on an
/// unchanged directory is the same. So [`get`](SizeCache::get) first tries
/// the entry after the last one found, reading the file front to back, and
/// only goes to the hash index when that is not the one (a message was
/// added or removed since): no hashing and no scattered reads on a warm
/// login.
///
/// The index holds only positions in the entries (4 bytes each), hashed
/// by the names they point to in the file's bytes: for 100,000 messages it
/// is well under a megabyte, where a map keyed by name slices took three.
#[derive(Debug)]
pub(crate) struct SizeCache<'a> {
    /// The file's bytes, which the entries point into.
    bytes: &'a [u8],
    /// The entries in file order.
    entries: Vec<Slot>,
    /// Where each name is in `entries`.
    index: HashTable<u32>,
    hasher: RandomState,
    /// Where the next lookup looks first.
    cursor: usize,
    /// Entries found through the index rather than the cursor.
    jumps: usize,
    state: State,
}

/// Reads the cache file of the Maildir at `root`: `None` when missing or
/// unreadable (an unreadable cache is no reason to refuse a login).
pub(crate) fn read(root: &Path) -> Option<Vec<u8>> {
    read_bounded(&root.join(SIZE_CACHE_FILE))
}

/// Reads a bookkeeping file of the Maildir (the size cache, a migration
/// list): `None` when missing or unreadable. Opened like a message (no
/// symlinks, no FIFOs); a file over [`MAX_BYTES`] is returned empty, so it
/// counts as corrupt.
pub(crate) fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let (file, len) = file::open_regular(path).ok()?;
    if len > MAX_BYTES {
        return Some(Vec::new());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or_default());
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > MAX_BYTES {
        bytes.clear();
    }
    Some(bytes)
}

impl<'a> SizeCache<'a> {
    /// Parses the bytes from [`read`]; anything malformed yields an empty
    /// cache that asks to be rewritten.
    pub(crate) fn parse(bytes: Option<&'a [u8]>) -> SizeCache<'a> {
        let hasher = RandomState::new();
        let (bytes, (entries, index), state) = match bytes {
            None => (&[][..], Default::default(), State::Missing),
            Some(bytes) => match parse_entries(bytes, &hasher) {
                None => (&[][..], Default::default(), State::Corrupt),
                Some(parsed) => (bytes, parsed, State::Valid),
            },
        };
        SizeCache {
            bytes,
            entries,
            index,
            hasher,
            cursor: 0,
            jumps: 0,
            state,
        }
    }

    /// The sizes cached for `unique`, marking the entry as still needed.
    pub(crate) fn get(&mut self, unique: &[u8]) -> Option<Sizes> {
        let bytes = self.bytes;
        let at = match self.entries.get(self.cursor) {
            Some(slot) if slot.name(bytes) == unique => self.cursor,
            _ => {
                let hash = self.hasher.hash_one(unique);
                let entries = &self.entries;
                let at = *self.index.find(hash, |&at| {
                    entries
                        .get(at as usize)
                        .is_some_and(|slot| slot.name(bytes) == unique)
                })? as usize;
                self.jumps += 1;
                at
            }
        };
        self.cursor = at + 1;
        let slot = self.entries.get_mut(at)?;
        slot.used = true;
        Some(slot.sizes)
    }

    /// `true` when the file should be rewritten even if nothing was added:
    /// it is corrupt, holds entries for messages no longer present, or most
    /// lookups had to use the index (an older popgate wrote the entries in
    /// another order).
    pub(crate) fn is_stale(&self) -> bool {
        self.state == State::Corrupt
            || self.jumps > self.entries.len() / 2
            || self.entries.iter().any(|slot| !slot.used)
    }
}

impl Slot {
    /// The entry's name, in the cache file's `bytes`.
    fn name(self, bytes: &[u8]) -> &[u8] {
        let start = self.name_start as usize;
        bytes
            .get(start..start + usize::from(self.name_len))
            .unwrap_or_default()
    }
}

/// The entries of a cache file in file order, and where each name is.
type Parsed = (Vec<Slot>, HashTable<u32>);

/// Parses a whole cache file; `None` when anything is off (a repeated name
/// included).
fn parse_entries(bytes: &[u8], hasher: &RandomState) -> Option<Parsed> {
    let body = bytes.strip_prefix(HEADER)?;
    if body.is_empty() {
        return Some(Default::default());
    }
    let body = body.strip_suffix(b"\n")?;
    let lines = memchr::memchr_iter(b'\n', body).count() + 1;
    let mut entries: Vec<Slot> = Vec::with_capacity(lines);
    let mut index = HashTable::with_capacity(lines);
    let mut line_start = HEADER.len();
    for line in body.split(|&b| b == b'\n') {
        let (name, sizes) = parse_line(line)?;
        let slot = Slot {
            name_start: u32::try_from(line_start).ok()?,
            name_len: u16::try_from(name.len()).ok()?,
            used: false,
            sizes,
        };
        line_start += line.len() + 1;
        let at = u32::try_from(entries.len()).ok()?;
        let name_at = |at: &u32| {
            entries
                .get(*at as usize)
                .map_or(&[][..], |slot| slot.name(bytes))
        };
        match index.entry(
            hasher.hash_one(name),
            |other| name_at(other) == name,
            |other| hasher.hash_one(name_at(other)),
        ) {
            hash_table::Entry::Vacant(vacant) => {
                vacant.insert(at);
            }
            hash_table::Entry::Occupied(_) => return None,
        }
        entries.push(slot);
    }
    Some((entries, index))
}

/// Parses `NAME RAW WIRE` (no LF); `None` when anything is off.
fn parse_line(line: &[u8]) -> Option<(&[u8], Sizes)> {
    let mut spaces = memchr::memchr_iter(b' ', line);
    let (first, second) = (spaces.next()?, spaces.next()?);
    if spaces.next().is_some() {
        return None;
    }
    let name = line.get(..first).filter(|name| !name.is_empty())?;
    let raw = parse_decimal(line.get(first + 1..second)?)?;
    let wire = parse_decimal(line.get(second + 1..)?)?;
    Some((name, Sizes { raw, wire }))
}

/// `true` when `unique` can be written as a cache key.
pub(crate) fn is_storable(unique: &[u8]) -> bool {
    !unique.is_empty() && !unique.iter().any(|&b| b == b' ' || b == b'\n')
}

/// Replaces the cache file of the Maildir at `root` with `entries`
/// (names that are not [storable](is_storable), or repeated, are left out).
/// Atomic: written to `popgate-sizes.tmp.<pid>.<random>`, then renamed.
/// The text goes to the file through a small buffer, never whole in memory.
pub(crate) fn write<'n>(
    root: &Path,
    entries: impl Iterator<Item = (&'n [u8], Sizes)>,
) -> io::Result<()> {
    let hasher = RandomState::new();
    let random = hasher.hash_one(std::process::id());
    let tmp = root.join(format!(
        "{SIZE_CACHE_FILE}.tmp.{}.{random:016x}",
        std::process::id()
    ));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|file| {
            let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
            out.write_all(HEADER)?;
            // The names written so far, to leave out repeats.
            let mut seen: HashTable<&[u8]> = HashTable::new();
            for (unique, sizes) in entries {
                if !is_storable(unique) {
                    continue;
                }
                match seen.entry(
                    hasher.hash_one(unique),
                    |other| *other == unique,
                    |other| hasher.hash_one(other),
                ) {
                    hash_table::Entry::Occupied(_) => continue,
                    hash_table::Entry::Vacant(vacant) => {
                        vacant.insert(unique);
                    }
                }
                out.write_all(unique)?;
                writeln!(out, " {} {}", sizes.raw, sizes.wire)?;
            }
            out.into_inner().map_err(io::IntoInnerError::into_error)?;
            Ok(())
        })
        .and_then(|()| fs::rename(&tmp, root.join(SIZE_CACHE_FILE)));
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    } else {
        remove_leftovers(root);
    }
    result
}

/// The buffer the cache file is written through.
const WRITE_BUFFER: usize = 64 * 1024;

/// How old a temporary cache file must be to count as left behind by a
/// process that died while writing it (a live writer renames it at once).
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Removes temporary cache files that a killed process left behind.
fn remove_leftovers(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let prefix = format!("{SIZE_CACHE_FILE}.tmp.");
    for entry in entries.flatten() {
        if !entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > LEFTOVER_AGE));
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(raw: u64, wire: u64) -> Sizes {
        Sizes { raw, wire }
    }

    #[test]
    fn valid_file_is_used() {
        let bytes = b"popgate-sizes 1\na.host 10 12\nb.host 3 5\n";
        let mut cache = SizeCache::parse(Some(bytes));
        assert_eq!(cache.get(b"a.host"), Some(sizes(10, 12)));
        assert_eq!(cache.get(b"c.host"), None);
        assert!(cache.is_stale(), "b.host was not asked for");
        assert_eq!(cache.get(b"b.host"), Some(sizes(3, 5)));
        assert!(!cache.is_stale());
    }

    #[test]
    fn lookups_in_file_order_or_any_order_find_the_same() {
        let bytes = b"popgate-sizes 1\na 1 2\nb 3 4\nc 5 6\nd 7 8\n";
        let mut cache = SizeCache::parse(Some(bytes));
        // In order, out of order, a name not there, and back in order.
        for (name, expected) in [
            (&b"a"[..], Some(sizes(1, 2))),
            (b"b", Some(sizes(3, 4))),
            (b"d", Some(sizes(7, 8))),
            (b"x", None),
            (b"a", Some(sizes(1, 2))),
            (b"b", Some(sizes(3, 4))),
        ] {
            assert_eq!(
                cache.get(name),
                expected,
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(cache.get(b"c"), Some(sizes(5, 6)));
        // Past the last entry, the cursor points nowhere: the index answers.
        assert_eq!(cache.get(b"d"), Some(sizes(7, 8)));
        assert_eq!(cache.get(b"c"), Some(sizes(5, 6)));
    }

    #[test]
    fn a_file_in_another_order_asks_to_be_rewritten() {
        let bytes = b"popgate-sizes 1\na 1 2\nb 3 4\nc 5 6\nd 7 8\n";
        let mut in_order = SizeCache::parse(Some(bytes));
        for name in [&b"a"[..], b"b", b"x", b"c", b"d"] {
            in_order.get(name);
        }
        assert!(!in_order.is_stale(), "one new message is no reason");
        let mut reversed = SizeCache::parse(Some(bytes));
        for name in [&b"d"[..], b"c", b"b", b"a"] {
            assert!(reversed.get(name).is_some());
        }
        assert!(reversed.is_stale());
    }

    #[test]
    fn parse_line_takes_exactly_three_fields() {
        assert_eq!(
            parse_line(b"a.host 10 12"),
            Some((&b"a.host"[..], sizes(10, 12)))
        );
        for bad in [
            &b""[..],
            b"a",
            b"a 1",
            b"a 1 ",
            b"a 1 2 ",
            b" 1 2",
            b"a 1  2",
            b"a -1 2",
            b"a 1 2\r",
            b"a 18446744073709551616 2",
        ] {
            assert_eq!(parse_line(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn header_only_is_valid_and_empty() {
        let cache = SizeCache::parse(Some(b"popgate-sizes 1\n"));
        assert_eq!(cache.state, State::Valid);
        assert!(!cache.is_stale());
    }

    #[test]
    fn missing_file_is_not_stale() {
        let mut cache = SizeCache::parse(None);
        assert_eq!(cache.get(b"a"), None);
        assert!(!cache.is_stale());
    }

    #[test]
    fn corrupt_files_are_ignored_entirely() {
        for bad in [
            &b""[..],
            b"popgate-sizes 2\na 1 2\n",
            b"popgate-sizes 1",
            b"popgate-sizes 1\na 1 2",
            b"popgate-sizes 1\na 1 2\nb 1\n",
            b"popgate-sizes 1\na 1 2\nb 1 2 3\n",
            b"popgate-sizes 1\na 1 x\n",
            b"popgate-sizes 1\na  1 2\n",
            b"popgate-sizes 1\n 1 2\n",
            b"popgate-sizes 1\na 1 2\n\n",
            b"popgate-sizes 1\na 1 2\na 1 2\n",
            b"popgate-sizes 1\na 1 99999999999999999999999\n",
        ] {
            let mut cache = SizeCache::parse(Some(bad));
            assert_eq!(cache.get(b"a"), None, "{:?}", String::from_utf8_lossy(bad));
            assert!(cache.is_stale(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn write_then_read_round_trips() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let entries = [
            (&b"a.host"[..], sizes(1, 2)),
            (b"with space", sizes(3, 4)),
            (b"", sizes(5, 6)),
            (b"b.host", sizes(7, 8)),
            (b"a.host", sizes(9, 9)),
        ];
        write(dir.path(), entries.into_iter())?;
        let bytes = read(dir.path());
        assert_eq!(
            bytes.as_deref(),
            Some(&b"popgate-sizes 1\na.host 1 2\nb.host 7 8\n"[..])
        );
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        assert_eq!(names, [SIZE_CACHE_FILE], "no temporary file left");
        Ok(())
    }

    #[test]
    fn leftovers_of_killed_writers_are_removed_fresh_ones_kept() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let old = dir.path().join(format!("{SIZE_CACHE_FILE}.tmp.1.00"));
        let fresh = dir.path().join(format!("{SIZE_CACHE_FILE}.tmp.2.00"));
        let other = dir.path().join("dovecot-uidlist.tmp");
        for path in [&old, &fresh, &other] {
            let file = fs::File::create(path)?;
            if path != &fresh {
                file.set_modified(std::time::SystemTime::now() - 2 * LEFTOVER_AGE)?;
            }
        }
        write(dir.path(), std::iter::empty())?;
        assert!(!old.exists());
        assert!(fresh.exists());
        assert!(other.exists());
        Ok(())
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let result = write(Path::new("/nonexistent/popgate"), std::iter::empty());
        assert!(result.is_err());
    }

    #[test]
    fn storable_names() {
        assert!(is_storable(b"1.2.host,S=5"));
        assert!(!is_storable(b""));
        assert!(!is_storable(b"a b"));
        assert!(!is_storable(b"a\nb"));
    }
}
