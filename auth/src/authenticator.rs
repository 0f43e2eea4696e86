//! The [`Authenticator`]: backend, policy and cache behind one call.
//!
//! Build it once from an [`AuthConfig`], share it by `Arc`, and call
//! [`Authenticator::verify`] from a blocking thread for every login:
//!
//! ```text
//! verify(credentials)
//!   ├─ malformed name ─────────────────── decoy hash → Rejected
//!   ├─ name folded (login_name_case): from here on only the folded name
//!   ├─ backend changed? reload, empty cache; unloadable → old data stays
//!   ├─ denied name ────────────────────── decoy hash → Rejected
//!   ├─ cached with this password ──────── Accepted (no hashing)
//!   └─ backend
//!        ├─ wrong password / unknown user (decoy hash) → Rejected
//!        ├─ unavailable ───────────────── TemporaryFailure
//!        └─ right password
//!             ├─ POP3 switched off ────── Disabled
//!             └─ Maildir from the template, cached → Accepted
//! ```
//!
//! Local delivery looks a user up without a password,
//! [`Authenticator::lookup`], by the same rules:
//!
//! ```text
//! lookup(user)
//!   ├─ malformed name ─────────────────── Unknown
//!   ├─ backend changed? reload, empty cache; unreadable → TemporaryFailure
//!   ├─ denied name ────────────────────── Unknown
//!   └─ backend (no hashing, no PAM transaction)
//!        ├─ no such user / unusable entry / uid below min_uid → Unknown
//!        ├─ unavailable ───────────────── TemporaryFailure
//!        └─ found: Maildir from the template → Found
//! ```
//!
//! Configuration that needs fixing is refused by [`Authenticator::new`]: an
//! unreadable htpasswd file or one with names that differ only by case, an
//! invalid Maildir template, a `~` template for a backend without home
//! directories.
//!
//! A configuration reload hands the new settings to
//! [`Authenticator::reconfigure`]: the deny and disabled lists, the Maildir
//! template, PAM's `min_uid`, the cache's lifetime and the failure delay
//! change in place, for the checks that start after it; the backend (its
//! kind, file or service) and how names are folded are fixed for the
//! authenticator's life, since the backend's table, the cache, the
//! gateway's throttle and limits are all keyed by the folded name.
//!
//! [`Authenticator::login_name`] is the one place a name sent by a client
//! becomes the name the user is known by: `verify` and `verify_cached` go
//! through it, and so does the gateway for its logs, throttle and limits.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::account::{Account, UserLookup, Verdict};
use crate::backend::SystemUser;
use crate::backend::{Answer, Backend, BackendConfig, Refresh};
use crate::cache::{LoginCache, MAX_CACHED_LOGINS};
use crate::htpasswd::LoadReport;
use crate::login_name::{validate_login_name, LoginNameCase};
use crate::maildir_template::MaildirTemplate;
use crate::password::Credentials;
use crate::policy::Policy;
use crate::sync;
use crate::AuthError;

/// The default `[auth] deny_users`.
pub const DEFAULT_DENY_USERS: &[&str] = &[
    "root",
    "administrator",
    "admin",
    "guest",
    "anonymous",
    "nobody",
];

/// The default `[store] maildir` template.
pub const DEFAULT_MAILDIR_TEMPLATE: &str = "/var/vmail/%d/%n/Maildir";

/// The default `[auth] failure_delay`.
pub const DEFAULT_FAILURE_DELAY: Duration = Duration::from_secs(2);

/// The default lifetime of a cached login.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// How often, at most, the backend is asked whether its data changed.
const CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Configuration of the auth layer (the gateway builds it from its config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Where users and passwords come from.
    pub backend: BackendConfig,
    /// Names always refused, as if unknown; compared ignoring ASCII case.
    pub deny_users: Vec<String>,
    /// Mailboxes with POP3 switched off; compared ignoring ASCII case.
    pub disabled_users: Vec<String>,
    /// The Maildir path template: `%u` whole login, `%n` local part, `%d`
    /// domain, `%%` a percent; `~` or `~/…` for the home directory (PAM only).
    pub maildir_template: String,
    /// The base failure delay, for the gateway's [`Throttle`](crate::Throttle).
    pub failure_delay: Duration,
    /// How long a successful login is cached; zero disables the cache.
    pub cache_ttl: Duration,
    /// How login names are folded before anything looks at them
    /// (`[auth] login_name_case`).
    pub login_name_case: LoginNameCase,
}

impl AuthConfig {
    /// A configuration with this backend and every other setting at its
    /// default: [`DEFAULT_DENY_USERS`], no disabled users,
    /// [`DEFAULT_MAILDIR_TEMPLATE`], [`DEFAULT_FAILURE_DELAY`],
    /// [`DEFAULT_CACHE_TTL`], names folded to lower case.
    pub fn new(backend: BackendConfig) -> AuthConfig {
        AuthConfig {
            backend,
            deny_users: DEFAULT_DENY_USERS.iter().map(|&u| u.to_owned()).collect(),
            disabled_users: Vec::new(),
            maildir_template: DEFAULT_MAILDIR_TEMPLATE.to_owned(),
            failure_delay: DEFAULT_FAILURE_DELAY,
            cache_ttl: DEFAULT_CACHE_TTL,
            login_name_case: LoginNameCase::Lower,
        }
    }
}

