//! The settings sessions run with: one immutable snapshot per
//! configuration, swapped whole on reload.
//!
//! A [`Runtime`] is built from one validated [`Settings`]: the POP3 and
//! submission services (banner, timeouts, login policy, protocol logs,
//! open options, sender policy, relay), the trusted proxies, the connection
//! maxima and the [mailbox settings](crate::mailbox_settings). [`Current`]
//! holds the one in force; the server takes it at each accept, and a
//! connection keeps the services it got to its end, so a session in
//! progress runs on the settings it started with by construction, and a
//! reload ([`crate::reload`]) only has to put a new snapshot in place.
//!
//! What must outlive a configuration is [`Shared`] and passed into each
//! snapshot: the certificate (reloaded in place, so an STLS after a reload
//! gets the new one), the authenticator (its rules reconfigured in place,
//! its user table and login cache kept), the password-check gate with the
//! throttle's records, and the counters of the connection and per-user
//! limits. A new snapshot's limits count the slots the old one's sessions
//! hold.

use std::fmt;
use std::sync::{Arc, RwLock};

use popgate_auth::{Authenticator, Throttle};
use popgate_store::SnapshotCache;

use crate::config::{BackendKind, SettingError, Settings};
use crate::limits::{ConnectionMaxima, Limits, UserLimit};
use crate::log_text::LogText;
use crate::login::LoginGate;
use crate::mailbox_settings::effective::Defaults;
use crate::mailbox_settings::file::MailboxFile;
use crate::mailbox_settings::Mailboxes;
use crate::metrics::Metrics;
use crate::pop3::Pop3Service;
use crate::proxy_protocol::ProxyProtocol;
use crate::server::StartError;
use crate::sessions::Sessions;
use crate::submission::relay::Relay;
use crate::submission::SubmissionService;
use crate::tls::TlsProvider;

/// What outlives a configuration: built once at start.
#[derive(Debug)]
pub struct Shared {
    /// The certificate, if `[tls]` is configured.
    pub tls: Option<Arc<TlsProvider>>,
    /// Who may log in.
    pub auth: Arc<Authenticator>,
    /// The password check, its slots and the throttle.
    pub login: Arc<LoginGate>,
    /// Connections in all and per address, POP3 sessions per user.
    pub limits: Arc<Limits>,
    /// Submission sessions per user.
    pub submission_users: Arc<UserLimit>,
    /// What is counted for Prometheus; `None` without `[metrics]` (which
    /// only a restart turns on or off).
    pub metrics: Option<Arc<Metrics>>,
    /// The sessions in progress, which `popgate who` lists and `kick` ends.
    pub sessions: Arc<Sessions>,
    /// The snapshots logins kept for the next login of each unchanged
    /// Maildir; `None` when `[store] snapshot_cache` is 0 (which only a
    /// restart changes).
    pub snapshots: Option<Arc<SnapshotCache>>,
}

impl Shared {
    /// Loads the certificate and the users of `settings`.
    pub fn new(settings: &Settings) -> Result<Shared, StartError> {
        let tls = match &settings.tls {
            Some(paths) => Some(Arc::new(TlsProvider::load(&paths.cert, &paths.key)?)),
            None => None,
        };
        let auth = Arc::new(Authenticator::new(settings.auth_config())?);
        if settings.auth.backend == BackendKind::Pam && nix::unistd::geteuid().is_root() {
            crate::identity::drop_supplementary_groups().map_err(|e| {
                SettingError::new(
                    "auth.backend",
                    format!("cannot drop supplementary groups: {e}"),
                )
            })?;
        }
        let throttle = Arc::new(Throttle::with_config(settings.throttle_config()));
        let metrics = settings.metrics.as_ref().map(|_| Arc::new(Metrics::new()));
        let login = Arc::new(
            LoginGate::new(
                auth.clone(),
                throttle,
                settings.auth.max_checks,
                settings.auth.check_timeout.0,
            )
            .with_metrics(metrics.clone()),
        );
        Ok(Shared {
            tls,
            auth,
            login,
            limits: Arc::new(Limits::new()),
            submission_users: Arc::new(UserLimit::new()),
            metrics,
            sessions: Arc::new(Sessions::new()),
            snapshots: settings.store.snapshot_cache(),
        })
    }
}

/// A file a new snapshot could not read, whose old contents it kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What the file holds, as the log line names it: `TLS certificate`,
    /// `user database`, `mailbox settings`, `relay`.
    pub what: &'static str,
    /// The key naming the file: `tls.cert`, `auth.htpasswd`, …
    pub key: &'static str,
    /// Why it could not be used.
    pub reason: String,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} not reloaded, keeping the old one: {}",
            self.what,
            LogText(&self.reason)
        )
    }
}

/// The services and settings of one configuration.
#[derive(Debug)]
pub struct Runtime {
    settings: Settings,
    pop3: Arc<Pop3Service>,
    submission: Option<Arc<SubmissionService>>,
    proxies: Arc<ProxyProtocol>,
    mailbox_file: Option<Arc<MailboxFile>>,
    relay: Option<Arc<Relay>>,
}

