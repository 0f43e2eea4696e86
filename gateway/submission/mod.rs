//! The submission service (RFC 6409 on port 587 with STARTTLS, RFC 8314 on
//! port 465 with implicit TLS): users who fetch with POP3 send through it.
//!
//! Reading order: [`session`] is the pure protocol state machine (it uses
//! smtp-proto to parse commands, [`data`] to read message text,
//! [`envelope`] to read MAIL and RCPT, whose addresses are [`address`]es),
//! [`reply`] writes replies, [`message`] checks and stamps the message,
//! [`relay`] (an SMTP upstream, sendmail, or local Maildirs) hands it on and
//! says how that went in the values of [`relay::outcome`]; [`driver`] is the
//! connection driver that does the protocol's own I/O around them (the
//! login, recipient checks, the relay) on the
//! [connection core](crate::connection), which does the rest.
//!
//! Logins go through the same [`LoginGate`] as POP3 (and so do local
//! delivery's recipient lookups),
//! so a user and an attacker meet the same policy on every port. Then the
//! user's [mailbox settings](crate::mailbox_settings) say whether it may
//! send at all (`submission = false` answers `535 5.7.1`) and as whom.
//! Sessions per user are limited by `[submission] max_connections_per_user`,
//! counted apart from POP3's (see [`crate::limits`]).

pub mod address;
pub mod data;
pub mod driver;
pub mod envelope;
pub mod message;
pub mod relay;
pub mod reply;
pub mod session;

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{LoginPolicy, SettingError, Settings};
use crate::connection::{Connection, ConnectionSettings, Protocol};
use crate::limits::UserLimit;
use crate::login::LoginGate;
use crate::mailbox_settings::effective::{Effective, SenderAddresses};
use crate::mailbox_settings::Mailboxes;
use crate::tls::TlsProvider;
use relay::Relay;
use session::{Senders, SessionOptions};

/// Everything submission sessions share.
#[derive(Debug)]
pub struct SubmissionService {
    connection: ConnectionSettings,
    options: SessionOptions,
    relay_timeout: Duration,
    relay: Arc<Relay>,
    tls: Option<Arc<TlsProvider>>,
    login: Arc<LoginGate>,
    user_limit: Arc<UserLimit>,
    max_sessions_per_user: usize,
    mailboxes: Arc<Mailboxes>,
}

impl SubmissionService {
    /// The service for `settings` (which must have a `[submission]`
    /// section), handing messages to `relay`; an error names the key that
    /// cannot work. Logged-in sessions are counted in `user_limit`, which
    /// outlives the service (a reload builds a new one).
    pub fn new(
        settings: &Settings,
        tls: Option<Arc<TlsProvider>>,
        login: Arc<LoginGate>,
        user_limit: Arc<UserLimit>,
        mailboxes: Arc<Mailboxes>,
        relay: Arc<Relay>,
    ) -> Result<SubmissionService, SettingError> {
        let Some(submission) = &settings.submission else {
            return Err(SettingError::new(
                "submission",
                "the section is missing".into(),
            ));
        };
        let max_message_size = usize::try_from(submission.max_message_size.0).map_err(|_| {
            SettingError::new("submission.max_message_size", "too large".to_string())
        })?;
        Ok(SubmissionService {
            options: SessionOptions {
                hostname: settings.hostname.clone(),
                tls: false,
                starttls_available: tls.is_some(),
                plaintext_login: settings.pop3.login == LoginPolicy::Plaintext,
                max_message_size,
                max_recipients: submission.max_recipients,
                check_recipients: relay.checks_recipients(),
            },
            connection: ConnectionSettings {
                service: "submission",
                preauth_timeout: settings.pop3.preauth_timeout.0,
                idle_timeout: submission.idle_timeout.0,
                login_deadline: submission.login_deadline.0,
                input_limit: driver::INPUT_LIMIT,
                min_data_rate: NonZeroU64::new(submission.min_data_rate.0),
                protocol_log: submission.protocol_log.then_some(session::KEYWORDS),
            },
            relay_timeout: submission.relay_timeout.0,
            relay,
            tls,
            login,
            user_limit,
            max_sessions_per_user: submission.max_connections_per_user,
            mailboxes,
        })
    }

    /// Whom a user whose settings are `mailbox` may send as (see
    /// [`SenderAddresses`]): its login name when that is an address, else
    /// `user@hostname`, its `[submission.addresses]` and the `addresses`
    /// of its mailbox settings; anyone under `sender_policy = "any"`.
    pub fn senders(mailbox: &Effective) -> Senders {
        match &mailbox.senders {
            SenderAddresses::Only(list) => Senders::only(list.iter().map(|a| a.value.clone())),
            SenderAddresses::Any => Senders::Any,
            SenderAddresses::NotServed => Senders::only(Vec::new()),
        }
    }
}

impl Protocol for SubmissionService {
    fn connection_settings(&self) -> &ConnectionSettings {
        &self.connection
    }

    fn busy(&self) -> &'static [u8] {
        b"421 4.7.0 Too many connections, try again later\r\n"
    }

    fn serve(self: Arc<Self>, connection: Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(driver::serve(self, connection))
    }
}
