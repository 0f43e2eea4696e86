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
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
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

/// The cache file is malformed (or could not be read to its end): every
/// size [`load`] handed out must be forgotten, and the file rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// The files of a snapshot, in the order the directories listed them, as
/// [`load`] gives them their cached sizes.
pub(crate) trait Sizable {
    /// How many files.
    fn count(&self) -> usize;
    /// The unique name of file `index`.
    fn unique(&self, index: usize) -> &[u8];
    /// Gives file `index` its cached sizes; `false` when it does not need
    /// them (its size came from its name or an imported list).
    fn take_sizes(&mut self, index: usize, sizes: Sizes) -> bool;
}

/// Reads the cache file of the Maildir at `root` line by line and hands
/// each entry to the file of that name in `files`. Returns whether the file
/// should be rewritten even if no size is added: it holds entries for
/// messages no longer present (or not needing one), or most of its lines
/// were not where the listing expected them (an older popgate wrote them
/// in another order). A missing or unreadable file is no reason to refuse
/// a login: `Ok(false)`, and every size is computed.
///
/// The lines come in listing order on an unchanged Maildir, so each is
/// first compared with the file after the one the previous line went to;
/// only when that is not it is an index of the listing's names built
/// (once) and asked. A warm login hashes nothing, and the file is never
/// in memory whole: only one line of it at a time.
///
/// [`Corrupt`] for a malformed line, a missing final LF (a file cut
/// short), a name given twice, a file over [`MAX_BYTES`] or a read error.
pub(crate) fn load(root: &Path, files: &mut impl Sizable) -> Result<bool, Corrupt> {
    let Ok((file, len)) = file::open_regular(&root.join(SIZE_CACHE_FILE)) else {
        return Ok(false);
    };
    if len > MAX_BYTES {
        return Err(Corrupt);
    }
    // The file is replaced whole, never written in place: its length
    // now is its length to the end, and reading exactly that much spares
    // the read that would only find the end.
    let capacity = usize::try_from(len).map_or(READ_BUFFER, |len| len.clamp(1, READ_BUFFER));
    read_text(BufReader::with_capacity(capacity, file.take(len)), files)
}

/// The reading part of [`load`]: the cache file's text from `reader`.
pub(crate) fn read_text(
    mut reader: impl BufRead,
    files: &mut impl Sizable,
) -> Result<bool, Corrupt> {
    let mut line = Vec::with_capacity(256);
    let mut read = 0;
    let mut matcher = Matcher {
        given: vec![false; files.count()],
        cursor: 0,
        index: None,
        hasher: RandomState::new(),
        entries: 0,
        jumps: 0,
        unused: 0,
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|_| Corrupt)?;
        read += n as u64;
        if n == 0 {
            break;
        }
        if read > MAX_BYTES {
            return Err(Corrupt);
        }
        let text = line.strip_suffix(b"\n").ok_or(Corrupt)?;
        if read == n as u64 {
            if line != HEADER {
                return Err(Corrupt);
            }
            continue;
        }
        let (name, sizes) = parse_line(text).ok_or(Corrupt)?;
        matcher.offer(files, name, sizes)?;
    }
    if read == 0 {
        return Err(Corrupt);
    }
    Ok(matcher.is_stale())
}

/// How much of the cache file is read at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Matches the cache's lines with the listed files.
struct Matcher {
    /// The files a line was found for.
    given: Vec<bool>,
    /// The file the next line is expected for.
    cursor: usize,
    /// The listed files by unique name, built at the first line that is
    /// not where expected.
    index: Option<HashTable<u32>>,
    hasher: RandomState,
    /// Lines seen.
    entries: usize,
    /// Lines found through the index rather than at the cursor.
    jumps: usize,
    /// Lines for files not listed, or not needing their size.
    unused: usize,
}

impl Matcher {
    /// Hands one line's sizes to its file.
    fn offer(
        &mut self,
        files: &mut impl Sizable,
        name: &[u8],
        sizes: Sizes,
    ) -> Result<(), Corrupt> {
        self.entries += 1;
        let at = if self.cursor < files.count() && files.unique(self.cursor) == name {
            Some(self.cursor)
        } else {
            let found = self.find(files, name);
            self.jumps += usize::from(found.is_some());
            found
        };
        let Some(at) = at else {
            self.unused += 1;
            return Ok(());
        };
        self.cursor = at + 1;
        match self.given.get_mut(at) {
            Some(given) if !*given => *given = true,
            _ => return Err(Corrupt),
        }
        if !files.take_sizes(at, sizes) {
            self.unused += 1;
        }
        Ok(())
    }

    /// The file named `name`, through the index.
    fn find(&mut self, files: &impl Sizable, name: &[u8]) -> Option<usize> {
        let hasher = &self.hasher;
        let index = self.index.get_or_insert_with(|| {
            let count = files.count();
            let mut index = HashTable::with_capacity(count);
            for at in (0u32..).take(count) {
                let hash = hasher.hash_one(files.unique(at as usize));
                index.insert_unique(hash, at, |&other| {
                    hasher.hash_one(files.unique(other as usize))
                });
            }
            index
        });
        index
            .find(hasher.hash_one(name), |&at| {
                files.unique(at as usize) == name
            })
            .map(|&at| at as usize)
    }

    /// `true` when the file should be rewritten for its own sake.
    fn is_stale(&self) -> bool {
        self.unused > 0 || self.jumps > self.entries / 2
    }
}

