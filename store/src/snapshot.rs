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
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Type;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::name;
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

/// One message file found by the snapshot.
#[derive(Debug)]
pub(crate) struct Listed {
    /// Where the file is.
    pub(crate) dir: Dir,
    /// Its file name.
    pub(crate) name: OsString,
    /// Delivery seconds from the name, the first ordering key.
    secs: u64,
    /// How many digits the seconds were written with.
    digits: usize,
    /// The first 8 bytes of the name after those digits, big-endian, padded
    /// with zeros: orders most names delivered in the same second without
    /// reading the names themselves (see [`cmp_delivery`]).
    prefix: u64,
}

impl Listed {
    fn new(dir: Dir, name: OsString) -> Listed {
        let bytes = name.as_bytes();
        let secs = name::delivery_seconds(bytes);
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let rest = bytes.get(digits..).unwrap_or_default();
        let mut prefix = [0u8; 8];
        for (to, from) in prefix.iter_mut().zip(rest) {
            *to = *from;
        }
        Listed {
            dir,
            name,
            secs,
            digits,
            prefix: u64::from_be_bytes(prefix),
        }
    }
}

/// The delivery order: seconds, then name, then `new/` before `cur/`.
///
/// Two names with the same seconds written with as many digits start with
/// the same digits, so their order is that of what follows, and the
/// prefixes decide it whenever they differ (file names hold no NUL, so the
/// zero padding sorts like the end of the name). Only the rest falls back
/// to comparing the names, which are scattered over the heap.
fn cmp_delivery(a: &Listed, b: &Listed) -> std::cmp::Ordering {
    a.secs
        .cmp(&b.secs)
        .then_with(|| {
            let same_digits = a.secs != u64::MAX && a.digits == b.digits;
            if same_digits && a.prefix != b.prefix {
                a.prefix.cmp(&b.prefix)
            } else {
                a.name.as_bytes().cmp(b.name.as_bytes())
            }
        })
        .then(a.dir.cmp(&b.dir))
}

/// Checks that `root` is a Maildir: a directory with `cur/` and `new/`.
pub(crate) fn check_layout(root: &Path) -> Result<(), StoreError> {
    for path in [
        root.to_path_buf(),
        root.join(Dir::Cur.as_str()),
        root.join(Dir::New.as_str()),
    ] {
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(StoreError::NoSuchMailbox(path)),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(StoreError::NoSuchMailbox(path))
            }
            Err(err) => {
                return Err(StoreError::io(
                    format!("looking up {}", path.display()),
                    err,
                ))
            }
        }
    }
    Ok(())
}

/// Moves `new/` into `cur/` and lists the messages, in directory order:
/// the caller looks at each name while it is fresh in the CPU cache, then
/// puts them in delivery order with [`sort`].
pub(crate) fn take(root: &Path) -> Result<Vec<Listed>, StoreError> {
    let new = root.join(Dir::New.as_str());
    let cur = root.join(Dir::Cur.as_str());
    let mut listed = Vec::new();
    for file_name in list(&new)? {
        let target = cur.join(OsStr::from_bytes(&name::cur_name(file_name.as_bytes())));
        match crate::file::rename_noreplace(&new.join(&file_name), &target) {
            Ok(()) => {}
            // Another reader moved it first: it is in cur/ now.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(_) => listed.push(Listed::new(Dir::New, file_name)),
        }
    }
    let in_cur = list(&cur)?;
    listed.reserve(in_cur.len());
    listed.extend(in_cur.into_iter().map(|name| Listed::new(Dir::Cur, name)));
    Ok(listed)
}

/// The positions of `listed` in delivery order: the delivery seconds of
/// each file, then its name (then `new/` before `cur/`), oldest or newest
/// first.
///
/// Sorts small keys rather than the entries themselves: the seconds, then
/// the name prefix, decide almost every comparison without reading the
/// names (see [`cmp_delivery`]).
pub(crate) fn delivery_order(listed: &[Listed], order: Order) -> Vec<usize> {
    let mut keys: Vec<(u64, usize)> = listed
        .iter()
        .enumerate()
        .map(|(index, entry)| (entry.secs, index))
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| match (listed.get(a.1), listed.get(b.1)) {
                (Some(x), Some(y)) => cmp_delivery(x, y),
                _ => a.1.cmp(&b.1),
            })
    });
    let mut positions: Vec<usize> = keys.into_iter().map(|(_, index)| index).collect();
    if order == Order::NewestFirst {
        positions.reverse();
    }
    positions
}

