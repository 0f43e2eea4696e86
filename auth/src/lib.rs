//! Who may log in to popgate, and where their mail lives.
//!
//! `popgate-auth` answers one question for the gateway: *do these credentials
//! open a mailbox, and which one?* It knows nothing of sockets, TLS or tokio;
//! every call is plain blocking code, so the gateway runs [`Authenticator::verify`]
//! inside `spawn_blocking`.
//!
//! # A login, step by step
//!
//! 1. The client sends a name, with `USER` or inside a SASL exchange. The
//!    gateway checks it with [`validate_login_name`] before anything else, so a
//!    name with `/`, a control character or a leading dot never reaches a
//!    backend or a path. [`Authenticator::login_name`] then folds it by
//!    [`LoginNameCase`] (lower case by default, as Dovecot's `%Lu`): from
//!    there on, the backend, the cache, the policy lists, the Maildir
//!    template, the throttle, limits and logs see only the folded name.
//! 2. A SASL exchange (`AUTH PLAIN`, `AUTH LOGIN`) is run by the [`sasl`]
//!    module's [`sasl::SaslExchange`], for every protocol: it decodes each
//!    response, checks the name by the same rule, and ends with a set of
//!    [`Credentials`], whose [`Password`] never shows in `Debug` output.
//! 3. [`Authenticator::verify`] applies the policy (deny list, per-user POP3
//!    switch), asks the login cache, then the backend (an htpasswd file, or
//!    the host's PAM stack with [`BackendConfig::Pam`]), and answers with a
//!    [`Verdict`]. A PAM user's [`Account`] carries the uid and gid the
//!    store should use for the user's files.
//! 4. On a failure the gateway asks its [`Throttle`] how long to wait before
//!    answering and whether to hang up; on a success it clears that user's
//!    failures from the client's address (not the others'). The address is
//!    counted by [`counted_address`] (IPv6 by /64, mapped IPv4 as IPv4), which
//!    the gateway's per-address limits share.
//!
//! ```
//! use popgate_auth::{
//!     hash_password_bcrypt, AuthConfig, Authenticator, BackendConfig, Credentials, Verdict,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("users.htpasswd");
//! let entry = format!("alice@example.com:{}\n", hash_password_bcrypt("s3cret", 4)?);
//! std::fs::write(&path, entry)?;
//!
//! let auth = Authenticator::new(AuthConfig::new(BackendConfig::Htpasswd { path }))?;
//!
//! match auth.verify(&Credentials::new("alice@example.com", "s3cret")) {
//!     Verdict::Accepted(account) => {
//!         assert_eq!(account.maildir, std::path::Path::new("/var/vmail/example.com/alice/Maildir"));
//!     }
//!     other => panic!("unexpected verdict {other:?}"),
//! }
//! assert_eq!(auth.verify(&Credentials::new("alice@example.com", "guess")), Verdict::Rejected);
//! # Ok(())
//! # }
//! ```
//!
//! Local delivery asks [`Authenticator::lookup`] instead: the same rules
//! and the same [`Account`] as a login, without a password, answered with a
//! [`UserLookup`]. The Maildir template stays inside this crate.
//!
//! # Same answer, same time
//!
//! An unknown user, a wrong password, a denied user and a malformed name all
//! give [`Verdict::Rejected`], and all of them cost one password-hash
//! computation: names with no usable entry are checked against a decoy hash of
//! the kind and cost most entries in the file use. Only a *correct* password
//! can tell a switched-off mailbox ([`Verdict::Disabled`]) from the rest.
//!
//! # Modules
//!
//! | module | job |
//! | --- | --- |
//! | `login_name` | the login-name rule and case folding |
//! | [`sasl`] | the SASL PLAIN and LOGIN exchange |
//! | `password` | [`Password`] and [`Credentials`] |
//! | `hash` | stored password hashes: bcrypt, SHA-crypt, MD5-crypt, `{SHA}` |
//! | `htpasswd` | parsing an htpasswd file |
//! | `htpasswd_edit` | setting a user's entry in an htpasswd file (`popgate passwd`) |
//! | `backend` | the backends: the htpasswd file watcher, PAM transactions |
//! | `policy` | deny list and per-user POP3 switch |
//! | `maildir_template` | `%u`/`%n`/`%d`/`~` expansion of the Maildir path |
//! | `cache` | the cache of recent successful logins |
//! | `throttle` | the per-address failure delay, and how addresses are counted |
//! | `authenticator` | [`Authenticator`], which ties them together |
//! | [`watched_file`] | noticing that a configuration file changed (also the gateway's mailbox-settings file) |
//! | `evict`, `sync` | bounded tables and poison-proof locks, for the above |
#![forbid(unsafe_code)]

mod account;
mod authenticator;
mod backend;
mod cache;
mod error;
mod evict;
mod hash;
mod htpasswd;
mod htpasswd_edit;
mod login_name;
mod maildir_template;
mod password;
mod policy;
pub mod sasl;
mod sync;
mod throttle;
pub mod watched_file;

pub use account::{Account, UserLookup, Verdict};
pub use authenticator::{
    AuthConfig, Authenticator, DEFAULT_CACHE_TTL, DEFAULT_DENY_USERS, DEFAULT_FAILURE_DELAY,
    DEFAULT_MAILDIR_TEMPLATE,
};
pub use backend::{BackendConfig, MAX_HTPASSWD_SIZE};
pub use error::AuthError;
pub use hash::hash_password_bcrypt;
pub use htpasswd::{check_htpasswd, CaseClash, LoadReport, SkipReason, SkippedLine};
pub use htpasswd_edit::{set_htpasswd_entry, upsert_entry, EntrySet, Upsert, NEW_FILE_MODE};
pub use login_name::{validate_login_name, LoginNameCase, LoginNameError, MAX_LOGIN_NAME_LEN};
pub use maildir_template::{maildir_template_uses_domain, TemplateError};
pub use password::{Credentials, Password};
pub use policy::Policy;
pub use throttle::{counted_address, Penalty, Throttle, ThrottleConfig};
