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
//! of sizing threads in the whole process stays bounded.
//!
//! The gateway opens a mailbox on a thread whose filesystem uid and gid
//! are the session user's (`setfsuid`, per thread). Threads started from
//! it inherit them (Linux gives a new thread a copy of its creator's
//! credentials), so the helpers read files with the user's rights too.

use std::io::Read;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use crate::file::{self, OpenError};
use crate::size_cache::Sizes;
use crate::{wire, StoreError};

/// The most threads one login sizes messages with.
pub(crate) const MAX_THREADS: usize = 4;

/// Below this many files, one thread does it all (spawning costs more).
const PARALLEL_FROM: usize = 64;

/// How many paths a worker takes from the shared counter at a time.
const BATCH: usize = 16;

/// The sizes of the files at `paths`, in the same order: `None` for a file
/// that disappeared or is not a regular file any more. The first error
/// (by position in `paths`) is returned when a file cannot be read.
pub(crate) fn compute_all(paths: &[PathBuf]) -> Result<Vec<Option<Sizes>>, StoreError> {
    let threads = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS);
    compute_with(paths, threads)
}

/// [`compute_all`] with an explicit number of threads (at least one).
fn compute_with(paths: &[PathBuf], threads: usize) -> Result<Vec<Option<Sizes>>, StoreError> {
    let work = Work {
        paths,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    };
    let mut done = if threads <= 1 || paths.len() < PARALLEL_FROM {
        work.run()
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
            let mut done = work.run();
            for helper in helpers {
                match helper.join() {
                    Ok(more) => done.extend(more),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            done
        })
    };
    done.sort_unstable_by_key(|(index, _)| *index);
    let mut sizes = Vec::with_capacity(paths.len());
    for (_, result) in done {
        sizes.push(result?);
    }
    Ok(sizes)
}

/// The paths to size and the counter the workers share.
struct Work<'a> {
    paths: &'a [PathBuf],
    next: AtomicUsize,
    failed: AtomicBool,
}

/// A result and the position of its path.
type Done = (usize, Result<Option<Sizes>, StoreError>);

impl Work<'_> {
    /// Sizes batches of paths until none are left or some worker failed.
    fn run(&self) -> Vec<Done> {
        let mut buf = vec![0u8; wire::READ_CHUNK];
        let mut done = Vec::new();
        while !self.failed.load(Ordering::Relaxed) {
            let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
            let Some(batch) = self.paths.get(start..) else {
                break;
            };
            for (offset, path) in batch.iter().take(BATCH).enumerate() {
                let result = compute_sizes(path, &mut buf);
                if result.is_err() {
                    self.failed.store(true, Ordering::Relaxed);
                }
                done.push((start + offset, result));
            }
        }
        done
    }
}

/// Reads a message once for its sizes; `None` when it disappeared or is not
/// a regular file any more.
fn compute_sizes(path: &Path, buf: &mut [u8]) -> Result<Option<Sizes>, StoreError> {
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
    let wire = wire::wire_size_with(file.take(raw), buf)
        .map_err(|err| StoreError::io(format!("reading {}", path.display()), err))?;
    Ok(Some(Sizes { raw, wire }))
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
            assert_eq!(
                compute_with(&paths, threads)?,
                expected,
                "{threads} threads"
            );
        }
        assert_eq!(compute_all(&paths)?, expected);
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
            match compute_with(&paths, threads) {
                Err(StoreError::Io { context, .. }) => {
                    assert_eq!(context, format!("opening {}", bad.display()));
                }
                other => panic!("{threads} threads: {other:?}"),
            }
        }
        Ok(())
    }
}
