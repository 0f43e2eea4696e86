//! Maildir mailboxes for popgate's POP3 sessions.
//!
//! This crate is the part of popgate that touches mail. It knows nothing
//! about sockets, TLS or who the user is: the gateway authenticates a user,
//! finds their Maildir, and then, inside `spawn_blocking`, drives a
//! [`Mailbox`] through the life of a POP3 session:
//!
//! 1. **Open** ([`Mailbox::open`]): take the session lock (a second
//!    session waits up to `lock_wait`, then gets [`StoreError::Locked`]),
//!    move `new/` to `cur/` and fix the list of messages for the session
//!    (the snapshot), each with its UIDL ([`uidl`]) and its
//!    exact size on the wire (from the file name, the size cache,
//!    or computed once). A Maildir unchanged since a login of the same
//!    process kept its snapshot in a [`SnapshotCache`] opens again from
//!    it without listing and without waiting for the disk
//!    ([`Mailbox::open_nowait`]), so on an async thread.
//! 2. **Read** ([`Mailbox::len`], [`Mailbox::size`], [`Mailbox::uidl`],
//!    [`Mailbox::open_message`]): STAT, LIST and UIDL come from the snapshot; RETR and TOP open the message
//!    file and stream it through a [`wire::Encoder`], the same code that
//!    computed the size LIST reported. A message already in the kernel's
//!    caches can be opened and read without ever waiting for the disk
//!    ([`Mailbox::open_message_nowait`], [`read`]), so on an async thread;
//!    one that is not can be loaded ahead of its RETR ([`prefetch`]).
//! 3. **Update** ([`Mailbox::commit`]): after QUIT, apply the
//!    leave-on-server policy ([`OnDele`]) to the messages marked deleted,
//!    then unlock. A session that ends any other way just drops the
//!    `Mailbox`: nothing is applied.
//!
//! ```no_run
//! use std::path::Path;
//! use popgate_store::{Mailbox, OnDele, OpenOptions, Order};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = OpenOptions {
//!     lock: true,
//!     lock_wait: std::time::Duration::from_secs(15),
//!     order: "oldest-first".parse::<Order>()?,
//!     on_dele: "move:Archive".parse::<OnDele>()?,
//!     // Give up (StoreError::TimedOut) if opening takes longer than this.
//!     deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(120)),
//!     // Keep each snapshot for the next login of an unchanged Maildir.
//!     snapshots: Some(std::sync::Arc::new(popgate_store::SnapshotCache::default())),
//! };
//! let mailbox = Mailbox::open(Path::new("/var/vmail/example.com/ann/Maildir"), &options)?;
//! for index in 0..mailbox.len() {
//!     let uidl = String::from_utf8_lossy(mailbox.uidl(index).unwrap_or_default());
//!     println!("{} {uidl} {}", index + 1, mailbox.size(index).unwrap_or_default());
//! }
//! let report = mailbox.commit(&[0, 2]);
//! for (index, err) in &report.failed {
//!     eprintln!("message {} not removed: {err}", index + 1);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A Maildir that does not exist yet is created by [`ensure_maildir`]
//! (the gateway calls it when opening finds none, so a user's first login
//! finds an empty mailbox), and local delivery writes into Maildirs beside the
//! reader ([`deliver`]), all of them or none: without following
//! symlinks below the root, and naming each file with its sizes (`,S=`,
//! `,W=`) so the reader need not read it. This crate knows no users:
//! callers run these with the filesystem identity of the Maildir's owner.
//!
//! Files the store keeps in the Maildir root, next to `cur/`, `new/` and
//! `tmp/`: [`LOCK_FILE`] and [`SIZE_CACHE_FILE`]. It also reads, and never
//! writes, the UID lists Dovecot and Courier left there, so clients keep
//! the UIDLs they know after a migration ([`migrate`]). Message files are opened
//! without following symlinks, and anything that is not a regular file is
//! skipped.
//!
//! The parsers of what the store reads (Maildir file names, the migration
//! lists, the size cache) stay private: the store's callers need their
//! results, not the parsers, and keeping them private keeps them free to
//! change. The fuzz targets in `fuzz/` reach them through a module
//! `fuzzing` that exists only with the cargo feature `fuzzing` (which only
//! the fuzz crate turns on) and is hidden from the documentation: a test
//! hook, not an API.

#![forbid(unsafe_code)]

mod arena;
mod cold;
mod create;
mod deliver;
mod error;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lock;
mod mailbox;
pub mod migrate;
mod name;
mod policy;
pub mod prefetch;
pub mod read;
mod size_cache;
mod sizing;
mod snapshot;
pub mod snapshot_cache;
pub mod uidl;
mod update;
pub mod wire;

pub use create::ensure_maildir;
pub use deliver::{deliver, Undelivered};
pub use error::StoreError;
pub use lock::LOCK_FILE;
pub use mailbox::{Mailbox, OpenOptions, OpenedMessage};
pub use policy::{validate_folder, OnDele, Order};
pub use size_cache::SIZE_CACHE_FILE;
pub use snapshot_cache::SnapshotCache;
pub use update::CommitReport;