/// The names of the regular files in `dir` not starting with `.`.
///
/// Read with `readdir` directly rather than `std::fs::read_dir`, which
/// allocates twice per entry: a Maildir can hold 100,000 of them.
fn list(dir: &Path) -> Result<Vec<OsString>, StoreError> {
    let context = || format!("listing {}", dir.display());
    let mut handle = nix::dir::Dir::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| StoreError::io(context(), errno.into()))?;
    let mut names = Vec::new();
    for entry in handle.iter() {
        let entry = entry.map_err(|errno| StoreError::io(context(), errno.into()))?;
        let file_name = entry.file_name().to_bytes();
        if file_name.first().is_none_or(|&b| b == b'.') {
            continue;
        }
        let is_file = match entry.file_type() {
            Some(file_type) => file_type == Type::File,
            // The file system does not report types: ask without following.
            None => match fs::symlink_metadata(dir.join(OsStr::from_bytes(file_name))) {
                Ok(metadata) => metadata.is_file(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => false,
                Err(err) => return Err(StoreError::io(context(), err)),
            },
        };
        if is_file {
            names.push(OsStr::from_bytes(file_name).to_os_string());
        }
    }
    Ok(names)
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
        let found = list(&root.join(dir.as_str()))?
            .into_iter()
            .find(|file_name| name::unique_name(file_name.as_bytes()) == unique);
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
        for file_name in list(&root.join(dir.as_str()))? {
            let unique = name::unique_name(file_name.as_bytes()).to_vec();
            index.insert(unique, (dir, file_name));
        }
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

    fn maildir() -> io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        Ok(dir)
    }

    fn take_sorted(root: &Path, order: Order) -> Result<Vec<Listed>, StoreError> {
        let listed = take(root)?;
        let positions = delivery_order(&listed, order);
        let mut slots: Vec<Option<Listed>> = listed.into_iter().map(Some).collect();
        Ok(positions
            .into_iter()
            .filter_map(|index| slots.get_mut(index)?.take())
            .collect())
    }

    fn names(listed: &[Listed]) -> Vec<(Dir, String)> {
        listed
            .iter()
            .map(|l| (l.dir, l.name.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn layout_needs_root_cur_and_new() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("Maildir");
        assert!(matches!(check_layout(&root), Err(StoreError::NoSuchMailbox(p)) if p == root));
        fs::create_dir(&root)?;
        fs::create_dir(root.join("new"))?;
        assert!(
            matches!(check_layout(&root), Err(StoreError::NoSuchMailbox(p)) if p == root.join("cur"))
        );
        fs::write(root.join("cur"), b"")?;
        assert!(matches!(
            check_layout(&root),
            Err(StoreError::NoSuchMailbox(_))
        ));
        fs::remove_file(root.join("cur"))?;
        fs::create_dir(root.join("cur"))?;
        check_layout(&root)?;
        fs::remove_dir(root.join("new"))?;
        assert!(matches!(
            check_layout(&root),
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
        assert_eq!(
            names(&listed),
            expected.map(|n| (Dir::Cur, n.to_string())).to_vec()
        );
        assert_eq!(fs::read_dir(root.join("new"))?.count(), 0);
        assert!(root.join("cur/300.b.host:2,").is_file());

        let newest = take_sorted(root, Order::NewestFirst)?;
        let mut reversed = expected.map(|n| (Dir::Cur, n.to_string())).to_vec();
        reversed.reverse();
        assert_eq!(names(&newest), reversed);
        Ok(())
    }

    #[test]
    fn delivery_order_is_seconds_then_name_then_dir() {
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
        let mut listed: Vec<Listed> = names
            .iter()
            .flat_map(|name| [Dir::Cur, Dir::New].map(|dir| Listed::new(dir, OsString::from(name))))
            .collect();
        listed.reverse();
        let mut expected: Vec<(u64, Vec<u8>, Dir)> = listed
            .iter()
            .map(|l| (l.secs, l.name.as_bytes().to_vec(), l.dir))
            .collect();
        expected.sort();
        for order in [Order::OldestFirst, Order::NewestFirst] {
            let got: Vec<(u64, Vec<u8>, Dir)> = delivery_order(&listed, order)
                .into_iter()
                .filter_map(|index| listed.get(index))
                .map(|l| (l.secs, l.name.as_bytes().to_vec(), l.dir))
                .collect();
            let mut want = expected.clone();
            if order == Order::NewestFirst {
                want.reverse();
            }
            assert_eq!(got, want, "{order:?}");
        }
    }

    #[test]
    fn a_message_that_cannot_move_is_served_from_new() -> Result<(), Box<dyn std::error::Error>> {
        let dir = maildir()?;
        let root = dir.path();
        fs::write(root.join("new/1.x.host"), b"new copy")?;
        fs::write(root.join("cur/1.x.host:2,"), b"other file, same name")?;
        let listed = take_sorted(root, Order::OldestFirst)?;
        assert_eq!(
            names(&listed),
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
        assert_eq!(names(&listed), [(Dir::Cur, "4.real.host:2,".to_string())]);
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
        let result = take_sorted(root, Order::OldestFirst);
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
