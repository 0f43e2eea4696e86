//! The POP3 service (RFC 1939 with CAPA, STLS, SASL, RESP-CODES, UTF8).
//!
//! Reading order: [`command`] turns a line into a command, [`session`] is the
//! protocol state machine that answers it, [`reply`] and [`capability`] write
//! responses; all four are pure. [`handler`] is the connection driver that
//! does the I/O around them.

pub mod capability;
pub mod command;
pub mod handler;
pub mod reply;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use popgate_auth::{Authenticator, Throttle};
use popgate_store::OpenOptions;
use tokio::sync::Semaphore;

use crate::config::{LoginPolicy, Settings};
use crate::limits::Limits;
use crate::tls::TlsProvider;

/// Everything POP3 sessions share: settings, TLS, authentication, limits.
#[derive(Debug)]
pub struct Pop3Service {
    banner: String,
    plaintext_login: bool,
    max_command_size: usize,
    preauth_timeout: Duration,
    idle_timeout: Duration,
    protocol_log: bool,
    open_options: OpenOptions,
    tls: Option<Arc<TlsProvider>>,
    auth: Arc<Authenticator>,
    throttle: Arc<Throttle>,
    /// Bounds the password checks running at once (PAM calls block).
    checks: Arc<Semaphore>,
    check_timeout: Duration,
    limits: Limits,
}

impl Pop3Service {
    /// The service for `settings`; an error names the key that cannot work.
    pub fn new(
        settings: &Settings,
        tls: Option<Arc<TlsProvider>>,
        auth: Arc<Authenticator>,
        throttle: Arc<Throttle>,
    ) -> Result<Pop3Service, (&'static str, String)> {
        let pop3 = &settings.pop3;
        Ok(Pop3Service {
            banner: pop3.banner.clone(),
            plaintext_login: pop3.login == LoginPolicy::Plaintext,
            max_command_size: pop3.max_command_size,
            preauth_timeout: pop3.preauth_timeout.0,
            idle_timeout: pop3.idle_timeout.0,
            protocol_log: pop3.protocol_log,
            open_options: pop3.open_options()?,
            tls,
            auth,
            throttle,
            checks: Arc::new(Semaphore::new(settings.auth.max_checks)),
            check_timeout: settings.auth.check_timeout.0,
            limits: Limits::new(
                pop3.max_connections,
                pop3.max_connections_per_ip,
                pop3.max_connections_per_user,
            ),
        })
    }

    /// The connection limits of this service.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How long a client has for the TLS handshake and its first command.
    pub fn preauth_timeout(&self) -> Duration {
        self.preauth_timeout
    }

    /// The TLS certificates, if configured.
    pub fn tls(&self) -> Option<&Arc<TlsProvider>> {
        self.tls.as_ref()
    }
}
