//! The maildrop of one POP3 session: open (lock + snapshot), read, commit.
//!
//! ```no_run
//! use std::io::Read;
//! use std::path::Path;
//! use popgate_store::{wire::Encoder, Mailbox, OpenOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // AUTHORIZATION succeeded: lock the mailbox and take the snapshot.
//! let mailbox = Mailbox::open(Path::new("/home/ann/Maildir"), &OpenOptions::default())?;
//!
//! // STAT, LIST, UIDL read the snapshot.
//! let total: u64 = mailbox.messages().iter().map(|m| m.size).sum();
//! println!("+OK {} {}", mailbox.messages().len(), total);
//!
//! // RETR 1 streams the file through the wire encoder.
//! let mut file = mailbox.open_message(0)?;
//! let (mut encoder, mut buf, mut out) = (Encoder::full(), vec![0; 64 * 1024], Vec::new());
//! loop {
//!     let n = file.read(&mut buf)?;
//!     if n == 0 { break; }
//!     encoder.encode(&buf[..n], &mut out);
//!     // ... write `out` to the client, clear it ...
//! }
//! encoder.finish(&mut out);
//!
//! // DELE 1, then QUIT: UPDATE applies the on_dele policy and unlocks.
//! let report = mailbox.commit(&[0]);
//! assert!(report.is_complete());
//! # Ok(())
//! # }
//! ```
//!
//! Everything is plain blocking `std` I/O; the gateway calls it from
//! `spawn_blocking`. A session that ends without QUIT just drops the
//! [`Mailbox`]: the lock is released and nothing is applied.
//!
//! UIDLs come from a Dovecot or Courier list left in the Maildir when the
//! message is in it (see [`migrate`](crate::migrate)), else from the unique
//! name ([`uidl`](crate::uidl)). Sizes come, in this order, from a `,W=`
//! field in the file name, from Dovecot's `W` field, from the size cache
//! (`popgate-sizes`), or from reading the file once with
//! [`wire_size`](crate::wire::wire_size); a login on a warm cache reads no
//! message and `stat`s no file. Reading files for their sizes (a cold
//! login) is limited to a few sessions at a time across the process (see
//! [`cold`](crate::cold)), so one huge first login cannot take all the
//! disk bandwidth and blocking threads from everyone else; each such
//! session reads with a few threads (see `sizing`).

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::file::{self, OpenError};
use crate::lock::SessionLock;
use crate::size_cache::{self, SizeCache, Sizes};
use crate::snapshot::{self, Dir};
use crate::{cold, migrate, name, sizing, uidl, OnDele, Order, StoreError};

/// From how many bytes of size cache and migration lists (about a
/// thousand messages) they are parsed on a thread of their own: below,
/// starting the thread costs more than it saves.
const PARSE_ALONGSIDE: usize = 64 * 1024;

/// How to open a mailbox.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Take the session lock (RFC 1939 §8: one session per maildrop).
    pub lock: bool,
    /// How long to wait for another session to let go of the lock before
    /// [`StoreError::Locked`].
    pub lock_wait: Duration,
    /// How messages are numbered.
    pub order: Order,
    /// What [`Mailbox::commit`] does with deleted messages.
    pub on_dele: OnDele,
}

impl Default for OpenOptions {
    /// The configuration defaults: locked, 15 s wait, oldest first, delete.
    fn default() -> OpenOptions {
        OpenOptions {
            lock: true,
            lock_wait: Duration::from_secs(15),
            order: Order::OldestFirst,
            on_dele: OnDele::Delete,
        }
    }
}

/// One message as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// The UIDL (see [`uidl`]).
    pub uidl: String,
    /// The exact number of octets RETR sends before dot-stuffing and
    /// without the terminator: what LIST and STAT report.
    pub size: u64,
}

/// Where a message file is, and what its size on disk was when its wire
/// size was computed (`None` when the size came from a `,W=` name).
#[derive(Debug)]
pub(crate) struct MessageFile {
    pub(crate) dir: Dir,
    /// Where the file came in the directory listing: the size cache is
    /// written in that order (see [`size_cache`]).
    listed_at: u32,
    pub(crate) name: OsString,
    raw_size: Option<u64>,
}

impl MessageFile {
    /// The message's unique name.
    pub(crate) fn unique(&self) -> &[u8] {
        name::unique_name(self.name.as_bytes())
    }
}

/// An open, locked, snapshotted maildrop.
///
/// Message numbers are fixed for the session: index 0 of
/// [`messages`](Mailbox::messages) is message 1. Dropping the mailbox
/// releases the lock and applies nothing.
#[derive(Debug)]
pub struct Mailbox {
    pub(crate) root: PathBuf,
    pub(crate) on_dele: OnDele,
    messages: Vec<MessageInfo>,
    pub(crate) files: Vec<MessageFile>,
    /// Messages whose cached sizes were found wrong on open_message.
    stale: Mutex<Vec<usize>>,
    /// Held for the life of the session; `None` when locking is off.
    _lock: Option<SessionLock>,
}