impl Runtime {
    /// The first configuration: every file it names must be usable.
    pub fn start(settings: Settings, shared: &Shared) -> Result<Runtime, StartError> {
        let mailbox_file = match &settings.auth.mailbox_settings {
            Some(path) => Some(Arc::new(MailboxFile::open(
                path,
                settings.auth.login_name_case.into(),
            )?)),
            None => None,
        };
        let relay = match &settings.submission {
            Some(submission) => Some(Arc::new(Relay::new(
                submission,
                &settings.hostname,
                &shared.login,
            )?)),
            None => None,
        };
        Ok(Runtime::assemble(settings, shared, mailbox_file, relay)?)
    }

    /// The snapshot of a reloaded configuration, `settings` (its
    /// restart-only keys already as they are in this one). The mailbox
    /// settings file is this snapshot's when it names the same file (the
    /// reload reads it again: [`Runtime::mailbox_file`]), else opened anew;
    /// the relay is built anew, reading its password and CA files. A file
    /// that cannot be used leaves this snapshot's in the new one, noted in
    /// `kept`.
    pub fn rebuild(
        &self,
        settings: Settings,
        shared: &Shared,
        kept: &mut Vec<Kept>,
    ) -> Result<Runtime, SettingError> {
        let case = settings.auth.login_name_case.into();
        let mailbox_file = match (&settings.auth.mailbox_settings, &self.mailbox_file) {
            (None, _) => None,
            (Some(path), Some(file)) if file.path() == path && file.case() == case => {
                Some(Arc::clone(file))
            }
            (Some(path), old) => match MailboxFile::open(path, case) {
                Ok(file) => Some(Arc::new(file)),
                Err(error) => {
                    kept.push(Kept {
                        what: "mailbox settings",
                        key: "auth.mailbox_settings",
                        reason: error.to_string(),
                    });
                    old.clone()
                }
            },
        };
        let relay = match &settings.submission {
            Some(submission) => match Relay::new(submission, &settings.hostname, &shared.login) {
                Ok(relay) => Some(Arc::new(relay)),
                Err(error) => {
                    kept.push(Kept {
                        what: "relay",
                        key: error.key,
                        reason: error.to_string(),
                    });
                    self.relay.clone()
                }
            },
            None => None,
        };
        Runtime::assemble(settings, shared, mailbox_file, relay)
    }

    fn assemble(
        settings: Settings,
        shared: &Shared,
        mailbox_file: Option<Arc<MailboxFile>>,
        relay: Option<Arc<Relay>>,
    ) -> Result<Runtime, SettingError> {
        let mailboxes = Arc::new(Mailboxes::new(
            Defaults::new(&settings)?,
            mailbox_file.clone(),
        ));
        let pop3 = Arc::new(Pop3Service::new(
            &settings,
            shared.tls.clone(),
            shared.login.clone(),
            shared.limits.clone(),
            mailboxes.clone(),
            shared.snapshots.clone(),
        )?);
        let submission = match (&settings.submission, &relay) {
            (Some(_), Some(relay)) => Some(Arc::new(SubmissionService::new(
                &settings,
                shared.tls.clone(),
                shared.login.clone(),
                shared.submission_users.clone(),
                mailboxes,
                Arc::clone(relay),
            )?)),
            _ => None,
        };
        Ok(Runtime {
            proxies: Arc::new(ProxyProtocol::new(&settings.proxy_protocol)),
            settings,
            pop3,
            submission,
            mailbox_file,
            relay,
        })
    }

    /// The (validated) settings this snapshot was built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The POP3 service.
    pub fn pop3(&self) -> &Arc<Pop3Service> {
        &self.pop3
    }

    /// The submission service, when `[submission]` is configured.
    pub fn submission(&self) -> Option<&Arc<SubmissionService>> {
        self.submission.as_ref()
    }

    /// The trusted proxies.
    pub fn proxies(&self) -> &Arc<ProxyProtocol> {
        &self.proxies
    }

    /// The connection maxima: `[pop3] max_connections` and
    /// `max_connections_per_ip`.
    pub fn maxima(&self) -> ConnectionMaxima {
        ConnectionMaxima {
            total: self.settings.pop3.max_connections,
            per_ip: self.settings.pop3.max_connections_per_ip,
        }
    }

    /// The mailbox-settings file, when one is configured.
    pub fn mailbox_file(&self) -> Option<&Arc<MailboxFile>> {
        self.mailbox_file.as_ref()
    }
}

/// The snapshot in force.
#[derive(Debug)]
pub struct Current {
    runtime: RwLock<Arc<Runtime>>,
}

impl Current {
    /// `runtime` in force.
    pub fn new(runtime: Runtime) -> Current {
        Current {
            runtime: RwLock::new(Arc::new(runtime)),
        }
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `runtime` in force for what starts from now on.
    pub fn store(&self, runtime: Runtime) {
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(runtime);
    }
}
