//! Opening an unchanged mailbox again without listing it, and without
//! waiting for the disk.
//!
//! Most logins find the mailbox as the last one left it: a client polls
//! every few minutes and there is nothing new. Listing `cur/` and `new/`,
//! reading the migration lists and the size cache again costs about as
//! many system calls as the rest of the session, and a trip to a blocking
//! thread on top. So the snapshot a login took is kept, shared, in a
//! [`SnapshotCache`], with a stamp of each of the Maildir's three
//! directories (device, inode, modification and change times). A later
//! login of the same Maildir (in the same order) opens the three
//! directories with `openat2(RESOLVE_CACHED)`, which fails rather than wait
//! for the disk, compares their stamps, and reuses the snapshot when none
//! moved ([`Mailbox::open_nowait`](crate::Mailbox::open_nowait)).
//!
//! Why the stamps are enough: every change to what a snapshot holds is an
//! entry created, removed or renamed in `cur/` or `new/` (a delivery, a
//! deletion, a flag change, a move from `new/`), which sets that
//! directory's modification time; a migration list or the size cache
//! changing is the same in the root. File contents changed in place are
//! caught at RETR as for any snapshot (the size on disk is checked).
//!
//! Why they can be trusted: a file system stamps a change with a clock
//! that ticks in steps (a few milliseconds, or a whole second on old ext4
//! inodes), so a change made in the same step as the stamp was taken
//! would leave it unchanged. A snapshot is therefore kept only when every
//! directory's modification time was at least [`TRUST_AGE`] old when it
//! was stamped, before the listing: any later change falls in a later step
//! and moves the stamp. And only on file systems that keep the times on
//! the machine itself (ext4, XFS, Btrfs, tmpfs); on NFS or FUSE a stamp is
//! what the server said last, and every login lists.
//!
//! With the session lock, the lock is taken before the stamps are
//! compared, as a listing comes after the lock: a session that deletes
//! messages and then lets go of the lock has moved the stamps by then.
//! A lock held by another session, or one that cannot be taken at once,
//! sends the login to the blocking path, which waits as always.
//!
//! The cache holds at most its budget of snapshots (names, records), given
//! to [`SnapshotCache::new`]: [`DEFAULT_BUDGET`] unless the gateway's
//! `[store] snapshot_cache` says otherwise (0 there means no cache at all).
//! A snapshot over a quarter of it is not kept, and room is made by
//! dropping other entries.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{fstat, fstatfs, openat2, Mode, OFlags, ResolveFlags};

use crate::mailbox::Snapshot;
use crate::Order;

/// How old a directory's modification time must be when it is stamped for
/// the snapshot to be kept: comfortably more than the coarsest clock step
/// of the file systems the cache is used on (one second).
pub const TRUST_AGE: Duration = Duration::from_secs(2);

/// How many octets of snapshots a cache holds by default: about 300,000
/// messages' worth.
pub const DEFAULT_BUDGET: usize = 32 * 1024 * 1024;

/// File systems whose times are the machine's own (`statfs` magic numbers):
/// ext2/3/4, XFS, Btrfs, tmpfs.
const LOCAL_FILE_SYSTEMS: [i64; 4] = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994];

/// One directory as it was: which it is and when it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    mtime: (i64, u64),
    ctime: (i64, u64),
}

impl Stamp {
    /// The stamp of the open directory `dir`.
    pub(crate) fn of(dir: impl AsFd) -> rustix::io::Result<Stamp> {
        let stat = fstat(dir)?;
        Ok(Stamp {
            dev: stat.st_dev,
            ino: stat.st_ino,
            mtime: (stat.st_mtime, stat.st_mtime_nsec),
            ctime: (stat.st_ctime, stat.st_ctime_nsec),
        })
    }

    /// Last changed at least [`TRUST_AGE`] before `now`.
    fn is_settled(self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let (secs, nanos) = self.mtime;
        let (Ok(secs), Ok(nanos)) = (u64::try_from(secs), u32::try_from(nanos)) else {
            return false;
        };
        Duration::new(secs, nanos.min(999_999_999)) + TRUST_AGE <= now
    }
}

/// The stamps of a Maildir's root, `cur/` and `new/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamps {
    pub(crate) root: Stamp,
    pub(crate) cur: Stamp,
    pub(crate) new: Stamp,
}

