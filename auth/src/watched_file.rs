//! A configuration file watched for changes: the htpasswd file here, the
//! gateway's mailbox-settings file there.
//!
//! A [`FileWatch`] remembers what was last [`Seen`] of a file and when it
//! last looked. [`FileWatch::refresh`] looks at most once per interval, with
//! one `stat` comparing device, inode, size, modification and change times
//! ([`FileIdentity`]); only a changed file — or one that changed while it
//! was read ([`Seen::Unsettled`]) — is handed to the owner's `load` again.
//! While one thread looks, the others go on at once. [`FileWatch::reload`]
//! loads the file whatever its times say (SIGHUP).
//!
//! A load that fails remembers the file as it is at that moment, so the
//! next look waits for the file to change again instead of failing (and
//! logging) once per interval. What a load reads, and what it logs, stays
//! with the owner.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync;

/// A file, what was last seen of it, and when.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    watch: Mutex<Watch>,
}

/// What was last seen of the file.
#[derive(Debug)]
struct Watch {
    /// The file as last loaded, or as it was when loading it failed.
    seen: Seen,
    last_check: Instant,
}

/// The state of a file at a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A file with this identity.
    File(FileIdentity),
    /// No file there (or no `stat` possible).
    Missing,
    /// The file changed while it was read: read it again at the next look.
    Unsettled,
}

impl Seen {
    /// The file at `path` now.
    pub fn now(path: &Path) -> Seen {
        FileIdentity::of(path).map_or(Seen::Missing, Seen::File)
    }

    /// The file as a read saw it: `after` when it is what was there
    /// `before` the read, [`Seen::Unsettled`] when it changed meanwhile.
    pub fn settled(before: Seen, after: Seen) -> Seen {
        if before == after {
            after
        } else {
            Seen::Unsettled
        }
    }
}

/// Enough of a file's metadata to notice that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileIdentity {
    /// The file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let metadata = std::fs::metadata(path)?;
        Ok(FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }
}

impl FileWatch {
    /// Watches `path`, just loaded and `seen` so; the first look is one
    /// interval away.
    pub fn new(path: &Path, seen: Seen) -> FileWatch {
        FileWatch {
            path: path.to_owned(),
            watch: Mutex::new(Watch {
                seen,
                last_check: Instant::now(),
            }),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`refresh`](Self::refresh) would look at the file now (the
    /// last look is `interval` old); `None` while another thread looks.
    pub fn due(&self, interval: Duration) -> Option<bool> {
        sync::try_lock(&self.watch).map(|watch| watch.last_check.elapsed() >= interval)
    }

    /// Looks whether the file changed, at most once per `interval`, and if
    /// it did, loads it with `load` (which reads the file and says how it
    /// saw it). `None` when it did not look (too soon, or another thread is
    /// looking) or the file is as last seen. Blocking.
    pub fn refresh<T, E>(
        &self,
        interval: Duration,
        load: impl FnOnce() -> Result<(T, Seen), E>,
    ) -> Option<Result<T, E>> {
        let mut watch = sync::try_lock(&self.watch)?;
        let now = Instant::now();
        if now.duration_since(watch.last_check) < interval {
            return None;
        }
        watch.last_check = now;
        if watch.seen != Seen::Unsettled && Seen::now(&self.path) == watch.seen {
            return None;
        }
        Some(self.load(&mut watch, load))
    }

    /// Loads the file now with `load`, changed or not. Blocking.
    pub fn reload<T, E>(&self, load: impl FnOnce() -> Result<(T, Seen), E>) -> Result<T, E> {
        let mut watch = sync::lock(&self.watch);
        watch.last_check = Instant::now();
        self.load(&mut watch, load)
    }

    /// Runs `load`; on error remembers the file as it is now, so that only
    /// a further change brings another attempt.
    fn load<T, E>(
        &self,
        watch: &mut Watch,
        load: impl FnOnce() -> Result<(T, Seen), E>,
    ) -> Result<T, E> {
        match load() {
            Ok((loaded, seen)) => {
                watch.seen = seen;
                Ok(loaded)
            }
            Err(error) => {
                watch.seen = Seen::now(&self.path);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `path` as the owners do: its text, and how it was seen.
    fn load(path: &Path) -> Result<(String, Seen), std::io::Error> {
        let before = Seen::now(path);
        let text = std::fs::read_to_string(path)?;
        Ok((text, Seen::settled(before, Seen::now(path))))
    }

    /// A look before the interval is up, or at an unchanged file, loads
    /// nothing; a changed file is loaded; a failed load is not tried again
    /// until the file changes; an unsettled file is loaded at the next look.
    #[test]
    fn only_changes_are_loaded_and_failures_wait_for_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watched");
        std::fs::write(&path, "one").unwrap();
        let watch = FileWatch::new(&path, load(&path).unwrap().1);
        assert_eq!(watch.due(Duration::from_secs(3600)), Some(false));
        assert!(watch
            .refresh(Duration::from_secs(3600), || load(&path))
            .is_none());
        assert!(watch.refresh(Duration::ZERO, || load(&path)).is_none());

        std::fs::write(dir.path().join("new"), "two").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        let loaded = watch.refresh(Duration::ZERO, || load(&path));
        assert_eq!(loaded.unwrap().unwrap(), "two");

        std::fs::write(dir.path().join("new"), "three").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        let failed = watch.refresh(Duration::ZERO, || Err::<(String, Seen), _>("broken"));
        assert_eq!(failed, Some(Err("broken")));
        assert!(watch.refresh(Duration::ZERO, || load(&path)).is_none());
        assert_eq!(watch.reload(|| load(&path)).unwrap(), "three");

        let unsettled = watch.reload(|| Ok::<_, ()>(((), Seen::Unsettled)));
        assert_eq!(unsettled, Ok(()));
        let loaded = watch.refresh(Duration::ZERO, || load(&path));
        assert_eq!(loaded.unwrap().unwrap(), "three");
    }
}
