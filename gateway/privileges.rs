//! Leaving root behind once the ports are bound, for virtual users.
//!
//! popgate needs root for two things only: binding ports below 1024 and, for
//! system (PAM) users, touching each user's Maildir with that user's rights
//! (see [`crate::identity`]). Virtual users' mail all belongs to one system
//! user (often `vmail`), so with `[store] mail_user` set popgate binds its
//! listeners as root and then becomes that user for good — real, effective
//! and saved ids, groups reduced to its primary group — before it serves
//! anyone. A flaw in a session can then reach no more than that user can.

use nix::unistd::{getegid, geteuid, getgid, getuid, setgid, setgroups, setuid, User};

/// Why popgate could not become the mail user.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The passwd database has no such user.
    #[error("no system user named {0:?}")]
    NoSuchUser(String),
    /// Not root, and not already that user.
    #[error("only root can become {user:?} (popgate runs as uid {uid})")]
    NotRoot {
        /// The wanted user.
        user: String,
        /// Our uid.
        uid: u32,
    },
    /// A system call refused, or the ids did not all change.
    #[error("cannot become {user:?}: {reason}")]
    Switch {
        /// The wanted user.
        user: String,
        /// What failed.
        reason: String,
    },
}

/// Becomes `name` for the rest of the process's life. Already being that
/// user is fine; being another non-root user is an error.
pub fn become_user(name: &str) -> Result<(), PrivilegeError> {
    let user = User::from_name(name)
        .map_err(|e| PrivilegeError::Switch {
            user: name.into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| PrivilegeError::NoSuchUser(name.into()))?;
    if geteuid() == user.uid && getuid() == user.uid {
        return Ok(());
    }
    if !geteuid().is_root() {
        return Err(PrivilegeError::NotRoot {
            user: name.into(),
            uid: geteuid().as_raw(),
        });
    }
    let switch_error = |reason: String| PrivilegeError::Switch {
        user: name.into(),
        reason,
    };
    // Groups first: once the uid changes, they could no longer be changed.
    setgroups(&[user.gid]).map_err(|e| switch_error(format!("setgroups: {e}")))?;
    setgid(user.gid).map_err(|e| switch_error(format!("setgid: {e}")))?;
    setuid(user.uid).map_err(|e| switch_error(format!("setuid: {e}")))?;
    let now = (getuid(), geteuid(), getgid(), getegid());
    if now != (user.uid, user.uid, user.gid, user.gid) {
        return Err(switch_error(format!("ids after the switch: {now:?}")));
    }
    Ok(())
}
