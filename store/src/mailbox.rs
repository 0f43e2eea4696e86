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
//! let total: u64 = (0..mailbox.len()).filter_map(|i| mailbox.size(i)).sum();
//! println!("+OK {} {}", mailbox.len(), total);
//! println!("+OK 1 {}", String::from_utf8_lossy(mailbox.uidl(0).unwrap_or_default()));
//!
//! // RETR 1 streams the file through the wire encoder.
//! let mut file = mailbox.open_message(0)?.file;
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
//! `spawn_blocking`, except the calls that never wait for the disk
//! ([`Mailbox::open_nowait`] on an unchanged Maildir,
//! [`Mailbox::open_message_nowait`]). A session that ends without QUIT just drops the
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
//! session reads with a few threads (see `sizing`). With a deadline in
//! [`OpenOptions`], no part of opening outlasts it: the lock wait, the wait
//! for a cold place and the reading all stop with
//! [`StoreError::TimedOut`], keeping the sizes learnt so far in the cache.
//!
//! A session on a big Maildir holds its snapshot for its whole life, so
//! the snapshot is compact: every file name (and every UIDL that is not
//! simply the unique name) is in one shared buffer (see `arena`), and each
//! message is a fixed 32-byte record with its sizes and where its name and
//! UIDL are in that buffer. The records are built in directory order, the
//! order the size cache is read and written in, then moved in place into
//! message order, so LIST and UIDL read them front to back; each
//! message's place in the listing is kept for rewriting the cache.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::arena::{Arena, Span};
use crate::file::{self, OpenError};
use crate::lock::SessionLock;
use crate::size_cache::{self, Sizable, Sizes};
use crate::snapshot::{self, Dir, Listing};
use crate::snapshot_cache::{self, SnapshotCache, Stamps};
use crate::{cold, migrate, name, sizing, uidl, OnDele, Order, StoreError};

/// From how many bytes of migration lists (about a thousand messages)
/// they are parsed on a thread of their own: below, starting the thread
/// costs more than it saves.
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
    /// When to give up with [`StoreError::TimedOut`] (the gateway passes
    /// its login deadline): waiting for the lock, waiting for a turn to
    /// compute sizes (only a few sessions of the process do at once), and
    /// reading messages for their sizes all stop then. `None`: no limit
    /// but `lock_wait`.
    pub deadline: Option<Instant>,
    /// Where logins keep their snapshots for the next login of an
    /// unchanged Maildir ([`Mailbox::open_nowait`]); `None`: nowhere.
    pub snapshots: Option<Arc<SnapshotCache>>,
}

impl Default for OpenOptions {
    /// The configuration defaults: locked, 15 s wait, oldest first,
    /// delete, no deadline; no snapshot cache.
    fn default() -> OpenOptions {
        OpenOptions {
            lock: true,
            lock_wait: Duration::from_secs(15),
            order: Order::OldestFirst,
            on_dele: OnDele::Delete,
            deadline: None,
            snapshots: None,
        }
    }
}

/// What [`Record::raw_size`] holds when the wire size did not come from
/// reading the file (a `,W=` name, an imported list): no file is that long.
const NO_RAW_SIZE: u64 = u64::MAX;

/// What [`Record::size`] holds while opening until the size is found.
const UNKNOWN_SIZE: u64 = u64::MAX;

/// One message of the snapshot, 32 bytes: its sizes, its directory, and
/// where its file name and UIDL are in the mailbox's arena.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// The exact number of octets RETR sends before dot-stuffing and
    /// without the terminator: what LIST and STAT report.
    size: u64,
    /// The file's size on disk when its wire size was computed by reading
    /// it, else [`NO_RAW_SIZE`]; kept in the size cache.
    raw_size: u64,
    name_start: u32,
    uidl_start: u32,
    name_len: u16,
    /// The unique name is the first `unique_len` bytes of the name.
    unique_len: u16,
    /// At most [`uidl::MAX_LEN`].
    uidl_len: u8,
    dir: Dir,
}

