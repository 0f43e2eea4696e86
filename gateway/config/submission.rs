//! `[submission]`: the authenticated SMTP submission service (RFC 6409) and
//! the relay it hands accepted messages to.
//!
//! The section is optional: without it popgate binds no submission port, so
//! a POP3-only deployment keeps working unchanged. With it:
//!
//! ```toml
//! [submission]
//! listen     = ["0.0.0.0:587"]          # STARTTLS
//! listen_tls = ["0.0.0.0:465"]          # implicit TLS
//! max_message_size = "35M"
//! max_recipients = 100
//! max_connections_per_user = 10         # logged-in sessions; counted apart from POP3's
//! protocol_log = false                  # commands and replies; no credentials, no message text
//! sender_policy = "own"                 # or "any"
//! relay = "smtp://smarthost.example.com:587"  # "smtps://h:465", "sendmail", "maildir"
//! relay_tls = "starttls"                # or "none" (a relay on loopback only)
//! relay_user = "relay-account"
//! relay_password_file = "/etc/popgate/relay.secret"
//! relay_ca_file = "/etc/popgate/relay-ca.pem"   # optional: a private CA
//! sendmail_command = "/usr/sbin/sendmail"       # for relay = "sendmail"
//! min_data_rate = "1K"                  # message text slower than this (octets/s) is cut
//!
//! [submission.addresses]                # more sender addresses per login name
//! alice = ["alice@example.com", "sales@example.com"]
//! ```
//!
//! The relay password lives in its own file so that the configuration can be
//! printed (`popgate config`) and shared without it; popgate reads the file
//! at start and on each reload, and never logs or prints its contents.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ByteSize, HumanDuration, SettingError};

/// Whose addresses a logged-in user may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderPolicy {
    /// The envelope sender and every From: address must be the user's.
    Own,
    /// Any sender (a trusted, single-tenant setup).
    Any,
}

/// How the `smtp://` relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// STARTTLS is required; the relay's certificate is verified.
    Starttls,
    /// No TLS: allowed only for a relay on a loopback address.
    None,
}

/// Which user's Maildir receives a message for a recipient (`relay = "maildir"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaildirRecipient {
    /// The recipient's local part is the user (`bob@example.com` → `bob`).
    LocalPart,
    /// The whole address is the user (for `%d/%n` templates).
    Address,
}

/// Where accepted messages go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Relay {
    /// `smtp://host:port`: SMTP, with STARTTLS unless `relay_tls = "none"`.
    Smtp {
        /// The relay's host name or address.
        host: String,
        /// Its port.
        port: u16,
    },
    /// `smtps://host:port`: SMTP over implicit TLS.
    Smtps {
        /// The relay's host name or address.
        host: String,
        /// Its port.
        port: u16,
    },
    /// The local MTA's `sendmail` command.
    Sendmail,
    /// Delivery into local users' Maildirs, found with `[store] maildir`.
    Maildir,
}

impl TryFrom<String> for Relay {
    type Error = String;

    fn try_from(text: String) -> Result<Relay, String> {
        let endpoint = |rest: &str, default_port: u16| -> Result<(String, u16), String> {
            let rest = rest.trim_end_matches('/');
            let (host, port) = match rest.strip_prefix('[') {
                Some(bracketed) => match bracketed.split_once(']') {
                    Some((host, "")) => (host, None),
                    Some((host, tail)) => (host, Some(tail.strip_prefix(':').unwrap_or(tail))),
                    None => (rest, None),
                },
                None => match rest.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                },
            };
            let port = match port {
                Some(port) => port
                    .parse()
                    .map_err(|_| format!("`{port}` in `{text}` is not a port number"))?,
                None => default_port,
            };
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"/[]@".contains(&b))
            {
                return Err(format!("`{text}` does not name a relay host"));
            }
            Ok((host.to_owned(), port))
        };
        match text.as_str() {
            "sendmail" => Ok(Relay::Sendmail),
            "maildir" => Ok(Relay::Maildir),
            _ => {
                if let Some(rest) = text.strip_prefix("smtp://") {
                    let (host, port) = endpoint(rest, 587)?;
                    Ok(Relay::Smtp { host, port })
                } else if let Some(rest) = text.strip_prefix("smtps://") {
                    let (host, port) = endpoint(rest, 465)?;
                    Ok(Relay::Smtps { host, port })
                } else {
                    Err(format!(
                        "`{text}` is not \"smtp://host:port\", \"smtps://host:port\", \"sendmail\" or \"maildir\""
                    ))
                }
            }
        }
    }
}

impl From<Relay> for String {
    fn from(relay: Relay) -> String {
        relay.to_string()
    }
}

impl fmt::Display for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = |host: &str| {
            if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            }
        };
        match self {
            Relay::Smtp { host, port } => write!(f, "smtp://{}:{port}", bracket(host)),
            Relay::Smtps { host, port } => write!(f, "smtps://{}:{port}", bracket(host)),
            Relay::Sendmail => f.write_str("sendmail"),
            Relay::Maildir => f.write_str("maildir"),
        }
    }
}