impl Mailbox {
    /// Locks the Maildir at `maildir` (waiting up to `lock_wait`, then
    /// [`StoreError::Locked`]) and takes the snapshot: moves `new/` to
    /// `cur/`, lists `cur/`, orders by delivery, and finds each message's
    /// UIDL and size. Writes the size cache when it learnt new sizes or
    /// found entries for messages no longer present.
    ///
    /// Errors: [`StoreError::NoSuchMailbox`] when the Maildir, `cur/` or
    /// `new/` is missing; [`StoreError::Io`] when a directory cannot be
    /// read, the lock file cannot be opened, or a message cannot be read
    /// to compute its size. A message that disappears while its size is
    /// computed is left out of the snapshot.
    pub fn open(maildir: &Path, options: &OpenOptions) -> Result<Mailbox, StoreError> {
        snapshot::check_layout(maildir)?;
        let lock = if options.lock {
            Some(SessionLock::acquire(maildir, options.lock_wait)?)
        } else {
            None
        };
        // On a big Maildir, the size cache and the migration lists are
        // parsed on a second thread while this one lists the directories:
        // both take a while, and neither needs the other.
        let cache_bytes = size_cache::read(maildir);
        let migration = migrate::Files::read(maildir);
        let parse = || (SizeCache::parse(cache_bytes.as_deref()), migration.parse());
        let (listed, (mut cache, imported)) =
            if cache_bytes.as_ref().map_or(0, Vec::len) + migration.len() < PARSE_ALONGSIDE {
                (snapshot::take(maildir), parse())
            } else {
                thread::scope(|scope| {
                    let parsing = thread::Builder::new()
                        .name("popgate-parse".into())
                        .spawn_scoped(scope, parse);
                    let listed = snapshot::take(maildir);
                    let parsed = match parsing {
                        Ok(parsing) => parsing
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        // No thread to be had: parse here.
                        Err(_) => parse(),
                    };
                    (listed, parsed)
                })
            };
        let listed = listed?;

        // Sizes known without reading the message: (size on disk, wire size).
        let mut known: Vec<Option<(Option<u64>, u64)>> = Vec::with_capacity(listed.len());
        let mut unknown = Vec::new();
        for (index, entry) in listed.iter().enumerate() {
            let unique = name::unique_name(entry.name.as_bytes());
            let size = if let Some(size) = name::wire_size_hint(unique) {
                Some((None, size))
            } else if let Some(size) = imported.wire_size(unique) {
                Some((None, size))
            } else {
                cache.get(unique).map(|sizes| (Some(sizes.raw), sizes.wire))
            };
            if size.is_none() {
                unknown.push(index);
            }
            known.push(size);
        }
        let mut learnt = false;
        if !unknown.is_empty() {
            let _cold_build = cold::COLD_BUILDS.enter();
            let paths: Vec<_> = unknown
                .iter()
                .filter_map(|&index| listed.get(index))
                .map(|entry| snapshot::path(maildir, entry.dir, &entry.name))
                .collect();
            for (&index, sizes) in unknown.iter().zip(sizing::compute_all(&paths)?) {
                if let (Some(slot), Some(sizes)) = (known.get_mut(index), sizes) {
                    *slot = Some((Some(sizes.raw), sizes.wire));
                    learnt = true;
                }
            }
        }

        let rewrite_cache = learnt || cache.is_stale();
        drop(cache);
        drop(cache_bytes);
        let positions = snapshot::delivery_order(&listed, options.order);

        // UIDLs are found in directory order too, then everything is put in
        // delivery order. A message that disappeared while its size was
        // computed is left out.
        let mut slots: Vec<Option<(MessageInfo, MessageFile)>> = listed
            .into_iter()
            .zip(known)
            .enumerate()
            .map(|(listed_at, (entry, size))| {
                let (raw_size, size) = size?;
                let unique = name::unique_name(entry.name.as_bytes());
                let uidl = imported
                    .uidl(unique)
                    .unwrap_or_else(|| uidl::from_unique_name(unique));
                let file = MessageFile {
                    dir: entry.dir,
                    listed_at: u32::try_from(listed_at).unwrap_or(u32::MAX),
                    name: entry.name,
                    raw_size,
                };
                Some((MessageInfo { uidl, size }, file))
            })
            .collect();
        let mut messages = Vec::with_capacity(slots.len());
        let mut files = Vec::with_capacity(slots.len());
        for (info, file) in positions
            .into_iter()
            .filter_map(|index| slots.get_mut(index)?.take())
        {
            messages.push(info);
            files.push(file);
        }
        drop(slots);

        let mailbox = Mailbox {
            root: maildir.to_path_buf(),
            on_dele: options.on_dele.clone(),
            messages,
            files,
            stale: Mutex::new(Vec::new()),
            _lock: lock,
        };
        if rewrite_cache {
            mailbox.write_size_cache(&[]);
        }
        Ok(mailbox)
    }

