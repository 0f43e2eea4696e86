//! Handing accepted messages on: an SMTP smarthost through lettre
//! ([`upstream`]), the local MTA's sendmail command ([`sendmail`]), or local
//! Maildirs ([`maildir_delivery`]).
//!
//! [`Relay::send`] returns only once the upstream has answered, and its
//! [`RelayOutcome`] is what the client hears: `250` only when the upstream
//! took the message, `451` when it could not be reached or deferred (a
//! connection error counts as temporary), and the upstream's own code and
//! text when it refused for good. Nothing is acknowledged that was not
//! handed on.
//!
//! lettre's `send_raw` passes the octets through untouched (it adds the
//! dot-stuffing and the final `.` itself); one refused recipient fails the
//! whole send, which is what the client is told.
//!
//! Local delivery knows its recipients, so it is asked about each one at
//! RCPT ([`Relay::check_recipient`]); the other relays take every address
//! there and answer for them after DATA.
//!
//! Addresses go on exactly as the client wrote them (a quoted local part
//! keeps its quotes, an address literal its brackets): they were read as
//! RFC 5321 mailboxes ([`Mailbox`]), which lettre's own address parser does
//! not accept whole, so they enter lettre's envelope unchecked by it. Local
//! Maildir delivery gets each recipient with its
//! [plain local part](Mailbox::plain_local_part), so `"bob"@host` is bob.
//!
//! What a relay answers is a value of [`outcome`], a leaf module the session
//! reads too: the back ends here never import the session.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;

pub mod maildir_delivery;
pub mod outcome;
pub mod sendmail;
pub mod upstream;

use maildir_delivery::MaildirDelivery;
use outcome::{RecipientCheck, RelayOutcome};
use sendmail::Sendmail;
use upstream::{Upstream, UpstreamError, UpstreamTls};

use crate::config::{self, RelayTls, SettingError, SubmissionSettings};
use crate::log_text::LogText;
use crate::login::LoginGate;
use crate::submission::address::Mailbox;

/// The configured upstream.
pub enum Relay {
    /// An SMTP relay (pooled connections).
    Smtp(Upstream),
    /// The local MTA's sendmail command.
    Sendmail(Sendmail),
    /// Local Maildirs.
    Maildir(MaildirDelivery),
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Relay::Smtp(_) => "Relay::Smtp",
            Relay::Sendmail(_) => "Relay::Sendmail",
            Relay::Maildir(_) => "Relay::Maildir",
        })
    }
}

