//! The backends: where users and passwords come from.
//!
//! [`BackendConfig`] says which backend to use; [`Backend`] is the opened
//! backend the [`Authenticator`](crate::Authenticator) talks to: an htpasswd
//! file (`htpasswd_file`) of virtual users, or the host's PAM stack (`pam`)
//! for system users, who have home directories (for `~/Maildir`) and a uid
//! and gid (for the store's file identity).
//!
//! Every backend answers a password check with an [`Answer`], and so a
//! lookup of a user without a password (for local delivery): `Valid` for a
//! user a right password would let in, `Invalid` for anyone else. It counts the
//! password-hash computations it does, and can spend the same work on a
//! decoy, so that names it does not know cost as much as wrong passwords.
//!
//! A backend also numbers the versions of its data: the *generation* goes up
//! on every reload. The login cache files each success under the generation
//! that granted it and only honours entries of the current one, so a check
//! that raced with a reload can never leave a stale password in the cache.

mod htpasswd_file;
mod pam;

use std::path::PathBuf;
use std::time::Duration;

use crate::htpasswd::LoadReport;
use crate::login_name::LoginNameCase;
use crate::AuthError;

use self::htpasswd_file::HtpasswdFile;
use self::pam::PamService;
pub(crate) use self::pam::SystemUser;

/// The largest htpasswd file read, in bytes (64 MiB).
pub const MAX_HTPASSWD_SIZE: u64 = 64 * 1024 * 1024;

/// Which backend checks passwords (`[auth] backend`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendConfig {
    /// An Apache htpasswd file (`[auth] htpasswd`), reloaded when it changes.
    Htpasswd {
        /// The file.
        path: PathBuf,
    },
    /// The host's PAM stack (`[auth] backend = "pam"`): authentication and
    /// account management of `service`; uid, gid and home from the passwd
    /// database.
    Pam {
        /// The PAM service name (`[auth] pam_service`), a file in `/etc/pam.d`.
        service: String,
        /// Users with a lower uid are refused (`[auth] min_uid`).
        min_uid: u32,
    },
}

/// An opened backend.
#[derive(Debug)]
pub(crate) enum Backend {
    /// An htpasswd file.
    Htpasswd(HtpasswdFile),
    /// A PAM service.
    Pam(PamService),
}

/// A backend's answer to a password check.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The password is right; `home` is the user's home directory, if the
    /// backend knows one; `system` the host user it is, for PAM users;
    /// `generation` is the version of the data that said so.
    Valid {
        home: Option<PathBuf>,
        system: Option<SystemUser>,
        generation: u64,
    },
    /// Unknown user or wrong password.
    Invalid,
    /// The backend could not be asked; the text is for the log.
    Unavailable(String),
}

/// What looking for changes found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Nothing changed, it was not time to look yet, or the changed data
    /// could not be loaded (the old data stays in force).
    Unchanged,
    /// The backend's data was reloaded: cached logins are stale.
    Reloaded,
}

impl Backend {
    /// Opens the configured backend; an htpasswd file is read now, its
    /// names folded by `case`.
    pub(crate) fn open(config: &BackendConfig, case: LoginNameCase) -> Result<Backend, AuthError> {
        match config {
            BackendConfig::Htpasswd { path } => {
                Ok(Backend::Htpasswd(HtpasswdFile::open(path, case)?))
            }
            BackendConfig::Pam { service, min_uid } => {
                Ok(Backend::Pam(PamService::open(service, *min_uid)?))
            }
        }
    }

    /// Whether the backend gives users home directories (for `~` templates).
    pub(crate) fn has_home_directories(&self) -> bool {
        match self {
            Backend::Htpasswd(_) => false,
            Backend::Pam(_) => true,
        }
    }

    /// Checks `password` for `user`, a folded name.
    pub(crate) fn verify(&self, user: &str, password: &str) -> Answer {
        match self {
            Backend::Htpasswd(file) => file.verify(user, password),
            Backend::Pam(pam) => pam.verify(user, password),
        }
    }

    /// Looks `user` up without a password: [`Answer::Valid`] when the user
    /// exists and a right password could log in (an htpasswd entry with a
    /// usable hash; a passwd entry with a uid of at least `min_uid`),
    /// [`Answer::Invalid`] otherwise. No password hash is computed and no
    /// PAM transaction is run.
    pub(crate) fn lookup(&self, user: &str) -> Answer {
        match self {
            Backend::Htpasswd(file) => file.lookup(user),
            Backend::Pam(pam) => pam.lookup(user),
        }
    }

    /// Spends the work of one failed check, for names that are refused
    /// before the backend is asked (malformed or denied).
    ///
    /// PAM has no decoy: running a transaction for a denied name such as
    /// `root` would count a failure against that account in modules like
    /// `pam_faillock`. The deny list is configuration, not a secret, and the
    /// gateway's failure delay dominates the answer time anyway.
    pub(crate) fn spend_decoy(&self, password: &str) {
        match self {
            Backend::Htpasswd(file) => file.spend_decoy(password),
            Backend::Pam(_) => {}
        }
    }

    /// Reloads the backend's data if it changed, looking at most once per
    /// `interval`.
    pub(crate) fn refresh(&self, interval: Duration) -> Refresh {
        match self {
            Backend::Htpasswd(file) => file.refresh(interval),
            Backend::Pam(_) => Refresh::Unchanged,
        }
    }

    /// True when the next [`refresh`](Self::refresh) would look at the
    /// backend's data (so a cached answer might be out of date).
    pub(crate) fn refresh_due(&self, interval: Duration) -> bool {
        match self {
            Backend::Htpasswd(file) => file.refresh_due(interval),
            Backend::Pam(_) => false,
        }
    }

    /// The version of the backend's data, raised by every reload.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Backend::Htpasswd(file) => file.generation(),
            Backend::Pam(_) => 0,
        }
    }

    /// Takes `config` in place of the configuration the backend was opened
    /// with, where it can change while the backend is open: PAM's
    /// `min_uid`. Another file, service or kind needs a new backend, and
    /// is refused with [`AuthError::NeedsRestart`].
    pub(crate) fn reconfigure(&self, config: &BackendConfig) -> Result<(), AuthError> {
        match (self, config) {
            (Backend::Htpasswd(file), BackendConfig::Htpasswd { path }) if file.path() == path => {
                Ok(())
            }
            (Backend::Pam(pam), BackendConfig::Pam { service, min_uid })
                if pam.service() == service =>
            {
                pam.set_min_uid(*min_uid);
                Ok(())
            }
            _ => Err(AuthError::NeedsRestart("the authentication backend")),
        }
    }

    /// Reloads the backend's data now (PAM reads its files on every check);
    /// on error the data in force stays.
    pub(crate) fn reload(&self) -> Result<(), AuthError> {
        match self {
            Backend::Htpasswd(file) => file.reload(),
            Backend::Pam(_) => Ok(()),
        }
    }

    /// What the last load of the backend's data found, if it loads data.
    pub(crate) fn report(&self) -> Option<LoadReport> {
        match self {
            Backend::Htpasswd(file) => Some(file.report()),
            Backend::Pam(_) => None,
        }
    }

    /// How many password hashes the backend has computed, decoys included;
    /// for PAM, how many transactions it ran.
    pub(crate) fn hash_verifications(&self) -> u64 {
        match self {
            Backend::Htpasswd(file) => file.hash_verifications(),
            Backend::Pam(pam) => pam.transactions(),
        }
    }
}
