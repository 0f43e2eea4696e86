//! Checking a login, the same way for every service.
//!
//! POP3 and submission both hand credentials to a [`LoginGate`], which
//!
//! 1. runs the password check on a blocking thread — at most `max_checks` at
//!    once, and at most a quarter of them (at least one) for one client
//!    address ([`AddressShares`]), each within `check_timeout`, so a PAM
//!    module that hangs delays only the logins waiting on it, never the async
//!    threads, and one address cannot take every slot;
//! 2. on a failure, counts it against the client address and the user in
//!    the [`Throttle`] and waits the penalty before answering, and tells the
//!    caller when the connection should be closed; a success clears only
//!    that user's failures from that address;
//! 3. writes one log line per failure in the stable format fail2ban reads:
//!    `authentication failed: service=pop3 rip=192.0.2.7 user=alice reason=bad-credentials`;
//! 4. with `[metrics]` on, times each check from its start to the verdict
//!    ([`LoginGate::with_metrics`]), before any failure delay.
//!
//! The user name in the throttle's books and in the log is the one the user
//! is known by (folded by `[auth] login_name_case`), never the spelling sent.
//!
//! A login that does not open a session, whether the gate or the service
//! after it said no (a per-user limit, a mailbox that cannot be opened, the
//! login deadline), is a [`LoginRefusal`]. The driver hands it to its
//! session, which alone words the reply (`Session::login_refused` in
//! [`crate::pop3::session`] and [`crate::submission::session`]): one
//! rendering per protocol, in the pure code the unit tests drive.
//!
//! Local delivery looks recipients up through the same gate
//! ([`LoginGate::lookup`]): no password and no throttle, but the same
//! bound on blocking calls, since the passwd database may be a slow LDAP.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use popgate_auth::{
    validate_login_name, Account, Authenticator, Credentials, Throttle, ThrottleConfig, UserLookup,
    Verdict,
};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::address_share::AddressShares;
use crate::metrics::Metrics;

/// Why a login did not open a session, as the session is to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown user, wrong password, denied name: one answer for all.
    /// `close` is set once the client address has failed too often.
    Credentials {
        /// Close the connection after answering.
        close: bool,
    },
    /// The password was right, but this service is switched off for the user.
    Disabled,
    /// The check could not be made (backend unreadable, PAM timed out).
    Unavailable,
    /// Right credentials, but the user is at `max_connections_per_user`.
    TooManySessions,
    /// Another session holds the mailbox, still after `lock_wait` (POP3).
    MailboxLocked,
    /// The mailbox cannot be opened now; trying later may work (POP3).
    MailboxUnavailable,
    /// The mailbox cannot be opened, and trying again will not help (POP3).
    MailboxBroken,
    /// The login deadline passed before the login was through.
    LoginDeadline,
}

impl LoginRefusal {
    /// Every refusal, `Credentials` both ways, in a fixed order (the fuzz
    /// targets pick one by index; the tests go through them all).
    pub const ALL: [LoginRefusal; 9] = [
        LoginRefusal::Credentials { close: false },
        LoginRefusal::Credentials { close: true },
        LoginRefusal::Disabled,
        LoginRefusal::Unavailable,
        LoginRefusal::TooManySessions,
        LoginRefusal::MailboxLocked,
        LoginRefusal::MailboxUnavailable,
        LoginRefusal::MailboxBroken,
        LoginRefusal::LoginDeadline,
    ];

    /// Why the connection ends once the refusal is answered, as the session
    /// summary's `end=` says it; `None` when the client may try again.
    pub fn ends_connection(self) -> Option<&'static str> {
        match self {
            LoginRefusal::Credentials { close: true } => Some("too-many-failures"),
            LoginRefusal::LoginDeadline => Some("login-deadline"),
            _ => None,
        }
    }
}

/// The password check shared by all services of one server.
#[derive(Debug)]
pub struct LoginGate {
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    checks: Arc<Semaphore>,
    shares: Arc<AddressShares>,
    /// `[auth] check_timeout`, which a reload may change.
    check_timeout: RwLock<Duration>,
    metrics: Option<Arc<Metrics>>,
}

impl LoginGate {
    /// A gate over `auth` with `max_checks` concurrent checks of at most
    /// `check_timeout` each, a quarter of them (at least one) per address.
    pub fn new(
        auth: Arc<Authenticator>,
        throttle: Arc<Throttle>,
        max_checks: usize,
        check_timeout: Duration,
    ) -> Self {
        LoginGate {
            auth,
            throttle,
            checks: Arc::new(Semaphore::new(max_checks)),
            shares: Arc::new(AddressShares::new(max_checks / 4)),
            check_timeout: RwLock::new(check_timeout),
            metrics: None,
        }
    }

    /// Puts a reloaded configuration's `check_timeout` and failure delays
    /// in force for the checks that start from now on. The throttle's
    /// records stay, and so does `max_checks`: checks that hang hold their
    /// slots, and a reload must not hand out fresh ones beside them.
    pub fn reconfigure(&self, check_timeout: Duration, throttle: ThrottleConfig) {
        *self
            .check_timeout
            .write()
            .unwrap_or_else(|e| e.into_inner()) = check_timeout;
        self.throttle.reconfigure(throttle);
    }

