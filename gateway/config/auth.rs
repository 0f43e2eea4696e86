//! `[auth]`: who may log in, as settings, and the `popgate-auth`
//! configuration they make ([`Settings::auth_config`],
//! [`Settings::throttle_config`]).

use std::path::PathBuf;

use popgate_auth::{AuthConfig, BackendConfig, ThrottleConfig};
use serde::{Deserialize, Serialize};

use super::{HumanDuration, Settings};

/// Which authentication backend checks passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// An Apache-style htpasswd file of virtual users.
    Htpasswd,
    /// The system's PAM stack, for system users.
    Pam,
}

/// How login names are compared (`[auth] login_name_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginNameCase {
    /// Folded to lower case, as Dovecot's default `auth_username_format = %Lu`
    /// (the default): `Alice` logs in as `alice`.
    Lower,
    /// As sent; only the domain part of `user@domain` is folded.
    Exact,
}

impl From<LoginNameCase> for popgate_auth::LoginNameCase {
    fn from(case: LoginNameCase) -> Self {
        match case {
            LoginNameCase::Lower => popgate_auth::LoginNameCase::Lower,
            LoginNameCase::Exact => popgate_auth::LoginNameCase::Exact,
        }
    }
}

/// `[auth]`: backend and login policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The backend.
    pub backend: BackendKind,
    /// The htpasswd file (backend "htpasswd"); reloaded when it changes.
    pub htpasswd: PathBuf,
    /// The PAM service name (backend "pam").
    pub pam_service: String,
    /// Login names that are always refused, whatever the password.
    pub deny_users: Vec<String>,
    /// Mailboxes whose POP3 access is switched off.
    pub disabled_users: Vec<String>,
    /// PAM users with a smaller uid are refused.
    pub min_uid: u32,
    /// The delay before answering a failed login; it grows per client address.
    pub failure_delay: HumanDuration,
    /// The longest failure delay, however many failures an address piles up.
    pub max_failure_delay: HumanDuration,
    /// Failures from one address after which each further failure also
    /// closes the connection (0: never close).
    pub max_failures: u32,
    /// How long a successful login is remembered ("0s" turns the cache off).
    pub cache_ttl: HumanDuration,
    /// How long one password check (a PAM transaction) may take before the
    /// login gets `[SYS/TEMP]`; a hung PAM module stalls only that login.
    pub check_timeout: HumanDuration,
    /// How many password checks may run at once; more wait their turn
    /// (within `check_timeout`). One client address (an IPv4 address, an
    /// IPv6 /64) may hold a quarter of them, at least one.
    pub max_checks: usize,
    /// "lower" (`Alice` is `alice`) or "exact" (only the domain part of
    /// `user@domain` is folded).
    pub login_name_case: LoginNameCase,
    /// A TOML file of per-mailbox settings, one table per login name (see
    /// [`crate::mailbox_settings`]); read again when it changes and on
    /// SIGHUP.
    pub mailbox_settings: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            backend: BackendKind::Htpasswd,
            htpasswd: PathBuf::from("/etc/popgate/users.htpasswd"),
            pam_service: "popgate".into(),
            deny_users: popgate_auth::DEFAULT_DENY_USERS
                .iter()
                .map(|&name| name.to_owned())
                .collect(),
            disabled_users: Vec::new(),
            min_uid: 1000,
            failure_delay: HumanDuration::from_secs(2),
            max_failure_delay: HumanDuration::from_secs(15),
            max_failures: 10,
            cache_ttl: HumanDuration::from_secs(60),
            check_timeout: HumanDuration::from_secs(20),
            max_checks: 16,
            login_name_case: LoginNameCase::Lower,
            mailbox_settings: None,
        }
    }
}

impl Settings {
    /// The authentication layer's configuration: the `[auth]` section and
    /// the `[store] maildir` template.
    pub fn auth_config(&self) -> AuthConfig {
        let backend = match self.auth.backend {
            BackendKind::Htpasswd => BackendConfig::Htpasswd {
                path: self.auth.htpasswd.clone(),
            },
            BackendKind::Pam => BackendConfig::Pam {
                service: self.auth.pam_service.clone(),
                min_uid: self.auth.min_uid,
            },
        };
        AuthConfig {
            backend,
            deny_users: self.auth.deny_users.clone(),
            disabled_users: self.auth.disabled_users.clone(),
            maildir_template: self.store.maildir.clone(),
            failure_delay: self.auth.failure_delay.0,
            cache_ttl: self.auth.cache_ttl.0,
            login_name_case: self.auth.login_name_case.into(),
        }
    }
}

impl Settings {
    /// The failure throttle's settings: `failure_delay`,
    /// `max_failure_delay`, `max_failures`.
    pub fn throttle_config(&self) -> ThrottleConfig {
        ThrottleConfig {
            base_delay: self.auth.failure_delay.0,
            max_delay: self.auth.max_failure_delay.0,
            close_after: self.auth.max_failures,
            ..ThrottleConfig::default()
        }
    }
}
