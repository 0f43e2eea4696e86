//! What can go wrong in the store, as one typed error.
//!
//! Every fallible function of this crate returns [`StoreError`]. The variants
//! are chosen so that the gateway can pick a POP3 response code without
//! looking at error messages:
//!
//! | variant | meaning | POP3 answer |
//! | --- | --- | --- |
//! | [`Locked`](StoreError::Locked) | another session holds the mailbox | `-ERR [IN-USE]` |
//! | [`Io`](StoreError::Io) | a passing file-system fault; a Maildir that is not a directory or cannot be created | `-ERR [SYS/TEMP]` |
//! | [`TimedOut`](StoreError::TimedOut) | the login's deadline passed while opening | `-ERR [SYS/TEMP]` |
//! | [`NoSuchMailbox`](StoreError::NoSuchMailbox) | no Maildir (or no `cur/`/`new/`) | `-ERR [SYS/PERM]` |
//! | [`Vanished`](StoreError::Vanished) | another program removed the message | `-ERR`, session goes on |
//! | [`NotRegularFile`](StoreError::NotRegularFile) | the message is now a symlink or special file | `-ERR`, session goes on |
//! | [`NoSuchMessage`](StoreError::NoSuchMessage) | an index outside the snapshot | `-ERR` |
//! | [`InvalidFolder`](StoreError::InvalidFolder) | a `move:` target that is not a safe folder name | `-ERR [SYS/PERM]` |
//!
//! [`StoreError::is_temporary`] sums the table up: `true` means "try again
//! later, nothing is wrong with the mailbox itself".

use std::io;
use std::path::PathBuf;

/// An error from opening, reading or updating a Maildir.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The session lock could not be taken within `lock_wait`: another
    /// session (in this process, another process or another host) has the
    /// mailbox open.
    #[error("mailbox is locked by another session")]
    Locked,

    /// Opening the mailbox gave up at the deadline it was given
    /// ([`OpenOptions::deadline`](crate::OpenOptions::deadline)): waiting for
    /// the lock or for a place to compute sizes, or reading messages for
    /// their sizes, took too long. Sizes learnt so far are kept in the size
    /// cache, so the next login goes on from there.
    #[error("gave up at the login's deadline")]
    TimedOut,

    /// A file-system operation failed; `context` says which one and on what.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path, e.g. `listing /var/vmail/u/Maildir/cur`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The Maildir, or its `cur/` or `new/` directory, does not exist (or is
    /// not a directory).
    #[error("no such mailbox: {}", .0.display())]
    NoSuchMailbox(PathBuf),

    /// The message file was removed by another program after the snapshot
    /// was taken.
    #[error("message file vanished")]
    Vanished,

    /// The message path no longer names a regular file (it was replaced by a
    /// symlink, a directory, a FIFO...). It is never followed or read.
    #[error("not a regular file: {}", .0.display())]
    NotRegularFile(PathBuf),

    /// A message index outside the snapshot.
    #[error("no message with index {0}")]
    NoSuchMessage(usize),

    /// A `move:` folder name that is not a safe Maildir++ folder name.
    #[error("invalid folder name {0:?}")]
    InvalidFolder(String),
}

impl StoreError {
    /// `true` when the fault is passing and the client should retry later
    /// (`[SYS/TEMP]`, or `[IN-USE]` for [`Locked`](StoreError::Locked));
    /// `false` when retrying will not help.
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Locked | StoreError::TimedOut | StoreError::Io { .. } => true,
            StoreError::NoSuchMailbox(_)
            | StoreError::Vanished
            | StoreError::NotRegularFile(_)
            | StoreError::NoSuchMessage(_)
            | StoreError::InvalidFolder(_) => false,
        }
    }

    /// Wraps an [`io::Error`] with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<io::Error> for StoreError {
    /// An I/O error without further context, e.g. a failed blocking task.
    fn from(source: io::Error) -> StoreError {
        StoreError::io("I/O", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_errors() {
        assert!(StoreError::Locked.is_temporary());
        assert!(StoreError::TimedOut.is_temporary());
        assert!(StoreError::io("reading x", io::Error::other("boom")).is_temporary());
        assert!(!StoreError::NoSuchMailbox(PathBuf::from("/m")).is_temporary());
        assert!(!StoreError::Vanished.is_temporary());
        assert!(!StoreError::NotRegularFile(PathBuf::from("/m/cur/x")).is_temporary());
        assert!(!StoreError::NoSuchMessage(3).is_temporary());
        assert!(!StoreError::InvalidFolder("..".into()).is_temporary());
    }

    #[test]
    fn messages_name_the_context() {
        let err = StoreError::io("listing /m/cur", io::Error::other("boom"));
        assert_eq!(err.to_string(), "listing /m/cur: boom");
        assert_eq!(
            StoreError::NoSuchMailbox(PathBuf::from("/m")).to_string(),
            "no such mailbox: /m"
        );
        let from = StoreError::from(io::Error::other("task failed"));
        assert_eq!(from.to_string(), "I/O: task failed");
        assert!(from.is_temporary());
    }
}