impl Record {
    fn name(self) -> Span {
        Span {
            start: self.name_start,
            len: self.name_len,
        }
    }

    fn unique(self) -> Span {
        self.name().prefix(usize::from(self.unique_len))
    }

    fn uidl(self) -> Span {
        Span {
            start: self.uidl_start,
            len: u16::from(self.uidl_len),
        }
    }

    fn raw_size(self) -> Option<u64> {
        (self.raw_size != NO_RAW_SIZE).then_some(self.raw_size)
    }
}

/// The records being filled in while opening, as the size cache sees them.
struct Records<'a> {
    names: &'a Arena,
    records: &'a mut [Record],
}

impl Records<'_> {
    /// Undoes what a size cache found corrupt halfway gave: until sizes
    /// are computed, only the cache gives raw sizes.
    fn forget_cached_sizes(&mut self) {
        for record in self.records.iter_mut() {
            if record.raw_size != NO_RAW_SIZE {
                record.raw_size = NO_RAW_SIZE;
                record.size = UNKNOWN_SIZE;
            }
        }
    }
}

impl Sizable for Records<'_> {
    fn count(&self) -> usize {
        self.records.len()
    }

    fn unique(&self, index: usize) -> &[u8] {
        self.records
            .get(index)
            .map_or(&[][..], |record| self.names.get(record.unique()))
    }

    fn take_sizes(&mut self, index: usize, sizes: Sizes) -> bool {
        match self.records.get_mut(index) {
            Some(record) if record.size == UNKNOWN_SIZE => {
                record.raw_size = sizes.raw;
                record.size = sizes.wire;
                true
            }
            _ => false,
        }
    }
}

/// A message's file as the snapshot saw it: its directory and name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageFile<'a> {
    pub(crate) dir: Dir,
    pub(crate) name: &'a OsStr,
}

impl MessageFile<'_> {
    /// The message's unique name.
    pub(crate) fn unique(&self) -> &[u8] {
        name::unique_name(self.name.as_bytes())
    }
}

/// What a login fixed for its session: the messages in message order,
/// with their names, UIDLs and sizes. Never changed once taken, so the
/// sessions that open an unchanged Maildir share one (see
/// [`snapshot_cache`]).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The file names and the UIDLs that are not part of one.
    names: Arena,
    /// The messages in message order.
    records: Vec<Record>,
    /// Where each message came in the directory listing: the size cache is
    /// written in that order.
    listed_at: Vec<u32>,
}

impl Snapshot {
    /// How many octets it holds.
    fn weight(&self) -> usize {
        self.names.weight()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + self.listed_at.capacity() * std::mem::size_of::<u32>()
    }
}

/// A message file opened by [`Mailbox::open_message`] or
/// [`Mailbox::open_message_nowait`].
#[derive(Debug)]
pub struct OpenedMessage {
    /// The file, positioned at its start.
    pub file: File,
    /// Its length on disk, as the open found it (the `statx` that checked
    /// it is a regular file), so reading its start needs no second one.
    pub len: u64,
}

