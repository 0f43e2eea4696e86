//! Taking the snapshot: which files are the messages of this session, and
//! in what order.
//!
//! A Maildir has three directories: a delivery agent writes a message into
//! `tmp/`, then renames it into `new/`; a reader moves what it has seen into
//! `cur/`, adding an info part `:2,FLAGS` to the name. At login the store
//!
//! 1. moves every file from `new/` to `cur/` (`new/NAME` becomes
//!    `cur/NAME:2,`; a name that already has a `:` keeps it). A message that
//!    cannot be moved (no permission, full disk, a name already taken in
//!    `cur/`) is served from `new/` rather than failing the login;
//! 2. lists `cur/`;
//! 3. orders everything by delivery: the leading seconds of the file name,
//!    then the name.
//!
//! Only regular files count: names starting with `.` and entries that are
//! not regular files (symlinks, directories) are skipped, using the type
//! `readdir` reports so no file is `stat`ed. A directory that cannot be
//! read is an error, never an empty mailbox.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, RawDir, CWD};
use rustix::io::Errno;

use crate::arena::{Arena, Span};
use crate::name;
use crate::snapshot_cache::{self, Stamp};
use crate::{Order, StoreError};

/// The Maildir directory a message file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    /// `new/`: delivered, not yet seen by any reader.
    New,
    /// `cur/`: seen by a reader.
    Cur,
}

impl Dir {
    /// The directory's name in the Maildir.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Dir::New => "new",
            Dir::Cur => "cur",
        }
    }
}

/// One message file found by the snapshot: its name (in the listing's
/// arena) and its directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listed {
    /// Where the file name is in [`Listing::names`].
    pub(crate) name: Span,
    /// Where the file is.
    pub(crate) dir: Dir,
}

/// The message files of a Maildir, in directory order, with all their names
/// in one [`Arena`].
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// The file names.
    pub(crate) names: Arena,
    /// The files.
    pub(crate) files: Vec<Listed>,
    /// The stamps of `cur/` and `new/` before `cur/` was listed, when asked
    /// for (see [`snapshot_cache`](crate::snapshot_cache)).
    pub(crate) dir_stamps: Option<(Stamp, Stamp)>,
}

impl Listing {
    /// Adds a file.
    fn push(&mut self, dir: Dir, file_name: &[u8]) -> Result<(), StoreError> {
        let name = self.names.push(file_name).map_err(|_| too_many())?;
        self.files.push(Listed { name, dir });
        Ok(())
    }
}

/// The error for a Maildir whose names do not fit in an [`Arena`].
pub(crate) fn too_many() -> StoreError {
    StoreError::io(
        "listing the Maildir",
        io::Error::other("more message file names than a snapshot holds"),
    )
}

/// The ordering key of one listed file, kept together so that sorting
/// rarely looks at the names themselves.
#[derive(Debug, Clone, Copy)]
struct Key {
    /// Delivery seconds from the name, the first ordering key.
    secs: u64,
    /// The first 8 bytes of the name after those digits, big-endian, padded
    /// with zeros: orders most names delivered in the same second without
    /// reading the names themselves (see [`cmp_delivery`]).
    prefix: u64,
    /// The file's position in the listing.
    index: u32,
    /// How many digits the seconds were written with.
    digits: u16,
}

impl Key {
    fn new(index: u32, name: &[u8]) -> Key {
        let secs = name::delivery_seconds(name);
        let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
        let rest = name.get(digits..).unwrap_or_default();
        let mut prefix = [0u8; 8];
        for (to, from) in prefix.iter_mut().zip(rest) {
            *to = *from;
        }
        Key {
            secs,
            prefix: u64::from_be_bytes(prefix),
            index,
            digits: u16::try_from(digits).unwrap_or(u16::MAX),
        }
    }
}