impl Relay {
    /// True when the relay is an SMTP host on a loopback address.
    pub fn is_loopback(&self) -> bool {
        match self {
            Relay::Smtp { host, .. } | Relay::Smtps { host, .. } => {
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Relay::Sendmail | Relay::Maildir => false,
        }
    }
}

/// `[submission]`: listeners, limits, sender policy and relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionSettings {
    /// Plaintext listeners with STARTTLS (port 587).
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (port 465).
    pub listen_tls: Vec<SocketAddr>,
    /// The largest message accepted (SIZE), in octets.
    pub max_message_size: ByteSize,
    /// Recipients in one message.
    pub max_recipients: usize,
    /// Logged-in submission sessions of one user. Counted apart from
    /// `[pop3] max_connections_per_user`: busy POP3 pollers must not stop
    /// their user from sending, nor sending stop them from polling.
    pub max_connections_per_user: usize,
    /// Log every command and reply line, as `[pop3] protocol_log` does for
    /// POP3: credentials are redacted, and messages are logged by size only.
    pub protocol_log: bool,
    /// Whose addresses a user may send from.
    pub sender_policy: SenderPolicy,
    /// Where accepted messages go.
    pub relay: Relay,
    /// TLS towards an `smtp://` relay.
    pub relay_tls: RelayTls,
    /// The relay account, if the relay wants a login.
    pub relay_user: Option<String>,
    /// The file holding the relay account's password (first line).
    pub relay_password_file: Option<PathBuf>,
    /// More CA certificates (PEM) to trust for the relay, besides the
    /// system's (a relay with a certificate from a private CA).
    pub relay_ca_file: Option<PathBuf>,
    /// `relay = "sendmail"`: the command (a path, or a name looked up in PATH).
    pub sendmail_command: PathBuf,
    /// How long the relay may take to accept a message.
    pub relay_timeout: HumanDuration,
    /// Idle time allowed between commands (RFC 5321 §4.5.3.2: 5 minutes);
    /// after login also the most one command line may take, from its first
    /// byte, and the start of the time a message may take.
    pub idle_timeout: HumanDuration,
    /// The slowest a logged-in client may send message text, in octets a
    /// second: a message must be complete within `idle_timeout` from DATA
    /// plus one second per `min_data_rate` octets received (see
    /// `request_deadline`).
    pub min_data_rate: ByteSize,
    /// Total time allowed to log in, from accept, however busy the client
    /// keeps the connection.
    pub login_deadline: HumanDuration,
    /// `relay = "maildir"`: which user a recipient address is.
    pub maildir_recipient: MaildirRecipient,
    /// More sender addresses per login name, besides the login name itself
    /// (when it is an address) and `login@hostname`.
    pub addresses: BTreeMap<String, Vec<String>>,
}

impl Default for SubmissionSettings {
    fn default() -> Self {
        SubmissionSettings {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 587))],
            listen_tls: vec![SocketAddr::from(([0, 0, 0, 0], 465))],
            max_message_size: ByteSize(35 << 20),
            max_recipients: 100,
            max_connections_per_user: 10,
            protocol_log: false,
            sender_policy: SenderPolicy::Own,
            relay: Relay::Sendmail,
            relay_tls: RelayTls::Starttls,
            relay_user: None,
            relay_password_file: None,
            relay_ca_file: None,
            sendmail_command: PathBuf::from("sendmail"),
            relay_timeout: HumanDuration::from_secs(120),
            idle_timeout: HumanDuration::from_secs(300),
            min_data_rate: ByteSize(1024),
            login_deadline: HumanDuration::from_secs(120),
            maildir_recipient: MaildirRecipient::LocalPart,
            addresses: BTreeMap::new(),
        }
    }
}

/// The largest `max_message_size`: a message is held in memory until the
/// relay has accepted it.
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 512 << 20;