/// An open, locked, snapshotted maildrop.
///
/// Message numbers are fixed for the session: index 0 is message 1 (see
/// [`len`](Mailbox::len), [`size`](Mailbox::size), [`uidl`](Mailbox::uidl)).
/// Dropping the mailbox releases the lock and applies nothing.
#[derive(Debug)]
pub struct Mailbox {
    pub(crate) root: PathBuf,
    pub(crate) on_dele: OnDele,
    snapshot: Arc<Snapshot>,
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
    /// to compute its size; [`StoreError::TimedOut`] when `deadline`
    /// passes first. A message that disappears while its size is
    /// computed is left out of the snapshot. When sizing stops early, the
    /// sizes learnt so far still go into the size cache, so a mailbox too
    /// big to size before one deadline gets there over a few logins.
    pub fn open(maildir: &Path, options: &OpenOptions) -> Result<Mailbox, StoreError> {
        let layout = snapshot::Layout::open(maildir)?;
        // Stamped before anything in it is read; see `snapshot_cache`.
        let stamped = SystemTime::now();
        let root_stamp = options.snapshots.as_ref().and_then(|_| layout.stamp_root());
        let lock = if options.lock {
            Some(SessionLock::acquire(
                maildir,
                options.lock_wait,
                options.deadline,
            )?)
        } else {
            None
        };
        // On a big Maildir, the migration lists are parsed on a second
        // thread while this one lists the directories: both take a while,
        // and neither needs the other.
        let migration = migrate::Files::read(maildir);
        let (listed, imported) = if migration.len() < PARSE_ALONGSIDE {
            (
                snapshot::take(maildir, layout, root_stamp.is_some()),
                migration.parse(),
            )
        } else {
            thread::scope(|scope| {
                let parsing = thread::Builder::new()
                    .name("popgate-parse".into())
                    .spawn_scoped(scope, || migration.parse());
                let listed = snapshot::take(maildir, layout, root_stamp.is_some());
                let imported = match parsing {
                    Ok(parsing) => parsing
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    // No thread to be had: parse here.
                    Err(_) => migration.parse(),
                };
                (listed, imported)
            })
        };
        let listing = listed?;
        let mut order = snapshot::delivery_order(&listing, options.order);
        let Listing {
            mut names,
            files,
            dir_stamps,
        } = listing;

        // Sizes known without reading the message or the size cache, and
        // UIDLs, in directory order.
        let mut records = Vec::with_capacity(files.len());
        for file in &files {
            let file_name = names.get(file.name);
            let unique = name::unique_name(file_name);
            let found = imported.find(unique);
            let size = name::wire_size_hint(unique)
                .or(found.wire_size)
                .unwrap_or(UNKNOWN_SIZE);
            let own_uidl = match found.uidl {
                Some(imported) => Some(imported),
                None if uidl::is_valid(unique) => None,
                None => Some(uidl::from_unique_name(unique)),
            };
            let unique = file.name.prefix(unique.len());
            let uidl = match own_uidl {
                Some(text) => names
                    .push(text.as_bytes())
                    .map_err(|_| snapshot::too_many())?,
                None => unique,
            };
            records.push(Record {
                size,
                raw_size: NO_RAW_SIZE,
                name_start: file.name.start,
                uidl_start: uidl.start,
                name_len: file.name.len,
                unique_len: unique.len,
                uidl_len: u8::try_from(uidl.len).unwrap_or(u8::MAX),
                dir: file.dir,
            });
        }
        drop(imported);
        drop(migration);
        drop(files);

        // Then the size cache, which lists the messages in directory order
        // too.
        let mut filling = Records {
            names: &names,
            records: &mut records,
        };
        let mut rewrite_cache = size_cache::load(maildir, &mut filling).unwrap_or_else(|_| {
            filling.forget_cached_sizes();
            true
        });
        let unknown: Vec<u32> = (0u32..)
            .zip(&records)
            .filter(|(_, record)| record.size == UNKNOWN_SIZE)
            .map(|(index, _)| index)
            .collect();
        if !unknown.is_empty() {
            let _cold_build = cold::COLD_BUILDS
                .enter(options.deadline)
                .ok_or(StoreError::TimedOut)?;
            let path = |at: usize| {
                let record = unknown
                    .get(at)
                    .and_then(|&index| records.get(index as usize));
                match record {
                    Some(record) => {
                        snapshot::path(maildir, record.dir, names.os_str(record.name()))
                    }
                    None => PathBuf::new(),
                }
            };
            let sized = sizing::compute_all(unknown.len(), path, options.deadline);
            // A message that disappeared meanwhile is left out.
            let mut gone = Vec::new();
            for (&index, sizes) in unknown.iter().zip(sized.sizes) {
                match (records.get_mut(index as usize), sizes) {
                    (Some(record), Some(sizes)) => {
                        record.raw_size = sizes.raw;
                        record.size = sizes.wire;
                        rewrite_cache = true;
                    }
                    _ => gone.push(index),
                }
            }
            if let Some(stopped) = sized.stopped {
                // Keep what was learnt for the next login.
                if rewrite_cache {
                    write_partial_size_cache(maildir, &names, &records);
                }
                return Err(stopped);
            }
            // `unknown`, and so `gone`, is in increasing order.
            if !gone.is_empty() {
                order.retain(|index| gone.binary_search(index).is_err());
            }
        }
        names.shrink_to_fit();
        // Records in message order, for LIST and UIDL to read front to back.
        let records = in_message_order(records, &order);

        let mailbox = Mailbox {
            root: maildir.to_path_buf(),
            on_dele: options.on_dele.clone(),
            snapshot: Arc::new(Snapshot {
                names,
                records,
                listed_at: order,
            }),
            stale: Mutex::new(Vec::new()),
            _lock: lock,
        };
        if rewrite_cache {
            // Rewriting the cache moves the root's stamp: nothing to keep.
            mailbox.write_size_cache(None);
        } else if let (Some(cache), Some(root), Some((cur, new))) =
            (&options.snapshots, root_stamp, dir_stamps)
        {
            // Only a snapshot of cur/ alone: one with messages left in new/
            // would move them on its next open.
            let snapshot = &mailbox.snapshot;
            if snapshot.records.iter().all(|record| record.dir == Dir::Cur) {
                let stamps = Stamps { root, cur, new };
                let weight = snapshot.weight();
                cache.put(
                    maildir,
                    options.order,
                    stamps,
                    stamped,
                    Arc::clone(snapshot),
                    weight,
                );
            }
        }
        Ok(mailbox)
    }

