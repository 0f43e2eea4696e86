//! The POP3 service (RFC 1939 with CAPA, STLS, SASL, RESP-CODES, UTF8).
//!
//! Reading order: [`command`] turns a line into a command, [`session`] is the
//! protocol state machine that answers it from a [`maildrop`] (the mailbox
//! snapshot it reads), [`reply`] and [`capability`] write responses; all
//! five are pure. [`driver`] is the connection driver that does the I/O
//! around them.

pub mod capability;
pub mod command;
pub mod driver;
pub mod maildrop;
pub mod reply;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use popgate_store::OpenOptions;

use crate::config::{LoginPolicy, SettingError, Settings};
use crate::limits::Limits;
use crate::login::LoginGate;
use crate::tls::TlsProvider;

/// Everything POP3 sessions share: settings, TLS, authentication, limits.
#[derive(Debug)]
pub struct Pop3Service {
    banner: String,
    plaintext_login: bool,
    max_command_size: usize,
    preauth_timeout: Duration,
    login_deadline: Duration,
    idle_timeout: Duration,
    protocol_log: bool,
    open_options: OpenOptions,
    tls: Option<Arc<TlsProvider>>,
    login: Arc<LoginGate>,
    limits: Arc<Limits>,
}

impl Pop3Service {
    /// The service for `settings`; an error names the key that cannot work.
    pub fn new(
        settings: &Settings,
        tls: Option<Arc<TlsProvider>>,
        login: Arc<LoginGate>,
        limits: Arc<Limits>,
    ) -> Result<Pop3Service, SettingError> {
        let pop3 = &settings.pop3;
        Ok(Pop3Service {
            banner: pop3.banner.clone(),
            plaintext_login: pop3.login == LoginPolicy::Plaintext,
            max_command_size: pop3.max_command_size,
            preauth_timeout: pop3.preauth_timeout.0,
            login_deadline: pop3.login_deadline.0,
            idle_timeout: pop3.idle_timeout.0,
            protocol_log: pop3.protocol_log,
            open_options: pop3.open_options()?,
            tls,
            login,
            limits,
        })
    }

    /// How long a client has for the TLS handshake and its first command.
    pub fn preauth_timeout(&self) -> Duration {
        self.preauth_timeout
    }

    /// How long a connection has to log in, from accept.
    pub fn login_deadline(&self) -> Duration {
        self.login_deadline
    }
}
