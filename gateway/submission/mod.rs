//! The submission service (RFC 6409 on port 587 with STARTTLS, RFC 8314 on
//! port 465 with implicit TLS): users who fetch with POP3 send through it.
//!
//! Reading order: [`session`] is the pure protocol state machine (it uses
//! smtp-proto to parse commands, [`data`] to read message text), [`reply`] writes replies,
//! [`message`] checks and stamps the message, [`relay`] (over [`upstream`],
//! [`sendmail`] and [`maildir_delivery`]) hands it on; [`handler`] is the connection driver
//! that does the I/O around them.
//!
//! Logins go through the same [`LoginGate`] as POP3,
//! so a user and an attacker meet the same policy on every port. Sessions
//! per user are limited by `[submission] max_connections_per_user`, counted
//! apart from POP3's (see [`crate::limits`]).

pub mod data;
pub mod handler;
pub mod maildir_delivery;
pub mod message;
pub mod relay;
pub mod reply;
pub mod sendmail;
pub mod session;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{LoginPolicy, SenderPolicy, Settings};
use crate::limits::UserLimit;
use crate::login::LoginGate;
use crate::tls::TlsProvider;
use relay::Relay;
use session::{Senders, SessionOptions};

/// Everything submission sessions share.
#[derive(Debug)]
pub struct SubmissionService {
    options: SessionOptions,
    preauth_timeout: Duration,
    idle_timeout: Duration,
    relay_timeout: Duration,
    sender_policy: SenderPolicy,
    addresses: BTreeMap<String, Vec<String>>,
    relay: Relay,
    tls: Option<Arc<TlsProvider>>,
    login: Arc<LoginGate>,
    user_limit: UserLimit,
}

impl SubmissionService {
    /// The service for `settings` (which must have a `[submission]`
    /// section); an error names the key that cannot work.
    pub fn new(
        settings: &Settings,
        tls: Option<Arc<TlsProvider>>,
        login: Arc<LoginGate>,
    ) -> Result<SubmissionService, (&'static str, String)> {
        let Some(submission) = &settings.submission else {
            return Err(("submission", "the section is missing".into()));
        };
        let max_message_size = usize::try_from(submission.max_message_size.0)
            .map_err(|_| ("submission.max_message_size", "too large".to_string()))?;
        Ok(SubmissionService {
            options: SessionOptions {
                hostname: settings.hostname.clone(),
                tls: false,
                starttls_available: tls.is_some(),
                plaintext_login: settings.pop3.login == LoginPolicy::Plaintext,
                max_message_size,
                max_recipients: submission.max_recipients,
                protocol_log: submission.protocol_log,
            },
            preauth_timeout: settings.pop3.preauth_timeout.0,
            idle_timeout: submission.idle_timeout.0,
            relay_timeout: submission.relay_timeout.0,
            sender_policy: submission.sender_policy,
            addresses: submission.addresses.clone(),
            relay: Relay::new(submission, &settings.hostname, &settings.store.maildir)?,
            tls,
            login,
            user_limit: UserLimit::new(submission.max_connections_per_user),
        })
    }

    /// How long a client has for the TLS handshake and its first command.
    pub fn preauth_timeout(&self) -> Duration {
        self.preauth_timeout
    }

    /// Whom `user` may send as: its login name when that is an address,
    /// `user@hostname`, and the addresses configured for it.
    pub fn senders(&self, user: &str) -> Senders {
        if self.sender_policy == SenderPolicy::Any {
            return Senders::Any;
        }
        let mut own = Vec::new();
        if user.contains('@') {
            own.push(user.to_owned());
        } else {
            own.push(format!("{user}@{}", self.options.hostname));
        }
        if let Some(extra) = self.addresses.get(user) {
            own.extend(extra.iter().cloned());
        }
        Senders::Only(own)
    }
}