    /// Opens the mailbox from the snapshot an earlier login of this
    /// process kept in `options.snapshots`, when the Maildir has not
    /// changed since, without listing it and without ever waiting for the
    /// disk: the directories are opened only from the kernel's caches, and
    /// the session lock only when it is free (see [`snapshot_cache`]). So
    /// it may run on an async thread.
    ///
    /// `None` means "call [`open`](Self::open) on a blocking thread": no
    /// snapshot kept, the Maildir changed, the lock is held, or something
    /// would have to wait.
    pub fn open_nowait(maildir: &Path, options: &OpenOptions) -> Option<Mailbox> {
        let cache = options.snapshots.as_ref()?;
        let (valid_for, snapshot) = cache.get(maildir, options.order)?;
        let root = snapshot_cache::open_cached_dir(rustix::fs::CWD, maildir)?;
        // The lock first, as for a listing: a session that deleted and
        // then let go has moved the stamps by the time it is ours.
        let lock = match options.lock {
            true => Some(SessionLock::try_cached(&root)?),
            false => None,
        };
        (snapshot_cache::stamps_cached(&root)? == valid_for).then(|| Mailbox {
            root: maildir.to_path_buf(),
            on_dele: options.on_dele.clone(),
            snapshot,
            stale: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// How many messages the snapshot holds.
    pub fn len(&self) -> usize {
        self.snapshot.records.len()
    }

    /// `true` when the snapshot holds no message.
    pub fn is_empty(&self) -> bool {
        self.snapshot.records.is_empty()
    }

    /// The size of message `index` (0-based) as LIST and STAT report it:
    /// the exact number of octets RETR sends before dot-stuffing and
    /// without the terminator. `None` outside the snapshot.
    pub fn size(&self, index: usize) -> Option<u64> {
        self.record(index).map(|record| record.size)
    }

    /// The UIDL of message `index` (0-based; see [`uidl`](crate::uidl)):
    /// 1 to 70 octets of printable ASCII, ready for the wire. `None`
    /// outside the snapshot.
    ///
    /// Bytes rather than `&str`: a UIDL listing asks for every message's,
    /// and checking each for UTF-8 again cost more than the rest of the
    /// lookup.
    pub fn uidl(&self, index: usize) -> Option<&[u8]> {
        let record = self.record(index)?;
        Some(self.snapshot.names.get(record.uidl()))
    }

    /// The Maildir this mailbox was opened on.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The record of message `index`.
    fn record(&self, index: usize) -> Option<Record> {
        self.snapshot.records.get(index).copied()
    }

    /// The file of message `index` (0-based).
    pub(crate) fn file(&self, index: usize) -> Option<MessageFile<'_>> {
        let record = self.record(index)?;
        Some(MessageFile {
            dir: record.dir,
            name: self.snapshot.names.os_str(record.name()),
        })
    }

    /// Opens message `index` (0-based) for reading, positioned at its
    /// start, with its length on disk. Feed the file to a
    /// [`wire::Encoder`](crate::wire::Encoder), and the length to
    /// [`read::read_start`](crate::read::read_start), which then need not
    /// ask the kernel for it again.
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
    pub fn open_message(&self, index: usize) -> Result<OpenedMessage, StoreError> {
        let record = self.record(index).ok_or(StoreError::NoSuchMessage(index))?;
        let message = MessageFile {
            dir: record.dir,
            name: self.snapshot.names.os_str(record.name()),
        };
        let path = snapshot::path(&self.root, message.dir, message.name);
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
        if record.raw_size().is_some_and(|raw| raw != len) {
            self.write_size_cache(Some(index));
        }
        Ok(OpenedMessage { file, len })
    }

    /// Like [`open_message`](Self::open_message), but only when the kernel
    /// can open the file from its caches, so the call never waits for the
    /// disk and may run on an async thread (see [`crate::read`]).
    ///
    /// `Ok(None)` means "call `open_message` on a blocking thread": the
    /// kernel would have to wait, or cannot tell, or opening needs more
    /// than an open (the file was renamed and must be looked for, or its
    /// cached size turned out stale and the cache must be rewritten).
    pub fn open_message_nowait(&self, index: usize) -> Result<Option<OpenedMessage>, StoreError> {
        let record = self.record(index).ok_or(StoreError::NoSuchMessage(index))?;
        let name = self.snapshot.names.os_str(record.name());
        let path = snapshot::path(&self.root, record.dir, name);
        match file::open_regular_cached(&path) {
            Ok(Some((_, len))) if record.raw_size().is_some_and(|raw| raw != len) => Ok(None),
            Ok(opened) => Ok(opened.map(|(file, len)| OpenedMessage { file, len })),
            Err(OpenError::NotFound) => Ok(None),
            Err(err) => Err(open_error(err, path)),
        }
    }

    /// What [`Prefetch::load`](crate::prefetch::Prefetch::load) needs to
    /// bring message `index` (0-based) into memory ahead of its RETR;
    /// `None` for an index outside the snapshot.
    pub fn prefetch(&self, index: usize) -> Option<crate::prefetch::Prefetch> {
        let message = self.file(index)?;
        Some(crate::prefetch::Prefetch {
            path: snapshot::path(&self.root, message.dir, message.name),
        })
    }

    /// UPDATE: applies the `on_dele` policy to the messages at `deleted`
    /// (0-based indices, in any order, repeats ignored), then releases the
    /// lock. A message that fails does not stop the others; see
    /// [`CommitReport`](crate::CommitReport).
    pub fn commit(self, deleted: &[usize]) -> crate::CommitReport {
        crate::update::apply(&self, deleted)
    }

    /// Rewrites the size cache from the snapshot, in listing order, leaving
    /// out message `also_stale` and those found stale before. Best effort:
    /// a cache that cannot be written is simply not used.
    fn write_size_cache(&self, also_stale: Option<usize>) {
        let mut stale = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        stale.extend(also_stale);
        // The message at each listing position (u32::MAX: none).
        let listed = self
            .snapshot
            .listed_at
            .iter()
            .max()
            .map_or(0, |&last| last as usize + 1);
        let mut by_listing = vec![u32::MAX; listed];
        for (index, &at) in (0u32..).zip(&self.snapshot.listed_at) {
            if let Some(slot) = by_listing.get_mut(at as usize) {
                *slot = index;
            }
        }
        let entries = by_listing
            .into_iter()
            .map(|index| index as usize)
            .filter(|index| !stale.contains(index))
            .filter_map(|index| {
                let record = self.snapshot.records.get(index)?;
                let raw = record.raw_size()?;
                let unique = self.snapshot.names.get(record.unique());
                Some((
                    unique,
                    Sizes {
                        raw,
                        wire: record.size,
                    },
                ))
            });
        // Ignored on purpose: the cache is an optimisation only.
        let _ = size_cache::write(&self.root, entries);
    }
}

/// Writes the size cache from records still in directory order, when
/// opening stopped before the snapshot was complete. Best effort, like
/// [`Mailbox::write_size_cache`].
fn write_partial_size_cache(maildir: &Path, names: &Arena, records: &[Record]) {
    let entries = records.iter().filter_map(|record| {
        let raw = record.raw_size()?;
        Some((
            names.get(record.unique()),
            Sizes {
                raw,
                wire: record.size,
            },
        ))
    });
    // Ignored on purpose: the cache is an optimisation only.
    let _ = size_cache::write(maildir, entries);
}

/// The records at `order` (positions in `records`), in that order. Moves
/// them in place, following the cycles of the permutation, so a second
/// array of records never exists.
fn in_message_order(mut records: Vec<Record>, order: &[u32]) -> Vec<Record> {
    // Positions not in `order` (messages that vanished) go last, then
    // are cut off.
    let mut permutation = Vec::with_capacity(records.len());
    permutation.extend_from_slice(order);
    if permutation.len() < records.len() {
        let mut listed = vec![false; records.len()];
        for &at in order {
            if let Some(listed) = listed.get_mut(at as usize) {
                *listed = true;
            }
        }
        permutation.extend((0u32..).zip(&listed).filter(|(_, &l)| !l).map(|(at, _)| at));
    }
    let mut placed = vec![false; records.len()];
    for start in 0..records.len() {
        if placed.get(start).copied().unwrap_or(true) {
            continue;
        }
        let first = records.get(start).copied();
        let mut to = start;
        loop {
            if let Some(placed) = placed.get_mut(to) {
                *placed = true;
            }
            let from = permutation.get(to).map_or(start, |&from| from as usize);
            let moved = if from == start {
                first
            } else {
                records.get(from).copied()
            };
            if let (Some(slot), Some(record)) = (records.get_mut(to), moved) {
                *slot = record;
            }
            if from == start {
                break;
            }
            to = from;
        }
    }
    records.truncate(order.len());
    records
}

/// Opens a message file found again by its unique name.
fn open_existing(path: &Path) -> Result<(File, u64), StoreError> {
    file::open_regular(path).map_err(|err| open_error(err, path.to_path_buf()))
}

/// The error for a message file that could not be opened.
pub(crate) fn open_error(err: OpenError, path: PathBuf) -> StoreError {
    match err {
        OpenError::NotFound => StoreError::Vanished,
        OpenError::NotRegular => StoreError::NotRegularFile(path),
        OpenError::Io(err) => StoreError::io(format!("opening {}", path.display()), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64) -> Record {
        Record {
            size,
            raw_size: NO_RAW_SIZE,
            name_start: 0,
            uidl_start: 0,
            name_len: 0,
            unique_len: 0,
            uidl_len: 0,
            dir: Dir::Cur,
        }
    }

    #[test]
    fn records_are_put_in_message_order_in_place() {
        let records: Vec<Record> = (0..10).map(record).collect();
        for order in [
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
            vec![3, 0, 1, 2, 7, 8, 9, 4, 6, 5],
            vec![5, 2, 8],
            vec![],
        ] {
            let sizes: Vec<u64> = in_message_order(records.clone(), &order)
                .iter()
                .map(|record| record.size)
                .collect();
            let expected: Vec<u64> = order.iter().map(|&at| u64::from(at)).collect();
            assert_eq!(sizes, expected, "{order:?}");
        }
    }

    #[test]
    fn a_record_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 32);
    }
}
