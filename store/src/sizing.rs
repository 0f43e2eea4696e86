//! Sizing many messages at once: the reads of a cold login, spread over a
//! few threads.
//!
//! A first login on a big Maildir reads every message once to learn its
//! wire size (see [`wire`](crate::wire)); for 100,000 messages that is more
//! than a gigabyte, mostly from the page cache, and the time goes into
//! copying and scanning bytes. [`compute_all`] hands the files out to at
//! most [`MAX_THREADS`] threads (fewer on a machine with fewer cores), each
//! reading through one reused buffer, and returns the sizes in the order of
//! the paths it was given, exactly as reading them one by one would:
//!
//! ```text
//! paths:   a  b  c  d  e  f ...      workers take the next few paths
//! thread 1 a  b  c        g  h ...   from a shared counter, and put each
//! thread 2          d  e  f    ...   result in its place
//! ```
//!
//! The caller holds a [`cold`](crate::cold) permit meanwhile, so the number
//! of sizing threads in the whole process stays bounded. It also passes the
//! login's deadline: every worker looks at the clock before each file and
//! before each read of a file (every 64 KiB), and once it has passed they
//! all stop with [`StoreError::TimedOut`]. A huge or sparse file a user made
//! then holds the permit, and a blocking thread, only until that user's own
//! login gives up, never for as long as it takes to read. What was sized
//! before the stop is returned too, so the caller can keep it.
//!
//! The gateway opens a mailbox on a thread whose filesystem uid and gid
//! are the session user's (`setfsuid`, per thread). Threads started from
//! it inherit them (Linux gives a new thread a copy of its creator's
//! credentials), so the helpers read files with the user's rights too.

use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use crate::file::{self, OpenError};
use crate::size_cache::Sizes;
use crate::{wire, StoreError};

/// The most threads one login sizes messages with.
pub(crate) const MAX_THREADS: usize = 4;

/// Below this many files, one thread does it all (spawning costs more).
const PARALLEL_FROM: usize = 64;

/// How many paths a worker takes from the shared counter at a time.
const BATCH: usize = 16;

/// What sizing found.
#[derive(Debug)]
pub(crate) struct Sized {
    /// The sizes of each file, in the order of the paths: `None` for a file
    /// that disappeared or is not a regular file any more, and, when
    /// sizing stopped early, for the files it did not get to.
    pub(crate) sizes: Vec<Option<Sizes>>,
    /// Why sizing stopped early: the first error by position (a file that
    /// cannot be read), or [`StoreError::TimedOut`].
    pub(crate) stopped: Option<StoreError>,
}

/// The sizes of `count` files, the `i`th at `path(i)`, reading no longer
/// than until `deadline`.
///
/// The paths are made one at a time as the workers need them, so sizing
/// 100,000 messages does not first build 100,000 paths.
pub(crate) fn compute_all<P>(count: usize, path: P, deadline: Option<Instant>) -> Sized
where
    P: Fn(usize) -> PathBuf + Sync,
{
    let threads = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS);
    compute_with(count, &path, threads, deadline)
}

/// [`compute_all`] with an explicit number of threads (at least one).
fn compute_with<P>(count: usize, path: &P, threads: usize, deadline: Option<Instant>) -> Sized
where
    P: Fn(usize) -> PathBuf + Sync,
{
    let work = Work {
        path,
        count,
        deadline,
        next: AtomicUsize::new(0),
        failed: Mutex::new(None),
        raw: (0..count).map(|_| AtomicU64::new(NOT_SIZED)).collect(),
        wire: (0..count).map(|_| AtomicU64::new(0)).collect(),
    };
    if threads <= 1 || count < PARALLEL_FROM {
        work.run();
    } else {
        thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| {
                    // A thread that cannot be started just means fewer helpers.
                    thread::Builder::new()
                        .name("popgate-sizing".into())
                        .spawn_scoped(scope, || work.run())
                        .ok()
                })
                .collect();
            work.run();
            for helper in helpers {
                if let Err(panic) = helper.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }
    let Work {
        failed, raw, wire, ..
    } = work;
    let stopped = failed
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .map(|(_, err)| err);
    let sizes = raw
        .into_iter()
        .zip(wire)
        .map(|(raw, wire)| {
            let raw = raw.into_inner();
            (raw != NOT_SIZED).then(|| Sizes {
                raw,
                wire: wire.into_inner(),
            })
        })
        .collect();
    Sized { sizes, stopped }
}

