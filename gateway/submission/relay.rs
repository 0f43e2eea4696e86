//! Handing accepted messages on: an SMTP smarthost through lettre, the
//! local MTA's sendmail command ([`sendmail`](super::sendmail)), or local
//! Maildirs.
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

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;

use super::maildir_delivery::MaildirDelivery;
use super::sendmail::Sendmail;
use super::session::RelayOutcome;
use super::upstream::{Upstream, UpstreamError, UpstreamTls};
use crate::config::{self, RelayTls, SubmissionSettings};
use crate::log_text::LogText;

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
    /// The relay for `settings`; reads the relay password file. The error
    /// names the key that cannot work.
    pub fn new(
        settings: &SubmissionSettings,
        hostname: &str,
        maildir_template: &str,
    ) -> Result<Relay, (&'static str, String)> {
        let ca = match settings.relay_ca()? {
            Some(pem) => Some(
                Certificate::from_pem(&pem)
                    .map_err(|e| ("submission.relay_ca_file", e.to_string()))?,
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
                .map_err(|e| ("submission.relay", e.to_string()))
        };
        let smtp = |host: &str, port: u16, tls: UpstreamTls| {
            let credentials = match (&settings.relay_user, settings.relay_password()?) {
                (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
                _ => None,
            };
            Ok::<_, (&'static str, String)>(Relay::Smtp(Upstream::new(
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
                maildir_template,
                settings.maildir_recipient,
                hostname,
            )?)),
        }
    }

    /// Sends `data` from `from` to `to` and says how it went.
    pub async fn send(
        &self,
        from: Option<Address>,
        to: Vec<Address>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> RelayOutcome {
        let envelope = match Envelope::new(from, to.clone()) {
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
            Relay::Maildir(delivery) => delivery.deliver(to, data).await,
        }
    }
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
