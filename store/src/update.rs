//! UPDATE: what happens to the messages marked deleted after QUIT.
//!
//! [`Mailbox::commit`](crate::Mailbox::commit) hands the deleted indices
//! here, and the mailbox's [`OnDele`] policy decides:
//!
//! | policy | on disk |
//! | --- | --- |
//! | `delete` | the file is unlinked |
//! | `keep`, `mark-seen` | the file is renamed to add the `S` flag (`cur/NAME:2,FR` → `cur/NAME:2,FRS`) |
//! | `move:F` | the file is renamed, with the `S` flag, into `.F/cur/` (the folder is created when missing) |
//!
//! Every step is a single `unlink` or `rename` of one file, so nothing is
//! ever half-written, and a rename never replaces an existing file. A
//! message that fails is reported and the others are still applied. A
//! message renamed by another program since the snapshot is found again by
//! its unique name; one that is gone counts as deleted for `delete` and as
//! [`StoreError::Vanished`] otherwise.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::file::rename_noreplace;
use crate::mailbox::MessageFile;
use crate::policy::validate_folder;
use crate::snapshot::{self, Dir};
use crate::{name, Mailbox, OnDele, StoreError};

/// The empty file that marks a Maildir++ folder.
const MAILDIRFOLDER: &str = "maildirfolder";

/// What [`Mailbox::commit`](crate::Mailbox::commit) did.
#[derive(Debug, Default)]
pub struct CommitReport {
    /// How many messages the policy was applied to.
    pub applied: usize,
    /// The messages it could not be applied to (0-based index and why), in
    /// index order.
    pub failed: Vec<(usize, StoreError)>,
}

impl CommitReport {
    /// `true` when every message was dealt with.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What to do with each deleted message, worked out once per commit.
enum Action {
    /// Unlink the file.
    Delete,
    /// Add the `S` flag (moving a file still in `new/` to `cur/`).
    MarkSeen,
    /// Rename into this directory (a folder's `cur/`), adding `S`.
    MoveTo(PathBuf),
    /// The `move:` folder name is unsafe.
    InvalidFolder(String),
    /// The `move:` folder could not be created: what was tried and the
    /// error, kept as parts so each failed message gets its own
    /// [`StoreError`].
    FolderUnavailable(String, io::ErrorKind, String),
}

/// Applies the mailbox's policy to `deleted`.
pub(crate) fn apply(mailbox: &Mailbox, deleted: &[usize]) -> CommitReport {
    let mut indices = deleted.to_vec();
    indices.sort_unstable();
    indices.dedup();
    let action = match &mailbox.on_dele {
        OnDele::Delete => Action::Delete,
        OnDele::Keep | OnDele::MarkSeen => Action::MarkSeen,
        OnDele::Move(folder) => prepare_folder(&mailbox.root, folder),
    };
    let mut renamed = Renamed {
        root: &mailbox.root,
        by_unique: None,
    };
    let mut report = CommitReport::default();
    for index in indices {
        let result = match mailbox.file(index) {
            Some(message) => apply_one(&mut renamed, message, &action),
            None => Err(StoreError::NoSuchMessage(index)),
        };
        match result {
            Ok(()) => report.applied += 1,
            Err(err) => report.failed.push((index, err)),
        }
    }
    report
}

/// Applies the action to one message.
fn apply_one(
    renamed: &mut Renamed<'_>,
    message: MessageFile<'_>,
    action: &Action,
) -> Result<(), StoreError> {
    let cur = renamed.root.join(Dir::Cur.as_str());
    match action {
        Action::Delete => {
            match renamed.at_current_name(message, |path, _, _| fs::remove_file(path)) {
                // Gone already: that is what was asked for.
                Err(StoreError::Vanished) => Ok(()),
                other => other,
            }
        }
        Action::MarkSeen => renamed.at_current_name(message, |path, dir, file_name| {
            match (dir, name::with_seen_flag(file_name.as_bytes())) {
                (Dir::Cur, None) => Ok(()),
                (_, seen) => {
                    let new_name = seen.unwrap_or_else(|| file_name.as_bytes().to_vec());
                    rename_noreplace(path, &cur.join(OsStr::from_bytes(&new_name)))
                }
            }
        }),
        Action::MoveTo(folder_cur) => renamed.at_current_name(message, |path, _, file_name| {
            let new_name = name::with_seen_flag(file_name.as_bytes())
                .unwrap_or_else(|| file_name.as_bytes().to_vec());
            rename_noreplace(path, &folder_cur.join(OsStr::from_bytes(&new_name)))
        }),
        Action::InvalidFolder(folder) => Err(StoreError::InvalidFolder(folder.clone())),
        Action::FolderUnavailable(context, kind, text) => Err(StoreError::io(
            context.clone(),
            io::Error::new(*kind, text.clone()),
        )),
    }
}

/// Finds messages that another program renamed since the snapshot. The
/// Maildir is listed at most once per commit, however many are missing.
struct Renamed<'a> {
    root: &'a Path,
    by_unique: Option<HashMap<Vec<u8>, (Dir, OsString)>>,
}

impl Renamed<'_> {
    /// Runs `op` on the message's file (path, directory, file name). When
    /// the file is not at its snapshot name any more, it is looked up by its
    /// unique name and `op` runs once more on what is found;
    /// [`StoreError::Vanished`] when it is gone.
    fn at_current_name<F>(&mut self, message: MessageFile<'_>, op: F) -> Result<(), StoreError>
    where
        F: Fn(&Path, Dir, &OsStr) -> io::Result<()>,
    {
        let path = snapshot::path(self.root, message.dir, message.name);
        match op(&path, message.dir, message.name) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(StoreError::io(format!("updating {}", path.display()), err))
            }
            Err(_) => {}
        }
        let by_unique = match &mut self.by_unique {
            Some(by_unique) => by_unique,
            empty => empty.insert(snapshot::index_by_unique(self.root)?),
        };
        let Some((dir, file_name)) = by_unique.get(message.unique()) else {
            return Err(StoreError::Vanished);
        };
        let path = snapshot::path(self.root, *dir, file_name);
        match op(&path, *dir, file_name) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(StoreError::Vanished),
            Err(err) => Err(StoreError::io(format!("updating {}", path.display()), err)),
        }
    }
}

/// Makes sure the Maildir++ folder `.NAME` exists with `cur/`, `new/`,
/// `tmp/` and `maildirfolder`, and returns where moved messages go.
fn prepare_folder(root: &Path, folder: &str) -> Action {
    if validate_folder(folder).is_err() {
        return Action::InvalidFolder(folder.to_string());
    }
    let base = root.join(format!(".{folder}"));
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    for dir in [
        base.clone(),
        base.join("cur"),
        base.join("new"),
        base.join("tmp"),
    ] {
        match builder.create(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(err) => return unavailable(&dir, err),
        }
    }
    let marker = base.join(MAILDIRFOLDER);
    let created = match fs::symlink_metadata(&marker) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&marker)
            .map(drop),
        Err(err) => Err(err),
    };
    match created {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return unavailable(&marker, err),
    }
    Action::MoveTo(base.join("cur"))
}

/// A folder that could not be created.
fn unavailable(path: &Path, err: io::Error) -> Action {
    Action::FolderUnavailable(
        format!("creating {}", path.display()),
        err.kind(),
        err.to_string(),
    )
}
