//! The PAM backend: the host's own users, as its PAM stack sees them.
//!
//! One check is one PAM transaction, started *with* the user name (modules
//! such as `pam_unix` and `pam_matrix` read `PAM_USER` before prompting):
//!
//! 1. `pam_start(service, user)` with a conversation that answers a hidden
//!    prompt with the password and a visible one with the user name;
//! 2. `pam_authenticate`: is the password right?
//! 3. `pam_acct_mgmt`: may the account log in now? An expired, locked or
//!    otherwise refused account (including "password must be changed") is
//!    refused like a wrong password;
//! 4. the passwd database (`getpwnam_r`) gives uid, gid and home; a uid below
//!    `min_uid` is refused like a wrong password, so system accounts cannot be
//!    reached even when their password is known.
//!
//! A lookup without a password (local delivery) reads the passwd database
//! alone, with the same `min_uid` rule, and runs no PAM transaction.
//!
//! `pam_open_session` is never called: it may change process-wide state
//! (environment, limits, keyrings) that a server with many users cannot have.
//!
//! Every call blocks, possibly for long (`pam_faildelay`, a slow LDAP): the
//! gateway runs checks on blocking threads, a bounded number at a time, each
//! with a time limit.
//!
//! PAM reads its service file from `/etc/pam.d` (or `/usr/lib/pam.d`), and a
//! missing file silently falls back to the `other` service. So the file is
//! looked for when the backend is opened, and its absence is an error then.
//! Under `pam_wrapper` (a test tool that redirects PAM, `PAM_WRAPPER=1`), the
//! directory it redirects to (`PAM_WRAPPER_SERVICE_DIR`) is where PAM looks,
//! so it is where the file is looked for too.

use std::ffi::{CStr, CString};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::unistd::User;
use pam_client::{ConversationHandler, ErrorCode, Flag};
use zeroize::Zeroizing;

use super::Answer;
use crate::AuthError;

/// Where Linux-PAM looks for service files, in order.
const SERVICE_DIRS: &[&str] = &["/etc/pam.d", "/usr/lib/pam.d", "/usr/share/pam.d"];

/// Who a PAM user is on this host (from the passwd database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: PathBuf,
}

/// Why a user has no usable passwd entry.
#[derive(Debug)]
enum NoSystemUser {
    /// The passwd database does not know the name.
    Missing,
    /// The passwd database could not be asked; the text is for the log.
    Failed(String),
}

/// The PAM service to ask, and the lowest uid that may log in.
pub(crate) struct PamService {
    service: String,
    /// Changed in place by a configuration reload.
    min_uid: AtomicU32,
    transactions: AtomicU64,
}

impl PamService {
    /// Opens the backend: checks that the service has a file PAM will read.
    pub(crate) fn open(service: &str, min_uid: u32) -> Result<PamService, AuthError> {
        if service.is_empty() || service.contains(['/', '\0']) || service.starts_with('.') {
            return Err(AuthError::PamServiceName(service.to_owned()));
        }
        let dirs = service_dirs();
        if !dirs.iter().any(|dir| dir.join(service).is_file()) {
            return Err(AuthError::PamServiceMissing {
                service: service.to_owned(),
                searched: dirs,
            });
        }
        Ok(PamService {
            service: service.to_owned(),
            min_uid: AtomicU32::new(min_uid),
            transactions: AtomicU64::new(0),
        })
    }

    /// The PAM service name.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Refuses users below `min_uid` from the next check on.
    pub(crate) fn set_min_uid(&self, min_uid: u32) {
        self.min_uid.store(min_uid, Ordering::Relaxed);
    }

    /// Runs one PAM transaction for `user` and looks the user up.
    pub(crate) fn verify(&self, user: &str, password: &str) -> Answer {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        match self.transaction(user, password) {
            Ok(()) => {}
            Err(code) if is_refusal(code) => return Answer::Invalid,
            Err(code) => {
                return Answer::Unavailable(format!(
                    "PAM service {:?} failed: {code:?}",
                    self.service
                ))
            }
        }
        match self.system_user(user) {
            Ok(Some(system)) => Answer::Valid {
                home: Some(system.home.clone()),
                system: Some(system),
                generation: 0,
            },
            Ok(None) => Answer::Invalid,
            Err(NoSystemUser::Missing) => Answer::Unavailable(format!(
                "PAM accepted {user:?}, but the passwd database does not know the user"
            )),
            Err(NoSystemUser::Failed(reason)) => Answer::Unavailable(reason),
        }
    }

    /// Looks `user` up in the passwd database alone, without a password
    /// and without a PAM transaction (for local delivery: an MTA delivers
    /// to an expired account too): `Valid` for a user with a uid of at
    /// least `min_uid`.
    pub(crate) fn lookup(&self, user: &str) -> Answer {
        match self.system_user(user) {
            Ok(Some(system)) => Answer::Valid {
                home: Some(system.home.clone()),
                system: Some(system),
                generation: 0,
            },
            Ok(None) | Err(NoSystemUser::Missing) => Answer::Invalid,
            Err(NoSystemUser::Failed(reason)) => Answer::Unavailable(reason),
        }
    }

