//! The POP3 service (RFC 1939 with CAPA, STLS, SASL, RESP-CODES, UTF8).
//!
//! Reading order: [`command`] turns a line into a command, [`session`] is the
//! protocol state machine that answers it from a [`maildrop`] (the mailbox
//! snapshot it reads), [`reply`] and [`capability`] write responses; all
//! five are pure. [`driver`] is the connection driver that does the
//! protocol's own I/O around them (the login, the mailbox, RETR, UPDATE) on
//! the [connection core](crate::connection), which does the rest.
//!
//! A [`Pop3Service`] is built from one configuration and never changes: a
//! reload builds a new one for the connections accepted after it, while
//! the sessions of the old one finish with it — their banner, timeouts and
//! the mailbox settings they logged in with ([`crate::mailbox_settings`]:
//! the POP3 switch, `on_dele`, `order`, the per-user limit).

pub mod capability;
pub mod command;
pub mod driver;
pub mod maildrop;
pub mod reply;
pub mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use popgate_store::{OpenOptions, SnapshotCache};

use crate::config::{LoginPolicy, SettingError, Settings};
use crate::connection::{Connection, ConnectionSettings, Protocol};
use crate::limits::Limits;
use crate::line_buffer::HARD_LINE_LIMIT;
use crate::login::LoginGate;
use crate::mailbox_settings::Mailboxes;
use crate::tls::TlsProvider;

/// Everything POP3 sessions share: settings, TLS, authentication, limits.
#[derive(Debug)]
pub struct Pop3Service {
    connection: ConnectionSettings,
    banner: String,
    plaintext_login: bool,
    max_command_size: usize,
    /// How mailboxes are opened, and where their snapshots are kept; each
    /// login puts its mailbox's own `on_dele` and `order` in.
    open_options: OpenOptions,
    tls: Option<Arc<TlsProvider>>,
    login: Arc<LoginGate>,
    limits: Arc<Limits>,
    mailboxes: Arc<Mailboxes>,
}

impl Pop3Service {
    /// The service for `settings`, its logins keeping snapshots in
    /// `snapshots` (`None`: nowhere); an error names the key that cannot
    /// work.
    pub fn new(
        settings: &Settings,
        tls: Option<Arc<TlsProvider>>,
        login: Arc<LoginGate>,
        limits: Arc<Limits>,
        mailboxes: Arc<Mailboxes>,
        snapshots: Option<Arc<SnapshotCache>>,
    ) -> Result<Pop3Service, SettingError> {
        let pop3 = &settings.pop3;
        Ok(Pop3Service {
            connection: ConnectionSettings {
                service: "pop3",
                preauth_timeout: pop3.preauth_timeout.0,
                idle_timeout: pop3.idle_timeout.0,
                login_deadline: pop3.login_deadline.0,
                input_limit: HARD_LINE_LIMIT,
                min_data_rate: None,
                protocol_log: pop3.protocol_log.then_some(command::KEYWORDS),
            },
            banner: pop3.banner.clone(),
            plaintext_login: pop3.login == LoginPolicy::Plaintext,
            max_command_size: pop3.max_command_size,
            open_options: OpenOptions {
                snapshots,
                ..pop3.open_options()?
            },
            tls,
            login,
            limits,
            mailboxes,
        })
    }
}

impl Protocol for Pop3Service {
    fn connection_settings(&self) -> &ConnectionSettings {
        &self.connection
    }

    fn busy(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    }

    fn serve(self: Arc<Self>, connection: Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(driver::serve(self, connection))
    }
}
