//! Loading the message a client will most likely ask for next, while it
//! reads the current one.
//!
//! A message in the page cache is read without waiting ([`crate::read`]).
//! One that is not makes RETR wait for the disk while the client waits for
//! RETR: the two take turns instead of overlapping. Mail is often not in
//! memory: it arrived long ago, the host is short of memory, or the host
//! reclaims pages nobody touched for a minute (some virtual machines do;
//! this is how the benchmark box behaves). A client that fetches one message
//! usually fetches the next one after it, so once a session has had to wait
//! for the disk, the gateway asks the kernel to start reading the next
//! message ([`Prefetch::load`]: `posix_fadvise(WILLNEED)`) as it begins
//! sending the current one. By the time the client asks for it, its pages
//! are in memory, or on their way.
//!
//! A [`Prefetch`] holds only the message's path, not the mailbox: it can
//! run on a blocking thread of its own without keeping the mailbox (and its
//! lock) alive past the session's QUIT. Loading opens the file as RETR does
//! (no symlink, a regular file) and asks for its pages; nothing is read into
//! the process, and a message gone meanwhile is simply not loaded.
//!
//! That the next message does arrive in memory is tested end to end, where
//! util-linux's `fincore` can see it without reading the file itself
//! (`tests/e2e/protocol.rs`).

use std::num::NonZeroU64;
use std::path::PathBuf;

use crate::file;
use crate::mailbox::open_error;
use crate::StoreError;

/// A message to load into the page cache ahead of its RETR.
#[derive(Debug)]
pub struct Prefetch {
    pub(crate) path: PathBuf,
}

impl Prefetch {
    /// Asks the kernel to read the whole message into the page cache and
    /// returns once the reads are started, not done. May wait for the disk
    /// (finding the file, starting the reads): call it on a blocking
    /// thread, with the identity RETR opens messages with.
    ///
    /// Errors: [`StoreError::Vanished`] when the file is gone,
    /// [`StoreError::NotRegularFile`] when the name is a symlink or special
    /// file, [`StoreError::Io`] otherwise. Either way nothing else changes:
    /// the RETR that follows, if any, opens the message as usual.
    pub fn load(self) -> Result<(), StoreError> {
        let (file, len) = match file::open_regular(&self.path) {
            Ok(opened) => opened,
            Err(err) => return Err(open_error(err, self.path)),
        };
        rustix::fs::fadvise(&file, 0, NonZeroU64::new(len), rustix::fs::Advice::WillNeed).map_err(
            |errno| StoreError::io(format!("loading {}", self.path.display()), errno.into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn symlinks_and_missing_files_are_not_loaded() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("target");
        std::fs::write(&target, b"secret")?;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link)?;
        let linked = Prefetch { path: link }.load();
        assert!(
            matches!(linked, Err(StoreError::NotRegularFile(_))),
            "{linked:?}"
        );
        let missing = Prefetch {
            path: dir.path().join("gone"),
        }
        .load();
        assert!(matches!(missing, Err(StoreError::Vanished)), "{missing:?}");
        Ok(())
    }
}