    /// The messages of the snapshot; index 0 is message 1.
    pub fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    /// The Maildir this mailbox was opened on.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens message `index` (0-based) for reading, positioned at its
    /// start. Feed it to a [`wire::Encoder`](crate::wire::Encoder).
    ///
    /// The file is opened without following symlinks and must be a regular
    /// file. When another program renamed it (an IMAP server adding a flag)
    /// it is found again by its unique name. Errors:
    /// [`StoreError::Vanished`] when it is gone,
    /// [`StoreError::NotRegularFile`] when the name now is a symlink or
    /// special file, [`StoreError::NoSuchMessage`] for an index outside the
    /// snapshot, [`StoreError::Io`] otherwise.
    ///
    /// When the size was taken from the size cache, the size on disk of
    /// the opened file is compared with the cached one; on a mismatch the
    /// entry is dropped from the cache file at once, so the next session
    /// computes it again (this session has already reported its size).
    pub fn open_message(&self, index: usize) -> Result<File, StoreError> {
        let message = self
            .files
            .get(index)
            .ok_or(StoreError::NoSuchMessage(index))?;
        let path = snapshot::path(&self.root, message.dir, &message.name);
        let (file, len) = match file::open_regular(&path) {
            Ok(opened) => opened,
            Err(OpenError::NotFound) => {
                match snapshot::find_unique(&self.root, message.dir, message.unique())? {
                    Some((dir, name)) => open_existing(&snapshot::path(&self.root, dir, &name))?,
                    None => return Err(StoreError::Vanished),
                }
            }
            Err(err) => return Err(open_error(err, path)),
        };
        if message.raw_size.is_some_and(|raw| raw != len) {
            self.write_size_cache(&[index]);
        }
        Ok(file)
    }

    /// Like [`open_message`](Self::open_message), but only when the kernel
    /// can open the file from its caches, so the call never waits for the
    /// disk and may run on an async thread (see [`crate::read`]).
    ///
    /// `Ok(None)` means "call `open_message` on a blocking thread": the
    /// kernel would have to wait, or cannot tell, or opening needs more
    /// than an open (the file was renamed and must be looked for, or its
    /// cached size turned out stale and the cache must be rewritten).
    pub fn open_message_nowait(&self, index: usize) -> Result<Option<File>, StoreError> {
        let message = self
            .files
            .get(index)
            .ok_or(StoreError::NoSuchMessage(index))?;
        let path = snapshot::path(&self.root, message.dir, &message.name);
        match file::open_regular_cached(&path) {
            Ok(Some((_, len))) if message.raw_size.is_some_and(|raw| raw != len) => Ok(None),
            Ok(opened) => Ok(opened.map(|(file, _)| file)),
            Err(OpenError::NotFound) => Ok(None),
            Err(err) => Err(open_error(err, path)),
        }
    }

    /// UPDATE: applies the `on_dele` policy to the messages at `deleted`
    /// (0-based indices, in any order, repeats ignored), then releases the
    /// lock. A message that fails does not stop the others; see
    /// [`CommitReport`](crate::CommitReport).
    pub fn commit(self, deleted: &[usize]) -> crate::CommitReport {
        crate::update::apply(&self, deleted)
    }

    /// Rewrites the size cache from the snapshot, leaving out the messages
    /// in `also_stale` and those found stale before. Best effort: a cache
    /// that cannot be written is simply not used.
    fn write_size_cache(&self, also_stale: &[usize]) {
        let mut stale = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        stale.extend_from_slice(also_stale);
        let mut listing_order: Vec<usize> = (0..self.files.len()).collect();
        listing_order.sort_unstable_by_key(|&index| self.files.get(index).map(|f| f.listed_at));
        let entries = listing_order
            .into_iter()
            .filter(|index| !stale.contains(index))
            .filter_map(|index| Some((self.files.get(index)?, self.messages.get(index)?)))
            .filter_map(|(file, info)| {
                file.raw_size.map(|raw| {
                    (
                        file.unique(),
                        Sizes {
                            raw,
                            wire: info.size,
                        },
                    )
                })
            });
        // Ignored on purpose: the cache is an optimisation only.
        let _ = size_cache::write(&self.root, entries);
    }
}

/// Opens a message file found again by its unique name.
fn open_existing(path: &Path) -> Result<(File, u64), StoreError> {
    file::open_regular(path).map_err(|err| open_error(err, path.to_path_buf()))
}

/// The error for a message file that could not be opened.
fn open_error(err: OpenError, path: PathBuf) -> StoreError {
    match err {
        OpenError::NotFound => StoreError::Vanished,
        OpenError::NotRegular => StoreError::NotRegularFile(path),
        OpenError::Io(err) => StoreError::io(format!("opening {}", path.display()), err),
    }
}
