//! The session lock: one POP3 session per mailbox (RFC 1939 §8).
//!
//! The lock is a write lock on the whole of the file `popgate-pop3.lock` in
//! the Maildir root, taken with a Linux *open file description* lock
//! (`F_OFD_SETLK`). Such a lock
//!
//! * is a POSIX record lock, so NFS (lockd / NFSv4) carries it to other
//!   hosts sharing the Maildir;
//! * belongs to the open file, not to the process, so two sessions in the
//!   same gateway process exclude each other too (a classic `F_SETLK` lock
//!   would not);
//! * goes away when the file is closed, so dropping the [`SessionLock`] (or
//!   a crash) releases it.
//!
//! A second session polls every [`RETRY_EVERY`] until `lock_wait` has
//! passed, then gives up with [`StoreError::Locked`]: overlapping polls from
//! the same client succeed instead of failing. A login deadline that comes
//! sooner cuts the wait short with [`StoreError::TimedOut`].

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use crate::StoreError;

/// The lock file's name in the Maildir root.
pub const LOCK_FILE: &str = "popgate-pop3.lock";

/// How often a waiting session tries again.
const RETRY_EVERY: Duration = Duration::from_millis(75);

/// A held session lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct SessionLock {
    /// The open lock file. Closing it releases the OFD lock.
    _file: File,
}

impl SessionLock {
    /// Takes the lock of the Maildir at `maildir`, waiting up to `wait`
    /// ([`StoreError::Locked`]), and never past `deadline`
    /// ([`StoreError::TimedOut`]).
    pub(crate) fn acquire(
        maildir: &Path,
        wait: Duration,
        deadline: Option<Instant>,
    ) -> Result<SessionLock, StoreError> {
        let path = maildir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|err| StoreError::io(format!("opening {}", path.display()), err))?;
        let waited_out = Instant::now() + wait;
        let (give_up, cut_short) = match deadline {
            Some(deadline) if deadline < waited_out => (deadline, true),
            _ => (waited_out, false),
        };
        loop {
            match try_lock(&file) {
                Ok(()) => return Ok(SessionLock { _file: file }),
                Err(Errno::EAGAIN | Errno::EACCES) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(StoreError::io(
                        format!("locking {}", path.display()),
                        errno.into(),
                    ))
                }
            }
            let now = Instant::now();
            if now >= give_up {
                return Err(if cut_short {
                    StoreError::TimedOut
                } else {
                    StoreError::Locked
                });
            }
            thread::sleep(RETRY_EVERY.min(give_up - now));
        }
    }

    /// Takes the lock of the Maildir open as `root` only if that cannot
    /// wait: the lock file already exists and is found from the kernel's
    /// caches, and no other session holds the lock. `None` otherwise; then
    /// [`acquire`](Self::acquire) waits as usual.
    pub(crate) fn try_cached(root: &OwnedFd) -> Option<SessionLock> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = openat2(root, LOCK_FILE, flags, Mode::empty(), ResolveFlags::CACHED).ok()?;
        let file = File::from(fd);
        try_lock(&file).ok()?;
        Some(SessionLock { _file: file })
    }
}

/// One non-blocking attempt at a whole-file OFD write lock.
fn try_lock(file: &File) -> Result<(), Errno> {
    let request = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // OFD locks require l_pid to be 0.
        l_pid: 0,
    };
    fcntl(file, FcntlArg::F_OFD_SETLK(&request)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_the_lock_file_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let _lock = SessionLock::acquire(dir.path(), Duration::ZERO, None)?;
        let mode = std::fs::metadata(dir.path().join(LOCK_FILE))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn second_lock_waits_then_fails_and_drop_releases() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = SessionLock::acquire(dir.path(), Duration::ZERO, None)?;
        let started = Instant::now();
        let second = SessionLock::acquire(dir.path(), Duration::from_millis(200), None);
        assert!(matches!(second, Err(StoreError::Locked)));
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(first);
        SessionLock::acquire(dir.path(), Duration::ZERO, None)?;
        Ok(())
    }

    #[test]
    fn a_sooner_deadline_cuts_the_wait_short() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let _first = SessionLock::acquire(dir.path(), Duration::ZERO, None)?;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let second = SessionLock::acquire(dir.path(), Duration::from_secs(30), Some(deadline));
        assert!(matches!(second, Err(StoreError::TimedOut)));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(10));
        // A later deadline leaves lock_wait in charge.
        let far = Instant::now() + Duration::from_secs(30);
        let third = SessionLock::acquire(dir.path(), Duration::from_millis(100), Some(far));
        assert!(matches!(third, Err(StoreError::Locked)));
        Ok(())
    }

    #[test]
    fn waiting_lock_gets_it_when_released() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = SessionLock::acquire(dir.path(), Duration::ZERO, None)?;
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            drop(first);
        });
        let started = Instant::now();
        let second = SessionLock::acquire(dir.path(), Duration::from_secs(5), None);
        assert!(second.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(releaser.join().is_ok());
        Ok(())
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let result = SessionLock::acquire(Path::new("/nonexistent/popgate"), Duration::ZERO, None);
        assert!(matches!(result, Err(StoreError::Io { .. })));
    }
}
