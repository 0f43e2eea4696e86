//! What a login attempt comes to.
//!
//! [`Authenticator::verify`](crate::Authenticator::verify) answers with a
//! [`Verdict`]; an accepted login carries the [`Account`]: the canonical user
//! name and the Maildir the store should open. Each verdict maps to one
//! POP3 answer:
//!
//! | verdict | POP3 | SMTP |
//! | --- | --- | --- |
//! | [`Verdict::Accepted`] | `+OK` | `235 2.7.0` |
//! | [`Verdict::Rejected`] | `-ERR [AUTH]` after the throttle's delay | `535 5.7.8` |
//! | [`Verdict::Disabled`] | `-ERR [SYS/PERM]` | `535 5.7.1` |
//! | [`Verdict::TemporaryFailure`] | `-ERR [SYS/TEMP]` | `454 4.7.0` |
//!
//! Local delivery asks about a user without a password
//! ([`Authenticator::lookup`](crate::Authenticator::lookup)) and gets a
//! [`UserLookup`]: the same [`Account`] a login would give, or why there is
//! none.

use std::path::PathBuf;

/// The authenticated account: who it is and where its mail lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The login name, as validated and found in the backend.
    pub user: String,
    /// The Maildir of the account, from the `maildir` template.
    pub maildir: PathBuf,
    /// The host user's uid, for system (PAM) users: the store reads and
    /// writes their Maildir with this filesystem identity. `None` for
    /// virtual users, whose mail belongs to the server's own user.
    pub uid: Option<u32>,
    /// The host user's primary gid, for system (PAM) users.
    pub gid: Option<u32>,
}

impl Account {
    /// Builds an account of a virtual user (no host identity).
    pub fn new(user: impl Into<String>, maildir: impl Into<PathBuf>) -> Account {
        Account {
            user: user.into(),
            maildir: maildir.into(),
            uid: None,
            gid: None,
        }
    }

    /// The same account, belonging to the host user `uid`/`gid`.
    pub fn with_identity(self, uid: u32, gid: u32) -> Account {
        Account {
            uid: Some(uid),
            gid: Some(gid),
            ..self
        }
    }
}

/// Outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right and the account may use POP3.
    Accepted(Account),
    /// Unknown user, wrong password, denied user or malformed name: all give
    /// the same outward answer (`[AUTH]`), after the same work.
    Rejected,
    /// The password was right, but POP3 is switched off for this mailbox
    /// (`[SYS/PERM]`).
    Disabled,
    /// The backend could not be asked (file unreadable, PAM unreachable): the
    /// client should retry later without re-prompting (`[SYS/TEMP]`). The text
    /// is for the server log, never for the client.
    TemporaryFailure(String),
}

/// Outcome of looking up a user without a password, for local delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    /// The user exists and may log in as far as the policy goes: this is
    /// the account a login would give (its Maildir, and for system users
    /// the uid and gid its files belong to).
    Found(Account),
    /// No such user, or one a login would never reach: a malformed or
    /// denied name, a system user below `min_uid`, an htpasswd entry whose
    /// hash can never match (SMTP: `550 5.1.1`).
    Unknown,
    /// The backend could not be asked; the text is for the server log
    /// (SMTP: `451`).
    TemporaryFailure(String),
}