/// `true` when the open directory `dir` is on a file system that keeps
/// its times on this machine (see [`LOCAL_FILE_SYSTEMS`]).
#[allow(
    clippy::useless_conversion,
    reason = "f_type is an i64 here, an i32 on 32-bit targets"
)]
pub(crate) fn is_local(dir: impl AsFd) -> bool {
    fstatfs(dir).is_ok_and(|fs| LOCAL_FILE_SYSTEMS.contains(&i64::from(fs.f_type)))
}

/// Opens the directory `name` (in `dir`) only from the kernel's lookup
/// cache: `None` when that would wait for the disk, or fails.
pub(crate) fn open_cached_dir(dir: impl AsFd, name: impl rustix::path::Arg) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    openat2(dir, name, flags, Mode::empty(), ResolveFlags::CACHED).ok()
}

/// The stamps of the Maildir open as `root` and of its `cur/` and `new/`,
/// opened only from the kernel's caches; `None` as soon as one would wait
/// or fails.
pub(crate) fn stamps_cached(root: &OwnedFd) -> Option<Stamps> {
    let stamp = |name: &str| Stamp::of(open_cached_dir(root, name)?).ok();
    Some(Stamps {
        root: Stamp::of(root).ok()?,
        cur: stamp("cur")?,
        new: stamp("new")?,
    })
}

/// Which of [`Entries::by_order`] holds the snapshots numbered in `order`.
fn order_index(order: Order) -> usize {
    usize::from(order == Order::NewestFirst)
}

/// A kept snapshot and the stamps it is valid for.
struct Entry {
    stamps: Stamps,
    snapshot: Arc<Snapshot>,
    bytes: usize,
}

/// The entries and what they weigh.
struct Entries {
    /// By Maildir, one map per order (see [`order_index`]): a login looks
    /// its Maildir up by the path it has, with no key to build.
    by_order: [HashMap<PathBuf, Entry>; 2],
    bytes: usize,
}

impl Entries {
    /// Forgets the snapshot of `root` in the map at `index`, if any.
    fn remove(&mut self, index: usize, root: &Path) {
        if let Some(old) = self
            .by_order
            .get_mut(index)
            .and_then(|map| map.remove(root))
        {
            self.bytes -= old.bytes;
        }
    }

    /// Some kept snapshot: its map and Maildir.
    fn any(&self) -> Option<(usize, PathBuf)> {
        (0..)
            .zip(&self.by_order)
            .find_map(|(index, map)| Some((index, map.keys().next()?.clone())))
    }
}

/// Snapshots of Maildirs as logins left them, for the next login of each
/// to reuse while nothing changed (see the module header). One per
/// process; share it through [`OpenOptions`](crate::OpenOptions).
pub struct SnapshotCache {
    entries: Mutex<Entries>,
    budget: usize,
}

impl SnapshotCache {
    /// An empty cache holding at most `budget` octets of snapshots.
    pub fn new(budget: usize) -> SnapshotCache {
        SnapshotCache {
            entries: Mutex::new(Entries {
                by_order: [HashMap::new(), HashMap::new()],
                bytes: 0,
            }),
            budget,
        }
    }

    /// The snapshot kept for `root` in `order` and the stamps it is valid
    /// for.
    pub(crate) fn get(&self, root: &Path, order: Order) -> Option<(Stamps, Arc<Snapshot>)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.by_order.get(order_index(order))?.get(root)?;
        Some((entry.stamps, Arc::clone(&entry.snapshot)))
    }

    /// Keeps `snapshot` of `root` in `order`, weighing `bytes`, as valid
    /// for `stamps` taken at `stamped`; an older one goes. Nothing is kept
    /// when a directory had changed less than [`TRUST_AGE`] before
    /// `stamped`, or when the snapshot weighs over a quarter of the
    /// budget.
    pub(crate) fn put(
        &self,
        root: &Path,
        order: Order,
        stamps: Stamps,
        stamped: SystemTime,
        snapshot: Arc<Snapshot>,
        bytes: usize,
    ) {
        let index = order_index(order);
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = &mut *guard;
        entries.remove(index, root);
        let settled = [stamps.root, stamps.cur, stamps.new]
            .iter()
            .all(|stamp| stamp.is_settled(stamped));
        if !settled || bytes > self.budget / 4 {
            return;
        }
        while entries.bytes + bytes > self.budget {
            let Some((victim_index, victim)) = entries.any() else {
                break;
            };
            entries.remove(victim_index, &victim);
        }
        if let Some(map) = entries.by_order.get_mut(index) {
            entries.bytes += bytes;
            map.insert(
                root.to_path_buf(),
                Entry {
                    stamps,
                    snapshot,
                    bytes,
                },
            );
        }
    }

    /// How many snapshots are kept.
    pub fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.by_order.iter().map(HashMap::len).sum()
    }

    /// `true` when no snapshot is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SnapshotCache {
    /// An empty cache of [`DEFAULT_BUDGET`] octets.
    fn default() -> SnapshotCache {
        SnapshotCache::new(DEFAULT_BUDGET)
    }
}