    /// The passwd entry of `user`: `Ok(None)` when its uid is below
    /// `min_uid` (logged), `Err` when there is none or the database failed.
    fn system_user(&self, user: &str) -> Result<Option<SystemUser>, NoSystemUser> {
        let min_uid = self.min_uid.load(Ordering::Relaxed);
        match lookup(user) {
            Ok(Some(system)) if system.uid >= min_uid => Ok(Some(system)),
            Ok(Some(system)) => {
                tracing::warn!(
                    target: "popgate::auth",
                    "PAM user {user:?} has uid {} below min_uid {}: refused",
                    system.uid,
                    min_uid
                );
                Ok(None)
            }
            Ok(None) => Err(NoSystemUser::Missing),
            Err(error) => Err(NoSystemUser::Failed(format!(
                "passwd database lookup failed: {error}"
            ))),
        }
    }

    /// How many PAM transactions have run.
    pub(crate) fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    fn transaction(&self, user: &str, password: &str) -> Result<(), ErrorCode> {
        let conversation = Conversation {
            user: user.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        };
        let mut context = pam_client::Context::new(&self.service, Some(user), conversation)
            .map_err(|e| e.code())?;
        context
            .authenticate(Flag::SILENT | Flag::DISALLOW_NULL_AUTHTOK)
            .map_err(|e| e.code())?;
        context
            .acct_mgmt(Flag::SILENT | Flag::DISALLOW_NULL_AUTHTOK)
            .map_err(|e| e.code())
    }
}

impl fmt::Debug for PamService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PamService")
            .field("service", &self.service)
            .field("min_uid", &self.min_uid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The directories searched for the service file.
fn service_dirs() -> Vec<PathBuf> {
    let wrapped = std::env::var_os("PAM_WRAPPER").is_some_and(|v| v == "1");
    match std::env::var_os("PAM_WRAPPER_SERVICE_DIR") {
        Some(dir) if wrapped => vec![PathBuf::from(dir)],
        _ => SERVICE_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// Whether a PAM error means "this user may not log in" rather than "PAM
/// could not be asked".
fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AUTH_ERR
            | ErrorCode::USER_UNKNOWN
            | ErrorCode::MAXTRIES
            | ErrorCode::CRED_INSUFFICIENT
            | ErrorCode::ACCT_EXPIRED
            | ErrorCode::AUTHTOK_EXPIRED
            | ErrorCode::NEW_AUTHTOK_REQD
            | ErrorCode::PERM_DENIED
    )
}

/// The passwd entry of `user`, if any.
fn lookup(user: &str) -> Result<Option<SystemUser>, nix::Error> {
    Ok(User::from_name(user)?.map(|entry| SystemUser {
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        home: entry.dir,
    }))
}

/// Answers PAM's prompts: the password for hidden ones, the name for the rest.
struct Conversation {
    user: String,
    password: Zeroizing<String>,
}

impl ConversationHandler for Conversation {
    fn prompt_echo_on(&mut self, _prompt: &CStr) -> Result<CString, ErrorCode> {
        CString::new(self.user.as_str()).map_err(|_| ErrorCode::CONV_ERR)
    }

    fn prompt_echo_off(&mut self, _prompt: &CStr) -> Result<CString, ErrorCode> {
        CString::new(self.password.as_str()).map_err(|_| ErrorCode::CONV_ERR)
    }

    fn text_info(&mut self, _message: &CStr) {}

    fn error_msg(&mut self, message: &CStr) {
        tracing::debug!(target: "popgate::auth", "PAM says: {}", message.to_string_lossy());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_missing_service_is_an_error_that_names_it() {
        let error = PamService::open("popgate-no-such-service-x", 1000).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("popgate-no-such-service-x"), "{text}");
        match error {
            AuthError::PamServiceMissing { searched, .. } => {
                assert!(!searched.is_empty());
                if std::env::var_os("PAM_WRAPPER").is_none() {
                    assert!(searched
                        .iter()
                        .all(|d| SERVICE_DIRS.iter().any(|s| d == Path::new(s))));
                }
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn service_names_that_are_paths_are_refused() {
        for name in ["", "../etc/passwd", "a/b", ".hidden", "a\0b"] {
            assert!(
                matches!(
                    PamService::open(name, 1000),
                    Err(AuthError::PamServiceName(_))
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        assert!(is_refusal(ErrorCode::AUTH_ERR));
        assert!(is_refusal(ErrorCode::ACCT_EXPIRED));
        assert!(is_refusal(ErrorCode::NEW_AUTHTOK_REQD));
        assert!(!is_refusal(ErrorCode::AUTHINFO_UNAVAIL));
        assert!(!is_refusal(ErrorCode::SYSTEM_ERR));
    }

    #[test]
    fn the_passwd_database_gives_root_uid_zero() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup("popgate-no-such-user-x").unwrap(), None);
    }

    #[test]
    fn a_lookup_reads_the_passwd_database_with_the_min_uid_rule() {
        let service = |min_uid| PamService {
            service: "unused".into(),
            min_uid: AtomicU32::new(min_uid),
            transactions: AtomicU64::new(0),
        };
        assert!(matches!(service(1000).lookup("root"), Answer::Invalid));
        assert!(matches!(
            service(1000).lookup("popgate-no-such-user-x"),
            Answer::Invalid
        ));
        let Answer::Valid { system, home, .. } = service(0).lookup("root") else {
            panic!("root not found with min_uid 0");
        };
        assert_eq!(system.map(|s| (s.uid, s.gid)), Some((0, 0)));
        assert!(home.is_some());
        assert_eq!(service(0).transactions(), 0);
        let raised = service(0);
        raised.set_min_uid(1000);
        assert!(matches!(raised.lookup("root"), Answer::Invalid));
    }
}
