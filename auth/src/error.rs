//! The error type of the crate's fallible set-up calls.
//!
//! Logging in never fails with an error: [`Authenticator::verify`] always
//! answers with a [`Verdict`]. Errors come from building an authenticator,
//! reloading its backend, hashing a new password and writing an htpasswd
//! entry.
//!
//! [`Authenticator::verify`]: crate::Authenticator::verify
//! [`Verdict`]: crate::Verdict

use std::path::PathBuf;

use crate::htpasswd::CaseClash;
use crate::login_name::LoginNameError;
use crate::maildir_template::TemplateError;

/// What went wrong while setting up or reloading authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The htpasswd file could not be read (missing, no permission, an I/O error).
    #[error("cannot read htpasswd file {}: {source}", path.display())]
    HtpasswdUnreadable {
        /// The file that was read.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },

    /// The htpasswd file is larger than [`MAX_HTPASSWD_SIZE`](crate::MAX_HTPASSWD_SIZE) allows.
    #[error("htpasswd file {} is larger than {limit} bytes", path.display())]
    HtpasswdTooLarge {
        /// The file that was read.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// The htpasswd file has entries whose names differ only by case.
    #[error(
        "htpasswd file {}: {}; login names are compared without case (login_name_case), \
         so keep one entry per user",
        path.display(),
        clashes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    HtpasswdCaseClash {
        /// The file that was read.
        path: PathBuf,
        /// Each pair of entries that clash.
        clashes: Vec<CaseClash>,
    },

    /// The htpasswd file could not be written (`popgate passwd`); the old
    /// file is left as it was.
    #[error("cannot write htpasswd file {}: {source}", path.display())]
    HtpasswdWrite {
        /// The file that was to be replaced.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },

    /// A name given to `popgate passwd` is not a valid login name.
    #[error("not a valid login name (letters, digits, . _ - + @; at most 64): {0}")]
    LoginName(#[source] LoginNameError),

    /// A hash to be written is empty or would break the file's format.
    #[error("the password hash is empty or holds ':' or a line break")]
    InvalidHash,

    /// The `maildir` template is not valid.
    #[error("invalid maildir template {template:?}: {reason}")]
    MaildirTemplate {
        /// The template as configured.
        template: String,
        /// What is wrong with it.
        #[source]
        reason: TemplateError,
    },

    /// The `maildir` template starts with `~`, but the backend has no home directories.
    #[error(
        "maildir template {0:?} uses the home directory (~), which htpasswd users do not have; \
         use an absolute path such as \"/var/vmail/%d/%n/Maildir\""
    )]
    HomeNotAvailable(String),

    /// A setting the authenticator was built with cannot change while it
    /// runs (the backend, how names are folded).
    #[error("{0} cannot change while popgate runs: restart it")]
    NeedsRestart(&'static str),

    /// The PAM service name cannot name a file in a PAM directory.
    #[error("PAM service name {0:?} is not a plain file name")]
    PamServiceName(String),

    /// No PAM service file of that name exists (PAM would silently use `other`).
    #[error(
        "PAM service {service:?} has no service file in {}; create one (see examples/pam.d/popgate)",
        searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    PamServiceMissing {
        /// The service name.
        service: String,
        /// The directories looked in.
        searched: Vec<PathBuf>,
    },

    /// A bcrypt cost outside `4..=31` was asked for.
    #[error("bcrypt cost {0} is outside the allowed range 4..=31")]
    InvalidBcryptCost(u32),

    /// The password is too long for bcrypt, which reads at most 72 bytes.
    #[error("the password is too long for bcrypt (it must be shorter than 72 bytes)")]
    PasswordTooLong,

    /// The operating system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}