/// The authenticator: backend, policy and cache. `Send + Sync`; share it by `Arc`.
pub struct Authenticator {
    case: LoginNameCase,
    backend: Backend,
    /// The rules in force; a check takes them once, at its start, so a
    /// reload never holds up a check nor changes one half-way.
    rules: RwLock<Arc<Rules>>,
    cache: LoginCache,
    check_interval: Duration,
}

/// What [`Authenticator::reconfigure`] can change.
#[derive(Debug, PartialEq, Eq)]
struct Rules {
    policy: Policy,
    template: MaildirTemplate,
    failure_delay: Duration,
    cache_ttl: Duration,
}

impl Rules {
    /// The rules of `config` for `backend`; an invalid template is refused.
    fn new(config: &AuthConfig, backend: &Backend) -> Result<Rules, AuthError> {
        let template = MaildirTemplate::parse(&config.maildir_template).map_err(|reason| {
            AuthError::MaildirTemplate {
                template: config.maildir_template.clone(),
                reason,
            }
        })?;
        if template.uses_home() && !backend.has_home_directories() {
            return Err(AuthError::HomeNotAvailable(config.maildir_template.clone()));
        }
        Ok(Rules {
            policy: Policy::new(&config.deny_users, &config.disabled_users),
            template,
            failure_delay: config.failure_delay,
            cache_ttl: config.cache_ttl,
        })
    }
}

impl Authenticator {
    /// Builds the authenticator, reading the htpasswd file now.
    ///
    /// Fails, naming the problem, on an unreadable or oversized htpasswd
    /// file, one with entries that differ only by case, an invalid Maildir
    /// template, or a `~` template with a backend that has no home
    /// directories.
    pub fn new(config: AuthConfig) -> Result<Authenticator, AuthError> {
        // The template is checked before the backend opens (a PAM service
        // file, an htpasswd file to read): it is the cheaper mistake to name.
        MaildirTemplate::parse(&config.maildir_template).map_err(|reason| {
            AuthError::MaildirTemplate {
                template: config.maildir_template.clone(),
                reason,
            }
        })?;
        let backend = Backend::open(&config.backend, config.login_name_case)?;
        let rules = Rules::new(&config, &backend)?;
        Ok(Authenticator {
            case: config.login_name_case,
            backend,
            cache: LoginCache::new(config.cache_ttl, MAX_CACHED_LOGINS)?,
            rules: RwLock::new(Arc::new(rules)),
            check_interval: CHANGE_CHECK_INTERVAL,
        })
    }

    /// Puts the rules of `config` in force for the checks that start from
    /// now on: deny and disabled lists, Maildir template, PAM's `min_uid`,
    /// the cache's lifetime and the failure delay. Logins cached under
    /// other rules are forgotten; the backend's data is not re-read (see
    /// [`reload`](Self::reload)).
    ///
    /// Nothing changes on error: an invalid template, or a backend or name
    /// case other than the authenticator's own, which need a new
    /// authenticator ([`AuthError::NeedsRestart`]).
    pub fn reconfigure(&self, config: &AuthConfig) -> Result<(), AuthError> {
        if config.login_name_case != self.case {
            return Err(AuthError::NeedsRestart("the login name case"));
        }
        let rules = Rules::new(config, &self.backend)?;
        self.backend.reconfigure(&config.backend)?;
        let mut current = sync::write(&self.rules);
        if **current != rules {
            if current.cache_ttl != rules.cache_ttl {
                self.cache.set_ttl(rules.cache_ttl);
            }
            self.cache.clear();
            *current = Arc::new(rules);
        }
        Ok(())
    }

    /// The rules in force.
    fn rules(&self) -> Arc<Rules> {
        Arc::clone(&sync::read(&self.rules))
    }

    /// The name a user who sends `name` is known by: `name` folded by
    /// `[auth] login_name_case` (see [`LoginNameCase::fold`]). Every check
    /// goes through it; so should anything that counts, logs or looks up a
    /// user by the name a client sent.
    pub fn login_name(&self, name: &str) -> String {
        self.case.fold(name)
    }

    /// Checks credentials. Blocking: it may compute a bcrypt hash, so call it
    /// from `spawn_blocking`.
    ///
    /// An unknown user, a denied user and a malformed name cost the same
    /// hashing as a wrong password, and give the same [`Verdict::Rejected`].
    /// An accepted [`Account`] carries the folded name.
    pub fn verify(&self, credentials: &Credentials) -> Verdict {
        let password = credentials.password.expose();
        if validate_login_name(&credentials.user).is_err() {
            self.backend.spend_decoy(password);
            return Verdict::Rejected;
        }
        let user = self.login_name(&credentials.user);
        let user = user.as_str();
        if self.backend.refresh(self.check_interval) == Refresh::Reloaded {
            self.cache.clear();
        }
        let rules = self.rules();
        if rules.policy.is_denied(user) {
            self.backend.spend_decoy(password);
            return Verdict::Rejected;
        }
        if let Some(account) = self.cache.lookup(user, password, self.backend.generation()) {
            return Verdict::Accepted(account);
        }
        match self.backend.verify(user, password) {
            Answer::Invalid => Verdict::Rejected,
            Answer::Unavailable(reason) => Verdict::TemporaryFailure(reason),
            Answer::Valid {
                home,
                system,
                generation,
            } => {
                if rules.policy.is_disabled(user) {
                    return Verdict::Disabled;
                }
                match account(&rules.template, user, home, system) {
                    Ok(account) => {
                        self.cache.insert(user, password, &account, generation);
                        Verdict::Accepted(account)
                    }
                    Err(reason) => Verdict::TemporaryFailure(reason),
                }
            }
        }
    }

