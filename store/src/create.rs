//! A Maildir that is not there yet: created at the first login or the
//! first delivery.
//!
//! On a host whose MTA creates each Maildir at the first delivery, a user
//! may log in before any mail came; Dovecot answers with an empty mailbox,
//! and so does popgate. [`ensure_maildir`] creates the Maildir root, with
//! any missing parents, and whichever of `cur/`, `new/` and `tmp/` is
//! missing, each with mode 0700. What exists is left as it is: the root may
//! be a symlink (admins move whole Maildirs), and `cur/` or `new/` may be
//! one when the reader is to follow it; delivery opens `tmp/` and `new/`
//! again without following symlinks (see [`crate::deliver`]).
//!
//! The store knows no users. The caller runs these calls with the
//! filesystem identity of the Maildir's owner (the gateway switches the
//! thread's fsuid and fsgid), so what is created belongs to the owner, and
//! a place the owner may not write is refused by the kernel as it would be
//! for them.
//!
//! Every failure is temporary ([`StoreError::Io`], `[SYS/TEMP]` for a POP3
//! login): a path that exists but is not a directory (a regular file, a
//! symlink to nothing), or that cannot be created. Paths in its messages
//! are quoted and escaped (`{:?}`), as anything a user may have named.

use std::fs::DirBuilder;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rustix::fs::{mkdirat, openat, statat, AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::StoreError;

/// The directories of a Maildir, in the order they are created.
const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

/// The mode of every directory created: the owner's alone.
const DIR_MODE: u32 = 0o700;

/// Makes sure `maildir` is a Maildir: creates it, its missing parents and
/// its missing `cur/`, `new/` and `tmp/` (mode 0700). Call it with the
/// owner's filesystem identity when [`Mailbox::open`](crate::Mailbox::open)
/// finds no Maildir ([`StoreError::NoSuchMailbox`]), then open again.
///
/// Errors ([`StoreError::Io`], temporary): `maildir` or one of its three
/// directories exists but is not a directory, or cannot be created.
pub fn ensure_maildir(maildir: &Path) -> Result<(), StoreError> {
    open_root(maildir).map(drop)
}

/// [`ensure_maildir`], keeping the root open for what comes next.
pub(crate) fn open_root(maildir: &Path) -> Result<OwnedFd, StoreError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = match openat(CWD, maildir, flags, Mode::empty()) {
        Ok(root) => root,
        Err(Errno::NOENT) => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(maildir)
                .map_err(|err| StoreError::io(format!("creating the Maildir {maildir:?}"), err))?;
            openat(CWD, maildir, flags, Mode::empty()).map_err(|errno| opening(maildir, errno))?
        }
        Err(errno) => return Err(opening(maildir, errno)),
    };
    for sub in SUBDIRS {
        let context = || format!("creating {:?}", maildir.join(sub));
        // Looked up before mkdir: nearly every login finds it there, and
        // mkdir locks the whole Maildir directory even to say it exists.
        // Whatever was there already must be a directory now; a symlink
        // to nothing is not.
        let stat = match statat(&root, sub, AtFlags::empty()) {
            Err(Errno::NOENT) => {
                match mkdirat(&root, sub, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(errno) => return Err(StoreError::io(context(), errno.into())),
                }
                statat(&root, sub, AtFlags::empty())
            }
            looked_up => looked_up,
        }
        .map_err(|errno| StoreError::io(context(), errno.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(StoreError::io(context(), Errno::NOTDIR.into()));
        }
    }
    Ok(root)
}

/// The error for a Maildir root that cannot be opened.
fn opening(maildir: &Path, errno: Errno) -> StoreError {
    let context = match errno {
        Errno::NOTDIR => format!("the Maildir {maildir:?} is not a directory"),
        _ => format!("opening the Maildir {maildir:?}"),
    };
    StoreError::io(context, io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_maildir_and_its_parents_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("home/ann/mail/Maildir");
        ensure_maildir(&maildir).unwrap();
        for sub in SUBDIRS {
            assert!(maildir.join(sub).is_dir(), "{sub}");
            assert_eq!(mode(&maildir.join(sub)), 0o700, "{sub}");
        }
        assert_eq!(mode(&maildir), 0o700);
        assert_eq!(mode(&dir.path().join("home/ann")), 0o700);
        // A second call changes nothing and succeeds.
        ensure_maildir(&maildir).unwrap();
    }

    #[test]
    fn missing_subdirectories_are_added_and_existing_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        fs::create_dir_all(maildir.join("cur")).unwrap();
        fs::write(maildir.join("cur/1.x:2,"), b"kept").unwrap();
        ensure_maildir(&maildir).unwrap();
        assert!(maildir.join("new").is_dir() && maildir.join("tmp").is_dir());
        assert_eq!(fs::read(maildir.join("cur/1.x:2,")).unwrap(), b"kept");
    }

    #[test]
    fn a_symlinked_root_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        symlink(dir.path().join("real"), dir.path().join("Maildir")).unwrap();
        ensure_maildir(&dir.path().join("Maildir")).unwrap();
        assert!(dir.path().join("real/new").is_dir());
    }

    #[test]
    fn what_is_not_a_directory_is_a_temporary_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"not a Maildir").unwrap();
        let error = ensure_maildir(&file).unwrap_err();
        assert!(error.is_temporary());
        assert!(error.to_string().contains("is not a directory"), "{error}");

        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(ensure_maildir(&dangling).unwrap_err().is_temporary());
        assert!(!dir.path().join("nowhere").exists());

        let maildir = dir.path().join("Maildir");
        fs::create_dir(&maildir).unwrap();
        fs::write(maildir.join("tmp"), b"").unwrap();
        assert!(ensure_maildir(&maildir).unwrap_err().is_temporary());
        fs::remove_file(maildir.join("tmp")).unwrap();
        symlink(dir.path().join("nowhere"), maildir.join("tmp")).unwrap();
        assert!(ensure_maildir(&maildir).unwrap_err().is_temporary());
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn paths_in_errors_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("evil\nname");
        fs::write(&file, b"").unwrap();
        let text = ensure_maildir(&file).unwrap_err().to_string();
        assert!(
            !text.contains('\n') && text.contains("evil\\nname"),
            "{text}"
        );
    }
}
