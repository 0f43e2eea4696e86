//! Careful file operations: open without following symlinks, rename
//! without replacing.
//!
//! A session may read or remove only what its user could, and never
//! through a link someone planted in the Maildir: message files are opened
//! with `O_NOFOLLOW` and must turn out to be regular files. `O_NONBLOCK`
//! keeps a FIFO planted under a message's name from hanging the open; it
//! has no effect on reading regular files.
//!
//! [`open_regular_cached`] does the same open only when the kernel can do
//! it from its caches (see [`crate::read`]).
//!
//! Renames inside the Maildir (new→cur, adding a flag, moving to a folder)
//! must never overwrite another message, so they use `renameat2` with
//! `RENAME_NOREPLACE`, falling back to a check-then-rename where the file
//! system does not support the flag.
//!
//! Delivery works relative to directory descriptors instead of paths
//! ([`open_subdir`], [`rename_noreplace_at`]): a directory below the
//! Maildir root is opened once, without following a symlink, and every
//! later step happens inside that very directory, whatever is renamed
//! meanwhile.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::libc;

/// Why a message file could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Nothing at that path.
    NotFound,
    /// A symlink, directory or special file.
    NotRegular,
    /// Any other failure.
    Io(io::Error),
}

/// Opens a message file for reading, refusing anything that is not a
/// regular file. Returns the file and its length on disk.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ENOENT) => OpenError::NotFound,
            Some(libc::ELOOP) => OpenError::NotRegular,
            _ => OpenError::Io(err),
        })?;
    let metadata = file.metadata().map_err(OpenError::Io)?;
    if !metadata.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((file, metadata.len()))
}

/// Like [`open_regular`], but only when every component of `path` is in
/// the kernel's lookup cache, so the open cannot wait for the disk
/// (`openat2` with `RESOLVE_CACHED`, Linux 5.12). `Ok(None)` when it would
/// have to wait, or the kernel does not know the flag: then call
/// [`open_regular`] on a thread that may block.
pub(crate) fn open_regular_cached(path: &Path) -> Result<Option<(File, u64)>, OpenError> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
    use rustix::io::Errno;

    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
        Ok(fd) => fd,
        Err(Errno::AGAIN | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => return Ok(None),
        Err(Errno::NOENT) => return Err(OpenError::NotFound),
        Err(Errno::LOOP) => return Err(OpenError::NotRegular),
        Err(errno) => return Err(OpenError::Io(errno.into())),
    };
    let file = File::from(fd);
    let metadata = file.metadata().map_err(OpenError::Io)?;
    if !metadata.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok(Some((file, metadata.len())))
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of
/// replacing an existing `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system does not know the flag (older NFS, some FUSE).
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    match std::fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
        Err(err) => Err(err),
    }
}

/// Opens the directory `name` inside `dir` without following a symlink:
/// a symlink (or anything else that is not a directory) in its place is
/// an error (`ELOOP` or `ENOTDIR`), never the place it points to.
pub(crate) fn open_subdir(dir: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    use rustix::fs::{openat, Mode, OFlags};

    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(openat(dir, name, flags, Mode::empty())?)
}

/// Renames `from` in `from_dir` to `to` in `to_dir`, failing with
/// `AlreadyExists` instead of replacing an existing `to`; the descriptor
/// counterpart of [`rename_noreplace`].
pub(crate) fn rename_noreplace_at(
    from_dir: impl AsFd,
    from: &str,
    to_dir: impl AsFd,
    to: &str,
) -> io::Result<()> {
    use rustix::fs::{renameat, renameat_with, statat, AtFlags, RenameFlags};
    use rustix::io::Errno;

    match renameat_with(&from_dir, from, &to_dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        // The file system does not know the flag (older NFS, some FUSE).
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        Err(errno) => return Err(errno.into()),
    }
    match statat(&to_dir, to, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{to:?} already exists"),
        )),
        Err(Errno::NOENT) => Ok(renameat(from_dir, from, to_dir, to)?),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn opens_regular_files_with_their_length() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m");
        fs::write(&path, b"hello")?;
        let (_, len) = open_regular(&path).map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(len, 5);
        Ok(())
    }

    #[test]
    fn a_cached_open_finds_a_file_just_written() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m");
        fs::write(&path, b"hello")?;
        let opened = open_regular_cached(&path).map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(opened.map(|(_, len)| len), Some(5));
        Ok(())
    }

    #[test]
    fn a_cached_open_refuses_what_open_regular_refuses() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("target"), b"secret")?;
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link"))?;
        fs::create_dir(dir.path().join("sub"))?;
        assert!(matches!(
            open_regular_cached(&dir.path().join("link")),
            Err(OpenError::NotRegular)
        ));
        assert!(matches!(
            open_regular_cached(&dir.path().join("sub")),
            Err(OpenError::NotRegular)
        ));
        // A name the lookup cache knows to be absent, or one it does not
        // know at all: either way no file is opened.
        assert!(matches!(
            open_regular_cached(&dir.path().join("missing")),
            Err(OpenError::NotFound) | Ok(None)
        ));
        Ok(())
    }

    #[test]
    fn refuses_symlinks_directories_and_missing_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("target"), b"secret")?;
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link"))?;
        fs::create_dir(dir.path().join("sub"))?;
        assert!(matches!(
            open_regular(&dir.path().join("link")),
            Err(OpenError::NotRegular)
        ));
        assert!(matches!(
            open_regular(&dir.path().join("sub")),
            Err(OpenError::NotRegular)
        ));
        assert!(matches!(
            open_regular(&dir.path().join("missing")),
            Err(OpenError::NotFound)
        ));
        Ok(())
    }

    #[test]
    fn fifo_is_refused_without_hanging() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .map_err(io::Error::from)?;
        assert!(matches!(open_regular(&path), Err(OpenError::NotRegular)));
        Ok(())
    }

    #[test]
    fn rename_never_replaces() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, b"a")?;
        fs::write(&b, b"b")?;
        let err = rename_noreplace(&a, &b).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read(&b)?, b"b");
        rename_noreplace(&a, &c)?;
        assert_eq!(fs::read(&c)?, b"a");
        assert!(!a.exists());
        Ok(())
    }

    #[test]
    fn subdirectories_open_only_when_they_are_no_symlink() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("real"))?;
        fs::write(dir.path().join("file"), b"x")?;
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link"))?;
        let root = File::open(dir.path())?;
        assert!(open_subdir(&root, "real").is_ok());
        for name in ["link", "file", "missing"] {
            assert!(open_subdir(&root, name).is_err(), "{name}");
        }
        Ok(())
    }

    #[test]
    fn a_rename_between_directories_never_replaces() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        for sub in ["a", "b"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        fs::write(dir.path().join("a/m"), b"new")?;
        fs::write(dir.path().join("b/m"), b"old")?;
        let (a, b) = (
            File::open(dir.path().join("a"))?,
            File::open(dir.path().join("b"))?,
        );
        let err = rename_noreplace_at(&a, "m", &b, "m")
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read(dir.path().join("b/m"))?, b"old");
        rename_noreplace_at(&a, "m", &b, "n")?;
        assert_eq!(fs::read(dir.path().join("b/n"))?, b"new");
        assert!(!dir.path().join("a/m").exists());
        Ok(())
    }
}