/// The delivery order: seconds, then name, then `new/` before `cur/`.
///
/// Two names with the same seconds written with as many digits start with
/// the same digits, so their order is that of what follows, and the
/// prefixes decide it whenever they differ (file names hold no NUL, so the
/// zero padding sorts like the end of the name). Only the rest falls back
/// to comparing the names in the arena.
fn cmp_delivery(listing: &Listing, a: &Key, b: &Key) -> std::cmp::Ordering {
    a.secs.cmp(&b.secs).then_with(|| {
        let same_digits = a.secs != u64::MAX && a.digits == b.digits;
        if same_digits && a.prefix != b.prefix {
            return a.prefix.cmp(&b.prefix);
        }
        match (
            listing.files.get(a.index as usize),
            listing.files.get(b.index as usize),
        ) {
            (Some(x), Some(y)) => listing
                .names
                .get(x.name)
                .cmp(listing.names.get(y.name))
                .then(x.dir.cmp(&y.dir)),
            _ => a.index.cmp(&b.index),
        }
    })
}

/// A Maildir's root, `cur/` and `new/`, open: the snapshot lists the two
/// through these descriptors, so each listing walks no path again, and
/// stamps all three (see [`snapshot_cache`](crate::snapshot_cache)).
#[derive(Debug)]
pub(crate) struct Layout {
    root: OwnedFd,
    cur: OwnedFd,
    new: OwnedFd,
}

impl Layout {
    /// Opens `root`, then its `cur/` and `new/`: the check that `root` is a
    /// Maildir, done by the opens a listing needs anyway. Any of the three
    /// may be a symlink to a directory (admins move whole Maildirs).
    ///
    /// [`StoreError::NoSuchMailbox`] names the first that is missing or not
    /// a directory.
    pub(crate) fn open(root: &Path) -> Result<Layout, StoreError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let failed = |path: PathBuf, errno: Errno| match errno {
            Errno::NOENT | Errno::NOTDIR => StoreError::NoSuchMailbox(path),
            _ => StoreError::io(format!("looking up {}", path.display()), errno.into()),
        };
        let root_fd =
            openat(CWD, root, flags, Mode::empty()).map_err(|e| failed(root.to_path_buf(), e))?;
        let sub = |dir: Dir| {
            openat(&root_fd, dir.as_str(), flags, Mode::empty())
                .map_err(|e| failed(root.join(dir.as_str()), e))
        };
        let (cur, new) = (sub(Dir::Cur)?, sub(Dir::New)?);
        Ok(Layout {
            root: root_fd,
            cur,
            new,
        })
    }

    /// The root's stamp, when its file system keeps its times on this
    /// machine (see [`snapshot_cache`](crate::snapshot_cache)).
    pub(crate) fn stamp_root(&self) -> Option<Stamp> {
        if !snapshot_cache::is_local(&self.root) {
            return None;
        }
        Stamp::of(&self.root).ok()
    }
}

/// Moves `new/` into `cur/` and lists the messages, in directory order:
/// the caller looks at each name while it is fresh in the CPU cache, then
/// puts them in delivery order with [`delivery_order`]. With `stamp`, the
/// listing carries the stamps of `cur/` and `new/` taken after the moves
/// and before `cur/` is read.
pub(crate) fn take(root: &Path, layout: Layout, stamp: bool) -> Result<Listing, StoreError> {
    let new = root.join(Dir::New.as_str());
    let cur = root.join(Dir::Cur.as_str());
    // The names in new/ are only kept for the files that could not move.
    let mut in_new = Listing::default();
    list_open(&layout.new, &new, |file_name| {
        in_new.push(Dir::New, file_name)
    })?;
    let mut listing = Listing::default();
    for file in &in_new.files {
        let file_name = in_new.names.get(file.name);
        let target = cur.join(OsStr::from_bytes(&name::cur_name(file_name)));
        match crate::file::rename_noreplace(&new.join(OsStr::from_bytes(file_name)), &target) {
            Ok(()) => {}
            // Another reader moved it first: it is in cur/ now.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(_) => listing.push(Dir::New, file_name)?,
        }
    }
    drop(in_new);
    if stamp {
        if let (Ok(cur), Ok(new)) = (Stamp::of(&layout.cur), Stamp::of(&layout.new)) {
            listing.dir_stamps = Some((cur, new));
        }
    }
    list_open(&layout.cur, &cur, |file_name| {
        listing.push(Dir::Cur, file_name)
    })?;
    Ok(listing)
}