/// Reads a bookkeeping file of the Maildir (a migration list) whole:
/// `None` when missing or unreadable. Opened like a message (no
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
            write_text(&mut out, entries)?;
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

/// The text of a cache file with `entries` (see [`write`]), to `out`.
pub(crate) fn write_text<'n>(
    out: &mut impl Write,
    entries: impl Iterator<Item = (&'n [u8], Sizes)>,
) -> io::Result<()> {
    let hasher = RandomState::new();
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
    Ok(())
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

    /// Listed files for [`load`]: names, and the sizes they were given.
    struct Files {
        names: Vec<&'static [u8]>,
        /// Files whose size came from elsewhere.
        sized: Vec<&'static [u8]>,
        given: Vec<Option<Sizes>>,
    }

    impl Files {
        fn new(names: &[&'static [u8]]) -> Files {
            Files {
                names: names.to_vec(),
                sized: Vec::new(),
                given: vec![None; names.len()],
            }
        }
    }

    impl Sizable for Files {
        fn count(&self) -> usize {
            self.names.len()
        }
        fn unique(&self, index: usize) -> &[u8] {
            self.names[index]
        }
        fn take_sizes(&mut self, index: usize, sizes: Sizes) -> bool {
            if self.sized.contains(&self.names[index]) {
                return false;
            }
            self.given[index] = Some(sizes);
            true
        }
    }

    /// Loads `text` as the cache file for `files`.
    fn load_text(text: &[u8], files: &mut Files) -> io::Result<Result<bool, Corrupt>> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(SIZE_CACHE_FILE), text)?;
        Ok(load(dir.path(), files))
    }

    #[test]
    fn valid_file_is_used() -> io::Result<()> {
        let text = b"popgate-sizes 1\na.host 10 12\nb.host 3 5\n";
        let mut files = Files::new(&[b"a.host", b"c.host"]);
        assert_eq!(
            load_text(text, &mut files)?,
            Ok(true),
            "b.host is not listed"
        );
        assert_eq!(files.given, [Some(sizes(10, 12)), None]);
        let mut files = Files::new(&[b"a.host", b"b.host"]);
        assert_eq!(load_text(text, &mut files)?, Ok(false));
        assert_eq!(files.given, [Some(sizes(10, 12)), Some(sizes(3, 5))]);
        Ok(())
    }

    #[test]
    fn lines_in_listing_order_or_any_order_find_the_same() -> io::Result<()> {
        let text = b"popgate-sizes 1\na 1 2\nb 3 4\nc 5 6\nd 7 8\n";
        // In order, out of order, a file not in the cache, and past the end.
        let mut files = Files::new(&[b"a", b"b", b"x", b"d", b"c"]);
        assert_eq!(load_text(text, &mut files)?, Ok(false), "two jumps of four");
        assert_eq!(
            files.given,
            [
                Some(sizes(1, 2)),
                Some(sizes(3, 4)),
                None,
                Some(sizes(7, 8)),
                Some(sizes(5, 6))
            ]
        );
        Ok(())
    }

    #[test]
    fn a_file_in_another_order_asks_to_be_rewritten() -> io::Result<()> {
        let text = b"popgate-sizes 1\na 1 2\nb 3 4\nc 5 6\nd 7 8\n";
        let mut in_order = Files::new(&[b"a", b"b", b"x", b"c", b"d"]);
        assert_eq!(
            load_text(text, &mut in_order)?,
            Ok(false),
            "one new message is no reason"
        );
        let mut reversed = Files::new(&[b"d", b"c", b"b", b"a"]);
        assert_eq!(load_text(text, &mut reversed)?, Ok(true));
        assert!(reversed.given.iter().all(Option::is_some));
        Ok(())
    }

    #[test]
    fn an_entry_for_a_file_sized_otherwise_asks_to_be_rewritten() -> io::Result<()> {
        let mut files = Files::new(&[b"a", b"b"]);
        files.sized.push(b"b");
        let text = b"popgate-sizes 1\na 1 2\nb 3 4\n";
        assert_eq!(load_text(text, &mut files)?, Ok(true));
        assert_eq!(files.given, [Some(sizes(1, 2)), None]);
        Ok(())
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
    fn header_only_is_valid_and_empty() -> io::Result<()> {
        let mut files = Files::new(&[b"a"]);
        assert_eq!(load_text(b"popgate-sizes 1\n", &mut files)?, Ok(false));
        assert_eq!(files.given, [None]);
        Ok(())
    }

    #[test]
    fn missing_file_is_not_stale() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut files = Files::new(&[b"a"]);
        assert_eq!(load(dir.path(), &mut files), Ok(false));
        assert_eq!(files.given, [None]);
        Ok(())
    }

    #[test]
    fn corrupt_files_are_reported() -> io::Result<()> {
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
            b"popgate-sizes 1\na 1 2\nb 3 4\na 1 2\n",
            b"popgate-sizes 1\na 1 99999999999999999999999\n",
        ] {
            let mut files = Files::new(&[b"a", b"b"]);
            assert_eq!(
                load_text(bad, &mut files)?,
                Err(Corrupt),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        Ok(())
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
        assert_eq!(
            fs::read(dir.path().join(SIZE_CACHE_FILE))?,
            b"popgate-sizes 1\na.host 1 2\nb.host 7 8\n"
        );
        let mut files = Files::new(&[b"a.host", b"b.host"]);
        assert_eq!(load(dir.path(), &mut files), Ok(false));
        assert_eq!(files.given, [Some(sizes(1, 2)), Some(sizes(7, 8))]);
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