    /// Looks `name` up without a password, for local delivery: the account
    /// a login with the right password would give, by the same rules
    /// (login-name rule, the name folded by `login_name_case`, deny list, the user known to the backend, for PAM
    /// a passwd entry with a uid of at least `min_uid`). Blocking: it may
    /// reload the htpasswd file or ask the passwd database (NSS may be
    /// LDAP), so call it from `spawn_blocking`.
    ///
    /// No password is checked, so the answer tells whether a user exists:
    /// the gateway asks only for recipients of an authenticated submission
    /// user, as SMTP's RCPT answers would tell anyway. POP3's per-user
    /// switch (`disabled_users`) is not applied: it is about fetching, not
    /// about receiving.
    pub fn lookup(&self, name: &str) -> UserLookup {
        if validate_login_name(name).is_err() {
            return UserLookup::Unknown;
        }
        let user = self.login_name(name);
        let user = user.as_str();
        if self.backend.refresh(self.check_interval) == Refresh::Reloaded {
            self.cache.clear();
        }
        let rules = self.rules();
        if rules.policy.is_denied(user) {
            return UserLookup::Unknown;
        }
        match self.backend.lookup(user) {
            Answer::Invalid => UserLookup::Unknown,
            Answer::Unavailable(reason) => UserLookup::TemporaryFailure(reason),
            Answer::Valid { home, system, .. } => {
                match account(&rules.template, user, home, system) {
                    Ok(account) => UserLookup::Found(account),
                    Err(reason) => UserLookup::TemporaryFailure(reason),
                }
            }
        }
    }

    /// Answers from the login cache alone: `Some(Accepted)` for a login
    /// remembered with this password, `None` when the full
    /// [`verify`](Self::verify) is needed — not cached, a name the policy refuses, or
    /// the backend due for its change check. No hashing and no I/O, so it is
    /// cheap enough for an async thread: a client polling every minute is
    /// answered without a trip to a blocking thread.
    pub fn verify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        if validate_login_name(&credentials.user).is_err() {
            return None;
        }
        let user = self.login_name(&credentials.user);
        if self.rules().policy.is_denied(&user) || self.backend.refresh_due(self.check_interval) {
            return None;
        }
        self.cache
            .lookup(
                &user,
                credentials.password.expose(),
                self.backend.generation(),
            )
            .map(Verdict::Accepted)
    }

    /// Re-reads the backend (the htpasswd file) now and empties the login
    /// cache. The file is also reloaded automatically when it changes
    /// (checked at most once per second, on `verify`).
    ///
    /// On error the users loaded before stay in force, and logins go on
    /// with them; the caller logs the error.
    pub fn reload(&self) -> Result<(), AuthError> {
        let result = self.backend.reload();
        self.cache.clear();
        result
    }

    /// What the last load of the htpasswd file found (entries, skipped lines,
    /// unsupported hashes), for the gateway's startup log and `popgate check`.
    /// The crate also logs it through `tracing` on every load.
    pub fn report(&self) -> Option<LoadReport> {
        self.backend.report()
    }

    /// How many password hashes have been computed, decoys included. Cache
    /// hits compute none. Useful as a metric.
    pub fn hash_verifications(&self) -> u64 {
        self.backend.hash_verifications()
    }

    /// The configured base failure delay, for building the [`Throttle`](crate::Throttle).
    pub fn failure_delay(&self) -> Duration {
        self.rules().failure_delay
    }

    /// Looks for changes on every `verify`, not once per second (tests).
    #[cfg(test)]
    fn check_changes_every_time(mut self) -> Authenticator {
        self.check_interval = Duration::ZERO;
        self
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("case", &self.case)
            .field("backend", &self.backend)
            .field("rules", &self.rules())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The account of `user`: its Maildir from `template`, and its identity
/// when it is a system user. The error is for the log.
fn account(
    template: &MaildirTemplate,
    user: &str,
    home: Option<std::path::PathBuf>,
    system: Option<SystemUser>,
) -> Result<Account, String> {
    let maildir = template.expand(user, home.as_deref()).map_err(|error| {
        format!(
            "no maildir for {user:?} from template {:?}: {error}",
            template.as_str()
        )
    })?;
    let account = Account::new(user, maildir);
    Ok(match system {
        Some(system) => account.with_identity(system.uid, system.gid),
        None => account,
    })
}

#[cfg(test)]
mod tests;
