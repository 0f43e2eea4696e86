//! File identity: a system user's Maildir is touched with that user's rights.
//!
//! When popgate runs as root for system (PAM) users, every store call of a
//! session — opening (or first creating) the mailbox, opening a message,
//! applying deletions — and every step of a local delivery into a user's
//! Maildir runs on a thread whose *filesystem* uid and gid (Linux
//! `setfsuid`/`setfsgid`) are the user's. The kernel then checks every open,
//! rename and unlink as if the user did it: a session can read, list or
//! delete only what its user could. The switch is per thread, so other
//! sessions, on other threads, are not affected; [`run_as`] restores root's
//! identity when the call returns, also when it panics.
//!
//! Supplementary groups cannot be set per thread portably, so they are
//! dropped for the whole process at start-up ([`drop_supplementary_groups`]):
//! otherwise root's group 0 would let every session read files that are
//! readable by group `root`. The user's own supplementary groups are not
//! used; their primary group (the fsgid) is.
//!
//! ```no_run
//! use popgate::identity::{run_as, Identity};
//!
//! let alice = Identity { uid: 1001, gid: 1001 };
//! let listing = run_as(Some(alice), || std::fs::read_dir("/home/alice/Maildir/cur"));
//! ```

use nix::unistd::{getegid, geteuid, setfsgid, setfsuid, Gid, Uid};

/// A host user's filesystem identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

impl Identity {
    /// The identity of an authenticated account: `Some` for system users
    /// when the process runs as root (only root can switch), else `None`.
    pub fn of(account: &popgate_auth::Account) -> Option<Identity> {
        match (account.uid, account.gid) {
            (Some(uid), Some(gid)) if geteuid().is_root() => Some(Identity { uid, gid }),
            _ => None,
        }
    }
}

/// Why the identity could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("cannot take the filesystem identity uid={uid} gid={gid}")]
pub struct IdentityError {
    uid: u32,
    gid: u32,
}

/// Runs `f` on this thread with `identity`'s filesystem uid and gid, then
/// restores the process's own; with `None`, just runs `f`.
///
/// `f` is a plain closure, so no other session's task can run on this
/// thread before the identity is restored. Still, file calls may wait for
/// the disk: run them on a blocking thread (inside `spawn_blocking`), and on
/// an async thread only calls that cannot wait, such as
/// [`Mailbox::open_message_nowait`](popgate_store::Mailbox::open_message_nowait).
pub fn run_as<T>(identity: Option<Identity>, f: impl FnOnce() -> T) -> Result<T, IdentityError> {
    let Some(identity) = identity else {
        return Ok(f());
    };
    let _guard = Switched::enter(identity)?;
    Ok(f())
}

/// Drops the process's supplementary groups (all threads); called once at
/// start-up when running as root for system users.
pub fn drop_supplementary_groups() -> nix::Result<()> {
    nix::unistd::setgroups(&[])
}

/// While alive, this thread has a user's filesystem identity.
struct Switched {
    uid: Uid,
    gid: Gid,
}

impl Switched {
    fn enter(identity: Identity) -> Result<Switched, IdentityError> {
        let restore = Switched {
            uid: geteuid(),
            gid: getegid(),
        };
        let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
        // The group first: once the fsuid is not root, changing the fsgid
        // may no longer be allowed.
        setfsgid(gid);
        setfsuid(uid);
        // setfsuid(2) reports no errors; asking again returns the current
        // value, which tells whether the switch took.
        if setfsgid(gid) != gid || setfsuid(uid) != uid {
            drop(restore);
            return Err(IdentityError {
                uid: identity.uid,
                gid: identity.gid,
            });
        }
        Ok(restore)
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        setfsuid(self.uid);
        setfsgid(self.gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_identity_nothing_changes() {
        assert_eq!(run_as(None, || 7).unwrap(), 7);
    }

    #[test]
    fn the_switch_holds_inside_and_is_undone_after() {
        if !geteuid().is_root() {
            eprintln!("skipped: setfsuid needs root (CI runs tests as root)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
        };
        let inside = run_as(Some(nobody), || std::fs::read(&secret)).unwrap();
        assert_eq!(
            inside.unwrap_err().kind(),
            std::io::ErrorKind::PermissionDenied
        );
        let panicked = std::panic::catch_unwind(|| {
            run_as(Some(nobody), || panic!("inside")).unwrap();
        });
        assert!(panicked.is_err());
        assert_eq!(std::fs::read(&secret).unwrap(), b"root only");
    }
}