    fn check_timeout(&self) -> Duration {
        *self.check_timeout.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The gate, timing its checks in `metrics` (`None`: metrics off).
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The name a user who sends `name` is known by (see
    /// [`Authenticator::login_name`]), for anything keyed by user names.
    pub fn login_name(&self, name: &str) -> String {
        self.auth.login_name(name)
    }

    /// Checks `credentials` sent by `ip` to `service` ("pop3", "submission"):
    /// the account they open, or why not.
    pub async fn check(
        &self,
        service: &str,
        ip: IpAddr,
        credentials: Credentials,
    ) -> Result<Account, LoginRefusal> {
        let known_as = self.auth.login_name(&credentials.user);
        let user = loggable(&known_as);
        let started = self.metrics.as_ref().map(|_| Instant::now());
        let verdict = self.verify(ip, credentials).await;
        if let (Some(metrics), Some(started)) = (&self.metrics, started) {
            metrics.login_checked(started.elapsed());
        }
        match verdict {
            Verdict::Accepted(account) => {
                self.throttle.record_success(ip, &account.user);
                Ok(account)
            }
            Verdict::Rejected => {
                let penalty = self.throttle.record_failure(ip, &known_as);
                warn!(target: "popgate::auth", "authentication failed: service={service} rip={ip} user={user} reason=bad-credentials");
                tokio::time::sleep(penalty.delay).await;
                Err(LoginRefusal::Credentials {
                    close: penalty.close,
                })
            }
            Verdict::Disabled => Err(switched_off(service, ip, &known_as)),
            Verdict::TemporaryFailure(reason) => {
                warn!(target: "popgate::auth", "authentication unavailable: service={service} rip={ip} user={user} reason={reason:?}");
                Err(LoginRefusal::Unavailable)
            }
        }
    }

    /// Looks `user` up without a password (see [`Authenticator::lookup`]),
    /// on a blocking thread, within the same bounds as a password check.
    pub async fn lookup(&self, user: &str) -> UserLookup {
        let auth = self.auth.clone();
        let checks = self.checks.clone();
        let user = user.to_owned();
        let lookup = async move {
            let permit = checks
                .acquire_owned()
                .await
                .map_err(|e| format!("authentication closed: {e}"))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                auth.lookup(&user)
            })
            .await
            .map_err(|e| format!("user lookup task failed: {e}"))
        };
        let check_timeout = self.check_timeout();
        match tokio::time::timeout(check_timeout, lookup).await {
            Ok(Ok(found)) => found,
            Ok(Err(reason)) => UserLookup::TemporaryFailure(reason),
            Err(_) => UserLookup::TemporaryFailure(format!(
                "user lookup took longer than {}s",
                check_timeout.as_secs_f32()
            )),
        }
    }

    /// Answers from the login cache when it can (no hashing, so no trip to a
    /// blocking thread), else runs the blocking check within the bounds:
    /// first a place in the address's share, then one of the `max_checks`
    /// slots. A check that overruns keeps both places until it really ends,
    /// so hung checks can never pile up beyond `max_checks`, nor one
    /// address's beyond its share; this login gets a temporary failure.
    async fn verify(&self, ip: IpAddr, credentials: Credentials) -> Verdict {
        if let Some(verdict) = self.auth.verify_cached(&credentials) {
            return verdict;
        }
        let auth = self.auth.clone();
        let checks = self.checks.clone();
        let shares = self.shares.clone();
        let check = async move {
            let share = shares.acquire(ip).await;
            let permit = checks
                .acquire_owned()
                .await
                .map_err(|e| format!("authentication closed: {e}"))?;
            tokio::task::spawn_blocking(move || {
                let _places = (share, permit);
                auth.verify(&credentials)
            })
            .await
            .map_err(|e| format!("authentication task failed: {e}"))
        };
        let check_timeout = self.check_timeout();
        match tokio::time::timeout(check_timeout, check).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(reason)) => Verdict::TemporaryFailure(reason),
            Err(_) => Verdict::TemporaryFailure(format!(
                "password check took longer than {}s",
                check_timeout.as_secs_f32()
            )),
        }
    }
}

/// Refuses `user`, whose right password logged in to `service` where it is
/// switched off (`[auth] disabled_users`, or the mailbox's own `pop3` or
/// `submission` setting), and says so in the one line every such refusal
/// gets: `authentication refused: service=… rip=… user=… reason=disabled`.
pub fn switched_off(service: &str, ip: IpAddr, user: &str) -> LoginRefusal {
    let user = loggable(user);
    warn!(target: "popgate::auth", "authentication refused: service={service} rip={ip} user={user} reason=disabled");
    LoginRefusal::Disabled
}

/// A login name as it may appear in a log line: a name that breaks the
/// naming rule is shown as `<malformed>`, so a crafted name can never forge
/// the fields fail2ban reads.
pub fn loggable(name: &str) -> &str {
    match validate_login_name(name) {
        Ok(()) => name,
        Err(_) => "<malformed>",
    }
}

#[cfg(test)]
mod tests {
    use super::{loggable, LoginRefusal};

    #[test]
    fn only_too_many_failures_and_the_deadline_end_the_connection() {
        assert_eq!(
            LoginRefusal::Credentials { close: true }.ends_connection(),
            Some("too-many-failures")
        );
        assert_eq!(
            LoginRefusal::LoginDeadline.ends_connection(),
            Some("login-deadline")
        );
        let ending = |refusal: &LoginRefusal| {
            matches!(
                refusal,
                LoginRefusal::Credentials { close: true } | LoginRefusal::LoginDeadline
            )
        };
        for refusal in LoginRefusal::ALL.iter().filter(|r| !ending(r)) {
            assert_eq!(refusal.ends_connection(), None, "{refusal:?}");
        }
    }

    #[test]
    fn malformed_names_are_not_logged_as_sent() {
        assert_eq!(loggable("alice"), "alice");
        assert_eq!(loggable("x rip=192.0.2.1"), "<malformed>");
        assert_eq!(loggable("a\nb"), "<malformed>");
    }
}