/// The positions in `listing` in delivery order: the delivery seconds of
/// each file, then its name (then `new/` before `cur/`), oldest or newest
/// first.
///
/// Sorts small keys rather than the entries themselves: the seconds, then
/// the name prefix, decide almost every comparison without reading the
/// names (see [`cmp_delivery`]).
pub(crate) fn delivery_order(listing: &Listing, order: Order) -> Vec<u32> {
    let mut keys: Vec<Key> = (0u32..)
        .zip(&listing.files)
        .map(|(index, file)| Key::new(index, listing.names.get(file.name)))
        .collect();
    keys.sort_unstable_by(|a, b| cmp_delivery(listing, a, b));
    let mut positions: Vec<u32> = keys.iter().map(|key| key.index).collect();
    if order == Order::NewestFirst {
        positions.reverse();
    }
    positions
}

/// How much of a directory one `getdents64` call reads: a few hundred
/// Maildir names.
const LIST_BUFFER: usize = 32 * 1024;

/// Calls `each` with the name of every regular file in `dir` not starting
/// with `.`, in directory order.
fn list(dir: &Path, each: impl FnMut(&[u8]) -> Result<(), StoreError>) -> Result<(), StoreError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let opened = openat(CWD, dir, flags, Mode::empty())
        .map_err(|errno| StoreError::io(format!("listing {}", dir.display()), errno.into()))?;
    list_open(opened, dir, each)
}

/// [`list`] on a directory already open as `opened` (its path, `dir`, only
/// names it in errors).
///
/// Reads with `getdents64` into one buffer that is never zeroed, rather
/// than `std::fs::read_dir` (which allocates twice per entry; a Maildir can
/// hold 100,000) or `opendir` (which also checks the descriptor three
/// times and rewinds it before closing).
fn list_open(
    opened: impl AsFd,
    dir: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let context = || format!("listing {}", dir.display());
    let mut buffer: Vec<u8> = Vec::with_capacity(LIST_BUFFER);
    let mut entries = RawDir::new(&opened, buffer.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(|errno| StoreError::io(context(), errno.into()))?;
        let file_name = entry.file_name().to_bytes();
        if file_name.first().is_none_or(|&b| b == b'.') {
            continue;
        }
        let is_file = match entry.file_type() {
            FileType::Unknown => {
                // The file system does not report types: ask without
                // following.
                match statat(&opened, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile,
                    Err(Errno::NOENT) => false,
                    Err(errno) => return Err(StoreError::io(context(), errno.into())),
                }
            }
            file_type => file_type == FileType::RegularFile,
        };
        if is_file {
            each(file_name)?;
        }
    }
    Ok(())
}

/// Finds a message by its unique name after its file was renamed by
/// another program (an IMAP server changing flags, another reader moving
/// `new/` to `cur/`). Searches `cur/`, and `new/` first when the message was
/// last seen there. Returns the directory and the current file name.
pub(crate) fn find_unique(
    root: &Path,
    last_seen: Dir,
    unique: &[u8],
) -> Result<Option<(Dir, OsString)>, StoreError> {
    let dirs: &[Dir] = match last_seen {
        Dir::New => &[Dir::New, Dir::Cur],
        Dir::Cur => &[Dir::Cur],
    };
    for &dir in dirs {
        let mut found = None;
        list(&root.join(dir.as_str()), |file_name| {
            if found.is_none() && name::unique_name(file_name) == unique {
                found = Some(OsStr::from_bytes(file_name).to_os_string());
            }
            Ok(())
        })?;
        if let Some(file_name) = found {
            return Ok(Some((dir, file_name)));
        }
    }
    Ok(None)
}