impl fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SnapshotCache")
            .field(
                "snapshots",
                &entries.by_order.iter().map(HashMap::len).sum::<usize>(),
            )
            .field("bytes", &entries.bytes)
            .field("budget", &self.budget)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_file_systems_that_keep_their_times_here_count_as_local() {
        let temp = tempfile::tempdir().unwrap();
        let here = std::fs::File::open(temp.path()).unwrap();
        assert!(
            is_local(&here),
            "the test's temporary directory (ext4, tmpfs, ...)"
        );
        // procfs and sysfs are neither: they stand in for NFS and FUSE,
        // which a test cannot mount.
        for elsewhere in ["/proc", "/sys"] {
            let dir = std::fs::File::open(elsewhere).unwrap();
            assert!(!is_local(&dir), "{elsewhere}");
        }
    }

    fn stamp(mtime_secs: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            mtime: (mtime_secs, 0),
            ctime: (mtime_secs, 0),
        }
    }

    fn stamps(mtime_secs: i64) -> Stamps {
        Stamps {
            root: stamp(mtime_secs),
            cur: stamp(mtime_secs),
            new: stamp(mtime_secs),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn kept(cache: &SnapshotCache, root: &str, order: Order) -> Option<Arc<Snapshot>> {
        cache
            .get(Path::new(root), order)
            .map(|(_, snapshot)| snapshot)
    }

    #[test]
    fn a_snapshot_of_directories_changed_within_the_trust_age_is_not_kept() {
        let cache = SnapshotCache::new(1000);
        let (root, order) = (Path::new("/m"), Order::OldestFirst);
        let snapshot = Arc::new(Snapshot::default());
        cache.put(root, order, stamps(1000), at(1001), snapshot.clone(), 10);
        assert!(cache.get(root, order).is_none());
        cache.put(root, order, stamps(1000), at(1002), snapshot.clone(), 10);
        let (valid_for, found) = cache.get(root, order).expect("kept");
        assert_eq!(valid_for, stamps(1000));
        assert!(Arc::ptr_eq(&found, &snapshot));
        // One directory changed just now is enough to keep nothing, and
        // the older snapshot goes too.
        let mut fresh = stamps(1000);
        fresh.new = stamp(1999);
        cache.put(root, order, fresh, at(2000), snapshot, 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn each_order_has_its_own_snapshot() {
        let cache = SnapshotCache::new(1000);
        let (oldest, newest) = (Arc::new(Snapshot::default()), Arc::new(Snapshot::default()));
        cache.put(
            Path::new("/m"),
            Order::OldestFirst,
            stamps(1),
            at(100),
            oldest.clone(),
            10,
        );
        assert!(kept(&cache, "/m", Order::NewestFirst).is_none());
        cache.put(
            Path::new("/m"),
            Order::NewestFirst,
            stamps(1),
            at(100),
            newest.clone(),
            10,
        );
        assert!(kept(&cache, "/m", Order::OldestFirst).is_some_and(|s| Arc::ptr_eq(&s, &oldest)));
        assert!(kept(&cache, "/m", Order::NewestFirst).is_some_and(|s| Arc::ptr_eq(&s, &newest)));
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let cache = SnapshotCache::new(100);
        let snapshot = Arc::new(Snapshot::default());
        // Over a quarter of the budget: not kept.
        cache.put(
            Path::new("/big"),
            Order::OldestFirst,
            stamps(1),
            at(100),
            snapshot.clone(),
            26,
        );
        assert!(cache.is_empty());
        for n in 0..10 {
            let root = format!("/m{n}");
            cache.put(
                Path::new(&root),
                Order::OldestFirst,
                stamps(1),
                at(100),
                snapshot.clone(),
                25,
            );
            let bytes = cache
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bytes;
            assert!(bytes <= 100, "{bytes} octets kept");
            assert!(kept(&cache, &root, Order::OldestFirst).is_some());
        }
        assert_eq!(cache.len(), 4);
    }
}