impl Relay {
    /// The relay for `settings`; reads the relay password file. Local
    /// delivery finds its recipients through `login`. The error names the
    /// key that cannot work.
    pub fn new(
        settings: &SubmissionSettings,
        hostname: &str,
        login: &Arc<LoginGate>,
    ) -> Result<Relay, SettingError> {
        let ca = match settings.relay_ca()? {
            Some(pem) => Some(
                Certificate::from_pem(&pem)
                    .map_err(|e| SettingError::new("submission.relay_ca_file", e.to_string()))?,
            ),
            None => None,
        };
        let parameters = |host: &str| {
            let mut builder = TlsParameters::builder(host.to_owned());
            if let Some(ca) = &ca {
                builder = builder.add_root_certificate(ca.clone());
            }
            builder
                .build()
                .map_err(|e| SettingError::new("submission.relay", e.to_string()))
        };
        let smtp = |host: &str, port: u16, tls: UpstreamTls| {
            let credentials = match (&settings.relay_user, settings.relay_password()?) {
                (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
                _ => None,
            };
            Ok::<_, SettingError>(Relay::Smtp(Upstream::new(
                host,
                port,
                tls,
                ClientId::Domain(hostname.to_owned()),
                credentials,
                settings.relay_timeout.0,
            )))
        };
        match &settings.relay {
            config::Relay::Smtp { host, port } => {
                let tls = match settings.relay_tls {
                    RelayTls::Starttls => UpstreamTls::Starttls(parameters(host)?),
                    RelayTls::None => UpstreamTls::None,
                };
                smtp(host, *port, tls)
            }
            config::Relay::Smtps { host, port } => {
                smtp(host, *port, UpstreamTls::Implicit(parameters(host)?))
            }
            config::Relay::Sendmail => Ok(Relay::Sendmail(Sendmail::new(
                settings.sendmail_command.clone(),
            ))),
            config::Relay::Maildir => Ok(Relay::Maildir(MaildirDelivery::new(
                login.clone(),
                settings.maildir_recipient,
                hostname,
            ))),
        }
    }

    /// Whether RCPT asks [`check_recipient`](Self::check_recipient) about
    /// each recipient.
    pub fn checks_recipients(&self) -> bool {
        matches!(self, Relay::Maildir(_))
    }

    /// Whether the relay takes mail for `recipient` (local delivery: a
    /// local user); the other relays take every address at RCPT.
    pub async fn check_recipient(&self, recipient: &Mailbox) -> RecipientCheck {
        match self {
            Relay::Maildir(delivery) => delivery.check(&local_address(recipient)).await,
            Relay::Smtp(_) | Relay::Sendmail(_) => RecipientCheck::Accepted,
        }
    }

    /// Sends `data` from `from` to `to` and says how it went.
    pub async fn send(
        &self,
        from: Option<Mailbox>,
        to: Vec<Mailbox>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> RelayOutcome {
        // A Mailbox is an RFC 5321 mailbox already: ASCII, and no CR, LF or
        // space outside a quoted local part, so it is safe on the
        // upstream's command line and the sendmail command's.
        let exact = |m: &Mailbox| Address::new_dangerous(m.local_part(), m.domain());
        let envelope = match Envelope::new(from.as_ref().map(exact), to.iter().map(exact).collect())
        {
            Ok(envelope) => envelope,
            Err(e) => return RelayOutcome::Permanent(554, format!("5.5.0 {e}")),
        };
        match self {
            // lettre ends DATA with "\r\n.\r\n" itself: the message's own
            // final line break must not be sent twice.
            // A relay that stops answering must not hold the client forever.
            Relay::Smtp(upstream) => {
                let body = data.strip_suffix(b"\r\n").unwrap_or(&data);
                match tokio::time::timeout(timeout, upstream.send(&envelope, body)).await {
                    Ok(Ok(())) => RelayOutcome::Accepted,
                    Ok(Err(UpstreamError::Smtp(error))) => smtp_outcome(&error),
                    Ok(Err(error)) => {
                        tracing::warn!(target: "popgate::relay", error = %LogText(&error), "relay not reached");
                        RelayOutcome::Temporary("Upstream unavailable, try again later".into())
                    }
                    Err(_) => RelayOutcome::Temporary("Upstream timed out".into()),
                }
            }
            Relay::Sendmail(sendmail) => {
                let sent = sendmail.send(envelope.from(), envelope.to(), &data);
                match tokio::time::timeout(timeout, sent).await {
                    Ok(outcome) => outcome,
                    Err(_) => RelayOutcome::Temporary("Local MTA timed out".into()),
                }
            }
            Relay::Maildir(delivery) => {
                delivery
                    .deliver(to.iter().map(local_address).collect(), data)
                    .await
            }
        }
    }
}

/// `mailbox` as local delivery knows it: its plain local part, so
/// `"bob"@host` is bob.
fn local_address(mailbox: &Mailbox) -> Address {
    Address::new_dangerous(mailbox.plain_local_part(), mailbox.domain())
}

/// What a failed lettre SMTP send means for the client.
fn smtp_outcome(error: &lettre::transport::smtp::Error) -> RelayOutcome {
    let text = std::error::Error::source(error)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let code = error
        .status()
        .and_then(|c| c.to_string().parse::<u16>().ok());
    tracing::warn!(target: "popgate::relay", error = %LogText(error), "relay did not accept the message");
    match code {
        Some(code) if error.is_permanent() => RelayOutcome::Permanent(code, text),
        Some(_) => RelayOutcome::Temporary(format!("Upstream deferred the message: {text}")),
        None => RelayOutcome::Temporary("Upstream unavailable, try again later".into()),
    }
}