/// Every message file of `new/` and `cur/` by unique name, for finding
/// many renamed messages with one listing (`cur/` wins over `new/`).
pub(crate) fn index_by_unique(
    root: &Path,
) -> Result<HashMap<Vec<u8>, (Dir, OsString)>, StoreError> {
    let mut index = HashMap::new();
    for dir in [Dir::New, Dir::Cur] {
        list(&root.join(dir.as_str()), |file_name| {
            let unique = name::unique_name(file_name).to_vec();
            index.insert(unique, (dir, OsStr::from_bytes(file_name).to_os_string()));
            Ok(())
        })?;
    }
    Ok(index)
}

/// The path of a message file.
pub(crate) fn path(root: &Path, dir: Dir, file_name: &OsStr) -> PathBuf {
    let mut path = root.join(dir.as_str());
    path.push(file_name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn maildir() -> io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        Ok(dir)
    }

    /// The files of the snapshot in delivery order: directory and name.
    fn take_sorted(root: &Path, order: Order) -> Result<Vec<(Dir, String)>, StoreError> {
        let listing = take(root, Layout::open(root)?, false)?;
        Ok(sorted(&listing, order))
    }

    fn sorted(listing: &Listing, order: Order) -> Vec<(Dir, String)> {
        delivery_order(listing, order)
            .into_iter()
            .filter_map(|index| listing.files.get(index as usize))
            .map(|l| {
                (
                    l.dir,
                    listing.names.os_str(l.name).to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn layout_needs_root_cur_and_new() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("Maildir");
        assert!(matches!(Layout::open(&root), Err(StoreError::NoSuchMailbox(p)) if p == root));
        fs::create_dir(&root)?;
        fs::create_dir(root.join("new"))?;
        assert!(
            matches!(Layout::open(&root), Err(StoreError::NoSuchMailbox(p)) if p == root.join("cur"))
        );
        fs::write(root.join("cur"), b"")?;
        assert!(matches!(
            Layout::open(&root),
            Err(StoreError::NoSuchMailbox(_))
        ));
        fs::remove_file(root.join("cur"))?;
        fs::create_dir(root.join("cur"))?;
        Layout::open(&root)?;
        fs::remove_dir(root.join("new"))?;
        assert!(matches!(
            Layout::open(&root),
            Err(StoreError::NoSuchMailbox(_))
        ));
        Ok(())
    }

    #[test]
    fn moves_new_to_cur_and_orders_by_delivery() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::write(root.join("new/300.b.host"), b"")?;
        fs::write(root.join("new/100.z.host:2,F"), b"")?;
        fs::write(root.join("cur/200.a.host:2,S"), b"")?;
        fs::write(root.join("cur/300.a.host:2,"), b"")?;
        fs::write(root.join("cur/99.late.host:2,"), b"")?;
        let listed = take_sorted(root, Order::OldestFirst)?;
        let expected = [
            "99.late.host:2,",
            "100.z.host:2,F",
            "200.a.host:2,S",
            "300.a.host:2,",
            "300.b.host:2,",
        ];
        assert_eq!(listed, expected.map(|n| (Dir::Cur, n.to_string())).to_vec());
        assert_eq!(fs::read_dir(root.join("new"))?.count(), 0);
        assert!(root.join("cur/300.b.host:2,").is_file());

        let newest = take_sorted(root, Order::NewestFirst)?;
        let mut reversed = expected.map(|n| (Dir::Cur, n.to_string())).to_vec();
        reversed.reverse();
        assert_eq!(newest, reversed);
        Ok(())
    }

    #[test]
    fn delivery_order_is_seconds_then_name_then_dir() -> Result<(), StoreError> {
        let names = [
            "",
            "0",
            "00",
            "1",
            "01",
            "001.a",
            "1.a",
            "1.ab",
            "1.a.b",
            "1.abcdefgh",
            "1.abcdefghi",
            "1.abcdefgg",
            "1.abcdefg",
            "10.x",
            "010.x",
            "2",
            "2.M1P1.host",
            "2.M1P1.host:2,S",
            "2.M10P1.host",
            "2.M2P1.host",
            "x",
            "x.y",
            "99999999999999999999.a",
            "99999999999999999999.b",
            "88888888888888888888.c",
            "999999999999999999999.a",
            "1700000000.M1P2.host,S=5:2,",
            "1700000000.M1P2.host,S=5:2,S",
            "1700000000.M1P20.host",
            "1700000000.M1P3.host",
        ];
        let mut listing = Listing::default();
        for name in names.iter().rev() {
            for dir in [Dir::New, Dir::Cur] {
                listing.push(dir, name.as_bytes())?;
            }
        }
        let mut expected: Vec<(u64, Vec<u8>, Dir)> = names
            .iter()
            .flat_map(|name| {
                [Dir::Cur, Dir::New].map(|dir| {
                    (
                        name::delivery_seconds(name.as_bytes()),
                        name.as_bytes().to_vec(),
                        dir,
                    )
                })
            })
            .collect();
        expected.sort();
        for order in [Order::OldestFirst, Order::NewestFirst] {
            let got: Vec<(u64, Vec<u8>, Dir)> = sorted(&listing, order)
                .into_iter()
                .map(|(dir, name)| {
                    (
                        name::delivery_seconds(name.as_bytes()),
                        name.into_bytes(),
                        dir,
                    )
                })
                .collect();
            let mut want = expected.clone();
            if order == Order::NewestFirst {
                want.reverse();
            }
            assert_eq!(got, want, "{order:?}");
        }
        Ok(())
    }

    #[test]
    fn a_message_that_cannot_move_is_served_from_new() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::write(root.join("new/1.x.host"), b"new copy")?;
        fs::write(root.join("cur/1.x.host:2,"), b"other file, same name")?;
        let listed = take_sorted(root, Order::OldestFirst)?;
        assert_eq!(
            listed,
            [
                (Dir::New, "1.x.host".to_string()),
                (Dir::Cur, "1.x.host:2,".to_string())
            ]
        );
        assert_eq!(
            fs::read(root.join("cur/1.x.host:2,"))?,
            b"other file, same name"
        );
        Ok(())
    }

    #[test]
    fn skips_dot_files_symlinks_and_directories() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::write(root.join("cur/.hidden"), b"")?;
        fs::write(root.join("new/.hidden"), b"")?;
        fs::create_dir(root.join("cur/1.dir.host"))?;
        fs::write(root.join("secret"), b"")?;
        std::os::unix::fs::symlink(root.join("secret"), root.join("cur/2.link.host:2,"))?;
        std::os::unix::fs::symlink(root.join("secret"), root.join("new/3.link.host"))?;
        fs::write(root.join("cur/4.real.host:2,"), b"")?;
        let listed = take_sorted(root, Order::OldestFirst)?;
        assert_eq!(listed, [(Dir::Cur, "4.real.host:2,".to_string())]);
        assert!(
            root.join("new/3.link.host").is_symlink(),
            "symlink not moved"
        );
        Ok(())
    }

    #[test]
    fn unreadable_cur_is_an_error_not_an_empty_mailbox() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::remove_dir(root.join("cur"))?;
        fs::write(root.join("cur"), b"")?;
        let result = list(&root.join("cur"), |_| Ok(()));
        assert!(matches!(result, Err(StoreError::Io { .. })));
        Ok(())
    }

    #[test]
    fn finds_a_renamed_message_by_unique_name() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::write(root.join("cur/1.x.host:2,RS"), b"")?;
        fs::write(root.join("cur/1.xy.host:2,"), b"")?;
        assert_eq!(
            find_unique(root, Dir::Cur, b"1.x.host")?,
            Some((Dir::Cur, OsString::from("1.x.host:2,RS")))
        );
        assert_eq!(
            find_unique(root, Dir::New, b"1.x.host")?,
            Some((Dir::Cur, OsString::from("1.x.host:2,RS")))
        );
        assert_eq!(find_unique(root, Dir::Cur, b"1.z.host")?, None);

        fs::write(root.join("new/2.n.host"), b"")?;
        let index = index_by_unique(root)?;
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.get(&b"1.x.host"[..]),
            Some(&(Dir::Cur, OsString::from("1.x.host:2,RS")))
        );
        assert_eq!(
            index.get(&b"2.n.host"[..]),
            Some(&(Dir::New, OsString::from("2.n.host")))
        );
        Ok(())
    }
}