/// What a file's size on disk reads as until it was found (no file is
/// that long).
const NOT_SIZED: u64 = u64::MAX;

/// The files to size, the counter the workers share, and where they put
/// the results.
struct Work<'a, P> {
    path: &'a P,
    count: usize,
    /// When to stop reading.
    deadline: Option<Instant>,
    next: AtomicUsize,
    /// The error at the lowest position seen so far.
    failed: Mutex<Option<(usize, StoreError)>>,
    raw: Vec<AtomicU64>,
    wire: Vec<AtomicU64>,
}

impl<P: Fn(usize) -> PathBuf + Sync> Work<'_, P> {
    /// Sizes batches of files until none are left or some worker failed.
    fn run(&self) {
        let mut buf = vec![0u8; wire::READ_CHUNK];
        while !self.has_failed() {
            let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
            for at in start..self.count.min(start.saturating_add(BATCH)) {
                if has_passed(self.deadline) {
                    self.fail(at, StoreError::TimedOut);
                    return;
                }
                let path = (self.path)(at);
                match compute_sizes(&path, &mut buf, self.deadline) {
                    Ok(Some(sizes)) => {
                        if let (Some(raw), Some(wire)) = (self.raw.get(at), self.wire.get(at)) {
                            wire.store(sizes.wire, Ordering::Relaxed);
                            raw.store(sizes.raw, Ordering::Relaxed);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => self.fail(at, err),
                }
            }
            if start >= self.count {
                break;
            }
        }
    }

    fn has_failed(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Keeps `err` when it is the first by position.
    fn fail(&self, at: usize, err: StoreError) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.as_ref().is_none_or(|(first, _)| at < *first) {
            *failed = Some((at, err));
        }
    }
}

/// Reads a message once for its sizes, until `deadline` at the latest;
/// `None` when it disappeared or is not a regular file any more.
fn compute_sizes(
    path: &Path,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<Option<Sizes>, StoreError> {
    let (file, raw) = match file::open_regular(path) {
        Ok(opened) => opened,
        Err(OpenError::NotFound | OpenError::NotRegular) => return Ok(None),
        Err(OpenError::Io(err)) => {
            return Err(StoreError::io(format!("opening {}", path.display()), err))
        }
    };
    // Read no further than the length just found: that is what the cache
    // records next to the wire size, and it spares the read that would
    // only report the end of the file.
    let reader = UntilDeadline {
        inner: file.take(raw),
        deadline,
    };
    let wire = wire::wire_size_with(reader, buf).map_err(|err| {
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<DeadlinePassed>())
        {
            StoreError::TimedOut
        } else {
            StoreError::io(format!("reading {}", path.display()), err)
        }
    })?;
    Ok(Some(Sizes { raw, wire }))
}

/// `true` once `deadline` (if any) has passed.
fn has_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// The error a read fails with once the deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the deadline passed")]
struct DeadlinePassed;

/// A reader that fails every read after `deadline`.
struct UntilDeadline<R> {
    inner: R,
    deadline: Option<Instant>,
}

impl<R: Read> Read for UntilDeadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if has_passed(self.deadline) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Message texts with LF, CRLF, bare CR, dots and no final newline, some
    /// longer than one read buffer.
    fn text(i: usize) -> Vec<u8> {
        let line: &[u8] = match i % 4 {
            0 => b"Subject: lf\n",
            1 => b"Subject: crlf\r\n",
            2 => b".dot and bare \r cr\n",
            _ => b"no newline at the end",
        };
        line.repeat(1 + (i * 37) % 200 + if i % 50 == 0 { 9000 } else { 0 })
    }

    #[test]
    fn parallel_sizing_equals_sequential_reading() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut paths = Vec::new();
        for i in 0..300 {
            let path = dir.path().join(format!("{i}.m"));
            match i {
                // Gone, or not a regular file: left out as `None`.
                17 => {}
                42 => fs::create_dir(&path)?,
                99 => std::os::unix::fs::symlink(dir.path().join("0.m"), &path)?,
                _ => fs::write(&path, text(i))?,
            }
            paths.push(path);
        }
        let expected: Vec<Option<Sizes>> = paths
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let bytes = fs::read(path).ok()?;
                let wire = wire::wire_size(&bytes[..]).ok()?;
                (i != 99).then_some(Sizes {
                    raw: bytes.len() as u64,
                    wire,
                })
            })
            .collect();
        assert_eq!(expected.iter().filter(|s| s.is_none()).count(), 3);
        for threads in [1, 2, 3, MAX_THREADS] {
            let sized = compute_with(paths.len(), &|i| paths[i].clone(), threads, None);
            assert!(sized.stopped.is_none(), "{threads} threads");
            assert_eq!(sized.sizes, expected, "{threads} threads");
        }
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let sized = compute_all(paths.len(), |i| paths[i].clone(), Some(far));
        assert!(sized.stopped.is_none());
        assert_eq!(sized.sizes, expected);
        Ok(())
    }

    #[test]
    fn helper_threads_keep_the_filesystem_identity_of_their_creator() {
        use nix::unistd::{geteuid, setfsuid, Uid};
        if !geteuid().is_root() {
            eprintln!("skipped: setfsuid needs root");
            return;
        }
        let nobody = Uid::from_raw(65534);
        let current = || setfsuid(Uid::from_raw(u32::MAX)).as_raw();
        let seen = thread::scope(|scope| {
            scope
                .spawn(|| {
                    setfsuid(nobody);
                    let seen = thread::scope(|inner| inner.spawn(current).join().ok());
                    setfsuid(Uid::from_raw(0));
                    seen
                })
                .join()
                .ok()
                .flatten()
        });
        assert_eq!(seen, Some(65534));
    }

    #[test]
    fn an_unreadable_file_is_an_error_in_every_mode() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut paths = Vec::new();
        for i in 0..200 {
            let path = dir.path().join(format!("{i}.m"));
            fs::write(&path, text(i))?;
            paths.push(path);
        }
        // A path through a regular file: ENOTDIR, an I/O error, not "gone".
        let bad = dir.path().join("0.m").join("x");
        paths.insert(150, bad.clone());
        for threads in [1, 2, MAX_THREADS] {
            match compute_with(paths.len(), &|i| paths[i].clone(), threads, None).stopped {
                Some(StoreError::Io { context, .. }) => {
                    assert_eq!(context, format!("opening {}", bad.display()));
                }
                other => panic!("{threads} threads: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn a_huge_file_is_read_only_until_the_deadline() -> Result<(), Box<dyn std::error::Error>> {
        use std::time::Duration;
        let dir = tempfile::tempdir()?;
        let mut paths = Vec::new();
        for i in 0..100 {
            let path = dir.path().join(format!("{i}.m"));
            fs::write(&path, text(i))?;
            paths.push(path);
        }
        // 64 GiB of holes: reading it takes minutes, even from no disk.
        let huge = dir.path().join("huge.m");
        fs::File::create(&huge)?.set_len(64 << 30)?;
        paths.insert(70, huge);
        for threads in [1, MAX_THREADS] {
            let started = Instant::now();
            let deadline = started + Duration::from_millis(300);
            let sized = compute_with(paths.len(), &|i| paths[i].clone(), threads, Some(deadline));
            assert!(
                matches!(sized.stopped, Some(StoreError::TimedOut)),
                "{threads} threads: {:?}",
                sized.stopped
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{threads} threads"
            );
            assert_eq!(sized.sizes.len(), paths.len());
            assert!(sized.sizes[70].is_none());
            // What was sized before the stop is kept.
            assert!(
                sized.sizes[..70].iter().any(Option::is_some),
                "{threads} threads"
            );
        }
        // A deadline already passed reads nothing.
        let sized = compute_with(paths.len(), &|i| paths[i].clone(), 1, Some(Instant::now()));
        assert!(matches!(sized.stopped, Some(StoreError::TimedOut)));
        assert!(sized.sizes.iter().all(Option::is_none));
        Ok(())
    }
}
