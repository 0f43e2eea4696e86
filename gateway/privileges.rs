//! Leaving root behind once the ports are bound, for virtual users.
//!
//! popgate needs root for two things only: binding ports below 1024 and, for
//! system (PAM) users, touching each user's Maildir with that user's rights
//! (see [`crate::identity`]). Virtual users' mail all belongs to one system
//! user (often `vmail`), so with `[store] mail_user` set popgate binds its
//! listeners as root and then becomes that user for good — real, effective
//! and saved ids, groups reduced to its primary group — before it serves
//! anyone. A flaw in a session can then reach no more than that user can.
//!
//! Files read at start as root may be closed to that user: an htpasswd file
//! left `0600 root`, a key as certbot leaves it, the configuration file
//! itself. Reloading them (SIGHUP, or the htpasswd or mailbox-settings file
//! changing) then fails, and the old contents stay in force (for the
//! configuration file: the whole configuration in force stays).
//! [`unreadable_reloadable_files`], asked once the switch is made, names
//! each such file so the start-up log says it before a reload does.

use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid, getgid, getuid, setgid, setgroups, setuid, User};

use crate::config::{BackendKind, Settings};

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

/// The files popgate reads again while it runs, each with the key that
/// names it: the configuration file itself (on SIGHUP), the htpasswd file
/// and the mailbox-settings file (on change and on SIGHUP), the certificate
/// and key, the relay's password and CA files (on SIGHUP).
pub fn reloadable_files(config: &Path, settings: &Settings) -> Vec<(&'static str, PathBuf)> {
    let mut files = vec![("configuration", config.to_path_buf())];
    if settings.auth.backend == BackendKind::Htpasswd {
        files.push(("auth.htpasswd", settings.auth.htpasswd.clone()));
    }
    if let Some(path) = &settings.auth.mailbox_settings {
        files.push(("auth.mailbox_settings", path.clone()));
    }
    if let Some(tls) = &settings.tls {
        files.push(("tls.cert", tls.cert.clone()));
        files.push(("tls.key", tls.key.clone()));
    }
    if let Some(submission) = &settings.submission {
        if let Some(path) = &submission.relay_password_file {
            files.push(("submission.relay_password_file", path.clone()));
        }
        if let Some(path) = &submission.relay_ca_file {
            files.push(("submission.relay_ca_file", path.clone()));
        }
    }
    files
}

/// The [`reloadable_files`] this process cannot open for reading now, and
/// why. Asked after [`become_user`], it is exact (permissions, ACLs,
/// directories on the way): it tries.
pub fn unreadable_reloadable_files(
    config: &Path,
    settings: &Settings,
) -> Vec<(&'static str, PathBuf, std::io::Error)> {
    reloadable_files(config, settings)
        .into_iter()
        .filter_map(|(key, path)| match std::fs::File::open(&path) {
            Ok(_) => None,
            Err(error) => Some((key, path, error)),
        })
        .collect()
}