impl SubmissionSettings {
    /// Checks values that cannot work; the error names the key.
    pub fn validate(&self, tls_configured: bool) -> Result<(), SettingError> {
        let has_listeners = !self.listen.is_empty() || !self.listen_tls.is_empty();
        if has_listeners && !tls_configured {
            return Err(SettingError::new(
                "submission.listen",
                "submission needs [tls] cert and key: credentials are never sent in the clear"
                    .into(),
            ));
        }
        if !(1024..=MAX_MESSAGE_SIZE_LIMIT).contains(&self.max_message_size.0) {
            return Err(SettingError::new(
                "submission.max_message_size",
                format!("must be between 1K and {}M", MAX_MESSAGE_SIZE_LIMIT >> 20),
            ));
        }
        if !(1..=10_000).contains(&self.max_recipients) {
            return Err(SettingError::new(
                "submission.max_recipients",
                "must be between 1 and 10000".into(),
            ));
        }
        if self.max_connections_per_user == 0 {
            return Err(SettingError::new(
                "submission.max_connections_per_user",
                "must be at least 1".into(),
            ));
        }
        if self.relay_tls == RelayTls::None
            && (!matches!(self.relay, Relay::Smtp { .. }) || !self.relay.is_loopback())
        {
            return Err(SettingError::new(
                "submission.relay_tls",
                "\"none\" is allowed only for an smtp:// relay on a loopback address".into(),
            ));
        }
        if self.relay_user.is_some() != self.relay_password_file.is_some() {
            return Err(SettingError::new(
                "submission.relay_password_file",
                "relay_user and relay_password_file go together".into(),
            ));
        }
        if self.relay_user.is_some()
            && !matches!(self.relay, Relay::Smtp { .. } | Relay::Smtps { .. })
        {
            return Err(SettingError::new(
                "submission.relay_user",
                "relay credentials are for smtp:// and smtps:// relays".into(),
            ));
        }
        if self.relay_timeout.0.is_zero() || self.idle_timeout.0.is_zero() {
            return Err(SettingError::new(
                "submission.idle_timeout",
                "timeouts must be longer than zero".into(),
            ));
        }
        if self.min_data_rate.0 == 0 {
            return Err(SettingError::new(
                "submission.min_data_rate",
                "must be at least 1 octet a second".into(),
            ));
        }
        if self.login_deadline.0.is_zero() {
            return Err(SettingError::new(
                "submission.login_deadline",
                "must be longer than zero".into(),
            ));
        }
        if self.sendmail_command.as_os_str().is_empty() {
            return Err(SettingError::new(
                "submission.sendmail_command",
                "must name the sendmail command".into(),
            ));
        }
        for (user, addresses) in &self.addresses {
            if let Some(bad) = addresses
                .iter()
                .find(|a| crate::submission::address::Mailbox::parse(a).is_err())
            {
                // As MAIL FROM reads addresses: one that does not parse so
                // could never be sent as.
                return Err(SettingError::new(
                    "submission.addresses",
                    format!("`{bad}` (for {user}) is not an RFC 5321 email address (ASCII only)"),
                ));
            }
        }
        Ok(())
    }

    /// Reads the CA certificates of `relay_ca_file`, if set.
    pub fn relay_ca(&self) -> Result<Option<Vec<u8>>, SettingError> {
        let Some(path) = &self.relay_ca_file else {
            return Ok(None);
        };
        std::fs::read(path).map(Some).map_err(|e| {
            SettingError::new(
                "submission.relay_ca_file",
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Reads the relay password from `relay_password_file` (its first line).
    /// The error names the file, never its contents.
    pub fn relay_password(&self) -> Result<Option<String>, SettingError> {
        let Some(path) = &self.relay_password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingError::new(
                "submission.relay_password_file",
                format!("{}: {e}", path.display()),
            )
        })?;
        let password = text.lines().next().unwrap_or("").to_owned();
        if password.is_empty() {
            return Err(SettingError::new(
                "submission.relay_password_file",
                format!("{} holds no password", path.display()),
            ));
        }
        Ok(Some(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_parse_and_print_back() {
        for (text, relay) in [
            (
                "smtp://smarthost.example.com:587",
                Relay::Smtp {
                    host: "smarthost.example.com".into(),
                    port: 587,
                },
            ),
            (
                "smtps://127.0.0.1:465",
                Relay::Smtps {
                    host: "127.0.0.1".into(),
                    port: 465,
                },
            ),
            (
                "smtp://[::1]:2525",
                Relay::Smtp {
                    host: "::1".into(),
                    port: 2525,
                },
            ),
            ("sendmail", Relay::Sendmail),
            ("maildir", Relay::Maildir),
        ] {
            let parsed = Relay::try_from(text.to_string()).unwrap();
            assert_eq!(parsed, relay);
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            Relay::try_from("smtp://relay".to_string()).unwrap(),
            Relay::Smtp {
                host: "relay".into(),
                port: 587
            }
        );
        for bad in ["lmtp://x:24", "smtp://", "smtp://h:port", "smtp://a/b:25"] {
            assert!(Relay::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn plaintext_relays_are_only_for_loopback() {
        let mut settings = SubmissionSettings {
            relay: Relay::try_from("smtp://mx.example.com:25".to_string()).unwrap(),
            relay_tls: RelayTls::None,
            ..SubmissionSettings::default()
        };
        let error = settings.validate(true).unwrap_err();
        assert_eq!(error.key, "submission.relay_tls");
        settings.relay = Relay::try_from("smtp://127.0.0.1:25".to_string()).unwrap();
        assert!(settings.validate(true).is_ok());
    }

    #[test]
    fn listeners_need_tls_and_credentials_go_together() {
        let settings = SubmissionSettings::default();
        assert_eq!(
            settings.validate(false).unwrap_err().key,
            "submission.listen"
        );
        let settings = SubmissionSettings {
            relay_user: Some("relay".into()),
            ..SubmissionSettings::default()
        };
        assert_eq!(
            settings.validate(true).unwrap_err().key,
            "submission.relay_password_file"
        );
        let settings = SubmissionSettings {
            max_connections_per_user: 0,
            ..SubmissionSettings::default()
        };
        assert_eq!(
            settings.validate(true).unwrap_err().key,
            "submission.max_connections_per_user"
        );
    }
}
