//! The configuration contract of DESIGN.md, as types.
//!
//! A TOML file is read through the `config` crate and then every key can be
//! overridden from the environment as `POPGATE_<SECTION>__<KEY>` (for example
//! `POPGATE_POP3__LOGIN=plaintext`, or `POPGATE_HOSTNAME=mail.example.org` for
//! a top-level key). Every struct denies unknown fields: a misspelt key is an
//! error that names it, because a typo must never silently turn security off.
//!
//! [`Settings::load`] returns settings that have also passed [`Settings::validate`],
//! so the rest of the gateway can trust them.

mod auth;
mod control;
mod metrics;
mod proxy_protocol;
mod submission;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use popgate_store::SnapshotCache;
use serde::{Deserialize, Serialize};

pub use auth::{AuthSettings, BackendKind, LoginNameCase};
pub use control::{ControlSettings, DEFAULT_CONTROL_SOCKET};
pub use metrics::MetricsSettings;
pub use proxy_protocol::{IpNetwork, ProxyProtocolSettings};
pub use submission::{MaildirRecipient, Relay, RelayTls, SenderPolicy, SubmissionSettings};
pub use units::{ByteSize, HumanDuration};

/// A configuration that could not be used, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a value has the wrong type.
    #[error("{path}: {source}")]
    Load {
        /// The configuration file.
        path: PathBuf,
        /// What the `config` crate reported (it names the key).
        source: config::ConfigError,
    },
    /// A key has a value of the right type that cannot work.
    #[error("{path}: {error}")]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// The key and what is wrong with it.
        #[source]
        error: SettingError,
    },
}

/// A setting of the right type that cannot work: its dotted key (e.g.
/// `pop3.max_command_size`) and why. Shown as ``key `…`: why``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct SettingError {
    /// The dotted key.
    pub key: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl SettingError {
    /// The error for `key`, saying `message`.
    pub fn new(key: &'static str, message: String) -> SettingError {
        SettingError { key, message }
    }
}

/// Everything `popgate serve` reads from its configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The name this server gives itself in greetings and headers.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Certificate and key; without them no TLS listener and no STLS.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// The POP3 service.
    #[serde(default)]
    pub pop3: Pop3Settings,
    /// Who may log in.
    #[serde(default)]
    pub auth: AuthSettings,
    /// Where mail lives.
    #[serde(default)]
    pub store: StoreSettings,
    /// The submission service; without this section no submission listener.
    #[serde(default)]
    pub submission: Option<SubmissionSettings>,
    /// Load balancers allowed (and required) to send a PROXY header.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocolSettings,
    /// Prometheus metrics and the autoconfig file over HTTP; without this
    /// section nothing is counted and no port is bound.
    #[serde(default)]
    pub metrics: Option<MetricsSettings>,
    /// The control socket; without this section the default path, if it
    /// can be made (see [`ControlSettings`]).
    #[serde(default)]
    pub control: Option<ControlSettings>,
}

/// `[tls]`: the certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, leaf first (e.g. Let's Encrypt's fullchain.pem).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// When a client may send credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginPolicy {
    /// No credentials before TLS (Exchange's SecureLogin, the default).
    Secure,
    /// Credentials accepted on plaintext connections too.
    Plaintext,
}

/// `[pop3]`: listeners, behaviour and limits of the POP3 service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Settings {
    /// Plaintext listeners; STLS is offered on them when `[tls]` is set.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (port 995).
    pub listen_tls: Vec<SocketAddr>,
    /// Whether credentials need TLS.
    pub login: LoginPolicy,
    /// Leave-on-server policy: "delete", "keep", "mark-seen" or "move:Folder".
    pub on_dele: String,
    /// "oldest-first" or "newest-first".
    pub order: String,
    /// One session per mailbox at a time (RFC 1939 §8).
    pub lock: bool,
    /// How long a second session waits for the first to QUIT.
    pub lock_wait: HumanDuration,
    /// The longest command line accepted, in octets.
    pub max_command_size: usize,
    /// Idle time allowed before login.
    pub preauth_timeout: HumanDuration,
    /// Total time allowed to log in, from accept, however busy the client
    /// keeps the connection (the idle timeouts restart with every command).
    pub login_deadline: HumanDuration,
    /// Idle time allowed after login (RFC 1939 autologout).
    pub idle_timeout: HumanDuration,
    /// Connections in all.
    pub max_connections: usize,
    /// Connections from one client address.
    pub max_connections_per_ip: usize,
    /// Logged-in sessions of one user.
    pub max_connections_per_user: usize,
    /// The text of the greeting after `+OK`.
    pub banner: String,
    /// Log every command and reply status line (credentials redacted;
    /// message bodies and listings never).
    pub protocol_log: bool,
}

impl Default for Pop3Settings {
    fn default() -> Self {
        Pop3Settings {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 110))],
            listen_tls: vec![SocketAddr::from(([0, 0, 0, 0], 995))],
            login: LoginPolicy::Secure,
            on_dele: "delete".into(),
            order: "oldest-first".into(),
            lock: true,
            lock_wait: HumanDuration::from_secs(15),
            max_command_size: 512,
            preauth_timeout: HumanDuration::from_secs(60),
            login_deadline: HumanDuration::from_secs(120),
            idle_timeout: HumanDuration::from_secs(600),
            max_connections: 10_000,
            max_connections_per_ip: 50,
            max_connections_per_user: 10,
            banner: "popgate ready".into(),
            protocol_log: false,
        }
    }
}

impl Pop3Settings {
    /// How sessions open mailboxes; the error names the key that is wrong.
    pub fn open_options(&self) -> Result<popgate_store::OpenOptions, SettingError> {
        Ok(popgate_store::OpenOptions {
            lock: self.lock,
            lock_wait: self.lock_wait.0,
            order: self
                .order
                .parse()
                .map_err(|e| SettingError::new("pop3.order", e))?,
            on_dele: self
                .on_dele
                .parse()
                .map_err(|e| SettingError::new("pop3.on_dele", e))?,
            // Each login sets its own, from login_deadline.
            deadline: None,
            // The POP3 service shares one cache among its logins.
            snapshots: None,
        })
    }
}

/// The largest `[store] snapshot_cache`: the snapshots are held in memory,
/// and 1 GiB is about ten million messages' worth.
pub const MAX_SNAPSHOT_CACHE: u64 = 1 << 30;

/// `[store]`: where each user's Maildir is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Path template: `%u` user, `%n` local part, `%d` domain; `~/Maildir` for PAM users.
    pub maildir: String,
    /// The system user that owns virtual users' Maildirs: started as root,
    /// popgate binds its ports and then runs as this user (htpasswd only).
    pub mail_user: Option<String>,
    /// How many octets of Maildir snapshots logins keep for the next login
    /// of an unchanged Maildir (see [`popgate_store::snapshot_cache`]); 0:
    /// none are kept, and every login lists its Maildir.
    pub snapshot_cache: ByteSize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            maildir: "/var/vmail/%d/%n/Maildir".into(),
            mail_user: None,
            // usize is at most 64 bits wide: the cast is exact.
            snapshot_cache: ByteSize(popgate_store::snapshot_cache::DEFAULT_BUDGET as u64),
        }
    }
}

impl StoreSettings {
    /// The snapshot cache `snapshot_cache` asks for, empty; `None` when it
    /// is 0, so that logins neither keep nor look for snapshots.
    pub fn snapshot_cache(&self) -> Option<Arc<SnapshotCache>> {
        match self.snapshot_cache.0 {
            0 => None,
            budget => Some(Arc::new(SnapshotCache::new(
                usize::try_from(budget).unwrap_or(usize::MAX),
            ))),
        }
    }
}

/// The `POPGATE_*` variables that are meant as configuration: section keys
/// (`POPGATE_POP3__LOGIN`) and top-level keys (`POPGATE_HOSTNAME`). Others
/// that merely share the prefix, such as a `POPGATE_BIN` set by a script,
/// are not configuration and are left alone.
fn configuration_variables(
    vars: impl Iterator<Item = (String, String)>,
) -> config::Map<String, String> {
    vars.filter(|(name, _)| {
        name.strip_prefix("POPGATE_")
            .is_some_and(|key| key.contains("__") || key == "HOSTNAME")
    })
    .collect()
}

fn default_hostname() -> String {
    "localhost".into()
}

impl Settings {
    /// The control socket's path, configured or default.
    pub fn control_socket(&self) -> PathBuf {
        self.control.clone().unwrap_or_default().socket
    }

    /// Reads `path`, applies `POPGATE_*` environment overrides, and validates.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let load_error = |source| ConfigError::Load {
            path: path.to_path_buf(),
            source,
        };
        let environment = config::Environment::with_prefix("POPGATE")
            .source(Some(configuration_variables(std::env::vars())))
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("pop3.listen")
            .with_list_parse_key("pop3.listen_tls")
            .with_list_parse_key("auth.deny_users")
            .with_list_parse_key("auth.disabled_users")
            .with_list_parse_key("submission.listen")
            .with_list_parse_key("submission.listen_tls")
            .with_list_parse_key("proxy_protocol.trusted")
            .try_parsing(true);
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(environment)
            .build()
            .map_err(load_error)?
            .try_deserialize()
            .map_err(load_error)?;
        settings.validate().map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(settings)
    }

    /// Checks the values that have the right type but cannot work; the error
    /// names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        let pop3 = &self.pop3;
        if self.hostname.is_empty() || !self.hostname.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SettingError::new(
                "hostname",
                "must be a host name without spaces".into(),
            ));
        }
        if self.tls.is_none() && !pop3.listen_tls.is_empty() {
            return Err(SettingError::new(
                "pop3.listen_tls",
                "implicit-TLS listeners need [tls] cert and key (or set listen_tls = [])".into(),
            ));
        }
        pop3.open_options()?;
        if !(40..=8192).contains(&pop3.max_command_size) {
            return Err(SettingError::new(
                "pop3.max_command_size",
                "must be between 40 and 8192 octets".into(),
            ));
        }
        if pop3.banner.len() > 200 || !pop3.banner.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(SettingError::new(
                "pop3.banner",
                "must be at most 200 printable ASCII characters".into(),
            ));
        }
        if pop3.preauth_timeout.0.is_zero() || pop3.idle_timeout.0.is_zero() {
            return Err(SettingError::new(
                "pop3.idle_timeout",
                "timeouts must be longer than zero".into(),
            ));
        }
        if pop3.login_deadline.0.is_zero() {
            return Err(SettingError::new(
                "pop3.login_deadline",
                "must be longer than zero".into(),
            ));
        }
        if pop3.max_connections == 0
            || pop3.max_connections_per_ip == 0
            || pop3.max_connections_per_user == 0
        {
            return Err(SettingError::new(
                "pop3.max_connections",
                "connection limits must be at least 1".into(),
            ));
        }
        if self.auth.check_timeout.0.is_zero() {
            return Err(SettingError::new(
                "auth.check_timeout",
                "must be longer than zero".into(),
            ));
        }
        if self.auth.max_checks == 0 {
            return Err(SettingError::new(
                "auth.max_checks",
                "must be at least 1".into(),
            ));
        }
        if self.store.mail_user.is_some() && self.auth.backend == BackendKind::Pam {
            return Err(SettingError::new(
                "store.mail_user",
                "PAM users' Maildirs are opened with each user's own rights, which needs root: leave mail_user unset".into(),
            ));
        }
        if self.store.maildir.is_empty() {
            return Err(SettingError::new(
                "store.maildir",
                "must name a Maildir path template".into(),
            ));
        }
        if self.store.snapshot_cache.0 > MAX_SNAPSHOT_CACHE {
            return Err(SettingError::new(
                "store.snapshot_cache",
                format!(
                    "must be at most {} (0 turns it off)",
                    ByteSize(MAX_SNAPSHOT_CACHE)
                ),
            ));
        }
        self.proxy_protocol.validate()?;
        if let Some(metrics) = &self.metrics {
            metrics.validate()?;
        }
        if let Some(control) = &self.control {
            control.validate()?;
        }
        if let Some(submission) = &self.submission {
            submission.validate(self.tls.is_some())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn the_contract_example_loads_and_keeps_its_values() {
        let file = write(
            r#"
hostname = "mail.example.com"
[pop3]
listen = ["127.0.0.1:1110"]
listen_tls = []
login = "plaintext"
on_dele = "move:Archive"
lock_wait = "2s"
idle_timeout = "10m"
max_command_size = 1024
[auth]
failure_delay = "500ms"
[store]
maildir = "/srv/mail/%d/%n"
"#,
        );
        let settings = Settings::load(file.path()).unwrap();
        assert_eq!(settings.hostname, "mail.example.com");
        assert_eq!(settings.pop3.login, LoginPolicy::Plaintext);
        assert_eq!(settings.pop3.lock_wait.0, std::time::Duration::from_secs(2));
        assert_eq!(
            settings.pop3.idle_timeout.0,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(settings.pop3.max_command_size, 1024);
        assert_eq!(
            settings.auth.failure_delay.0,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(settings.auth.deny_users.len(), 6);
        assert_eq!(settings.auth.login_name_case, LoginNameCase::Lower);
        assert_eq!(settings.store.maildir, "/srv/mail/%d/%n");
        let file = write("[pop3]\nlisten_tls = []\n[auth]\nlogin_name_case = \"exact\"\n");
        let settings = Settings::load(file.path()).unwrap();
        assert_eq!(settings.auth.login_name_case, LoginNameCase::Exact);
        let file = write("[pop3]\nlisten_tls = []\n[auth]\nlogin_name_case = \"upper\"\n");
        let error = Settings::load(file.path()).unwrap_err().to_string();
        assert!(error.contains("upper"), "{error}");
    }

    #[test]
    fn the_annotated_example_is_a_valid_configuration() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/popgate.toml");
        let settings = Settings::load(&path).unwrap();
        let defaults = Pop3Settings::default();
        assert_eq!(settings.pop3.listen, defaults.listen);
        assert_eq!(settings.pop3.idle_timeout, defaults.idle_timeout);
        assert_eq!(settings.pop3.login_deadline, HumanDuration::from_secs(120));
        assert_eq!(settings.pop3.login_deadline, defaults.login_deadline);
        assert_eq!(settings.auth.deny_users, AuthSettings::default().deny_users);
        let submission = settings.submission.clone().unwrap();
        let defaults = SubmissionSettings::default();
        assert_eq!(submission.listen, defaults.listen);
        assert_eq!(submission.max_message_size, defaults.max_message_size);
        assert_eq!(submission.login_deadline, defaults.login_deadline);
        assert_eq!(submission.min_data_rate, defaults.min_data_rate);
        assert_eq!(
            submission.relay.to_string(),
            "smtp://smarthost.example.com:587"
        );
        assert_eq!(
            settings.metrics,
            Some(MetricsSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
                allow_public: false,
            })
        );
        // [control] is shown commented out: the default, tried best-effort.
        assert_eq!(settings.control, None);
        assert_eq!(settings.control_socket(), Path::new(DEFAULT_CONTROL_SOCKET));
    }

    #[test]
    fn metrics_are_off_unless_configured_and_public_only_when_said() {
        let file = write("[pop3]\nlisten_tls = []\n");
        assert_eq!(Settings::load(file.path()).unwrap().metrics, None);
        let file = write("[pop3]\nlisten_tls = []\n[metrics]\nlisten = \"[::1]:9187\"\n");
        let metrics = Settings::load(file.path()).unwrap().metrics.unwrap();
        assert_eq!(metrics.listen, "[::1]:9187".parse().unwrap());
        assert!(!metrics.allow_public);
        let file = write(
            "[pop3]\nlisten_tls = []\n[metrics]\nlisten = \"0.0.0.0:9187\"\nallow_public = true\n",
        );
        assert!(
            Settings::load(file.path())
                .unwrap()
                .metrics
                .unwrap()
                .allow_public
        );
    }

    #[test]
    fn a_control_section_names_its_socket_and_is_checked() {
        let file = write("[pop3]\nlisten_tls = []\n[control]\nsocket = \"/run/pg/ctl\"\n");
        let settings = Settings::load(file.path()).unwrap();
        assert_eq!(settings.control_socket(), Path::new("/run/pg/ctl"));
        let file = write("[pop3]\nlisten_tls = []\n[control]\n");
        let settings = Settings::load(file.path()).unwrap();
        assert_eq!(settings.control, Some(ControlSettings::default()));
        for (text, key) in [
            ("[control]\nsocket = \"ctl\"\n", "control.socket"),
            ("[control]\nsockets = \"/ctl\"\n", "sockets"),
        ] {
            let file = write(&format!("[pop3]\nlisten_tls = []\n{text}"));
            let error = Settings::load(file.path()).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn local_delivery_works_with_home_maildirs_of_pam_users() {
        let file = write(
            "[pop3]\nlisten_tls = []\n[tls]\ncert = \"c\"\nkey = \"k\"\n\
             [auth]\nbackend = \"pam\"\n[store]\nmaildir = \"~/Maildir\"\n\
             [submission]\nrelay = \"maildir\"\n",
        );
        let settings = Settings::load(file.path()).unwrap();
        assert_eq!(settings.submission.unwrap().relay, Relay::Maildir);
    }

    #[test]
    fn the_submission_section_is_optional_and_checked() {
        let file = write("[pop3]\nlisten_tls = []\n");
        assert!(Settings::load(file.path()).unwrap().submission.is_none());
        let file = write(
            "[tls]\ncert = \"c\"\nkey = \"k\"\n[submission]\nrelay = \"maildir\"\n\
             sender_policy = \"any\"\nmax_message_size = \"10M\"\n\
             [submission.addresses]\nalice = [\"alice@example.com\"]\n",
        );
        let submission = Settings::load(file.path()).unwrap().submission.unwrap();
        assert_eq!(submission.relay, Relay::Maildir);
        assert_eq!(submission.sender_policy, SenderPolicy::Any);
        assert_eq!(submission.max_message_size, ByteSize(10 << 20));
        assert_eq!(submission.addresses["alice"], ["alice@example.com"]);
        for (text, key) in [
            ("[submission]\nrelya = \"maildir\"\n", "relya"),
            ("[submission]\nrelay = \"lmtp://x\"\n", "lmtp://x"),
            (
                "[submission]\nrelay = \"smtp://mx.example.com:25\"\nrelay_tls = \"none\"\n",
                "submission.relay_tls",
            ),
            (
                "[submission]\n[submission.addresses]\nalice = [\"not an address\"]\n",
                "submission.addresses",
            ),
            (
                "[submission]\n[submission.addresses]\nalice = [\"jos\u{e9}@example.com\"]\n",
                "submission.addresses",
            ),
        ] {
            let text = format!("[tls]\ncert = \"c\"\nkey = \"k\"\n{text}");
            let file = write(&text);
            let error = Settings::load(file.path()).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn the_proxy_protocol_is_off_unless_proxies_are_named() {
        let file = write("[pop3]\nlisten_tls = []\n");
        let settings = Settings::load(file.path()).unwrap();
        assert!(settings.proxy_protocol.trusted.is_empty());
        let file = write(
            "[pop3]\nlisten_tls = []\n[proxy_protocol]\ntrusted = [\"10.0.0.5\", \"10.1.0.0/16\"]\ntimeout = \"2s\"\n",
        );
        let proxy = Settings::load(file.path()).unwrap().proxy_protocol;
        let trusted: Vec<String> = proxy.trusted.iter().map(|n| n.to_string()).collect();
        assert_eq!(trusted, ["10.0.0.5", "10.1.0.0/16"]);
        assert_eq!(proxy.timeout, HumanDuration::from_secs(2));
    }

    #[test]
    fn a_mail_user_goes_with_virtual_users_only() {
        let file = write("[pop3]\nlisten_tls = []\n[auth]\nbackend = \"pam\"\n[store]\nmaildir = \"~/Maildir\"\nmail_user = \"vmail\"\n");
        let error = Settings::load(file.path()).unwrap_err().to_string();
        assert!(error.contains("store.mail_user"), "{error}");
        let file = write("[pop3]\nlisten_tls = []\n[store]\nmail_user = \"vmail\"\n");
        assert_eq!(
            Settings::load(file.path())
                .unwrap()
                .store
                .mail_user
                .as_deref(),
            Some("vmail")
        );
    }

    #[test]
    fn the_snapshot_cache_has_a_budget_that_zero_turns_off() {
        let file = write("[pop3]\nlisten_tls = []\n");
        let store = Settings::load(file.path()).unwrap().store;
        assert_eq!(store.snapshot_cache, ByteSize(32 << 20));
        assert_eq!(
            store.snapshot_cache,
            ByteSize(popgate_store::snapshot_cache::DEFAULT_BUDGET as u64)
        );
        assert!(store.snapshot_cache().is_some());
        let file = write("[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = \"1M\"\n");
        let store = Settings::load(file.path()).unwrap().store;
        assert_eq!(store.snapshot_cache, ByteSize(1 << 20));
        let cache = store.snapshot_cache().unwrap();
        assert!(
            format!("{cache:?}").contains("budget: 1048576"),
            "{cache:?}"
        );
        for zero in ["\"0\"", "0"] {
            let file = write(&format!(
                "[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = {zero}\n"
            ));
            let store = Settings::load(file.path()).unwrap().store;
            assert_eq!(store.snapshot_cache, ByteSize(0));
            assert!(store.snapshot_cache().is_none(), "{zero}: no cache at all");
        }
        let file = write("[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = \"1G\"\n");
        assert!(Settings::load(file.path()).is_ok(), "the largest allowed");
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it_and_the_file() {
        let file = write("[pop3]\nlgin = \"plaintext\"\nlisten_tls = []\n");
        let error = Settings::load(file.path()).unwrap_err().to_string();
        assert!(error.contains("lgin"), "{error}");
        assert!(
            error.contains(&file.path().display().to_string()),
            "{error}"
        );
    }

    /// The named error reads as the tuple it replaced did, in both places
    /// it is shown: `popgate serve` at start and the loader's message.
    #[test]
    fn a_setting_error_reads_key_then_reason() {
        let file = write("[pop3]\nlisten_tls = []\nmax_command_size = 5\n");
        let error = Settings::load(file.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: key `pop3.max_command_size`: must be between 40 and 8192 octets",
                file.path().display()
            )
        );
        let ConfigError::Invalid { error, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(error.key, "pop3.max_command_size");
    }

    #[test]
    fn a_bad_value_is_an_error_that_names_the_key() {
        for (text, key) in [
            (
                "[pop3]\nlisten_tls = []\non_dele = \"shred\"\n",
                "pop3.on_dele",
            ),
            (
                "[pop3]\nlisten_tls = []\nmax_command_size = 5\n",
                "pop3.max_command_size",
            ),
            (
                "[pop3]\nlisten_tls = [\"127.0.0.1:995\"]\n",
                "pop3.listen_tls",
            ),
            (
                "[pop3]\nlisten_tls = []\n[auth]\ncheck_timeout = \"0s\"\n",
                "auth.check_timeout",
            ),
            (
                "[pop3]\nlisten_tls = []\nlogin_deadline = \"0s\"\n",
                "pop3.login_deadline",
            ),
            (
                "[pop3]\nlisten_tls = []\n[tls]\ncert = \"c\"\nkey = \"k\"\n[submission]\nlogin_deadline = \"0s\"\n",
                "submission.login_deadline",
            ),
            (
                "[pop3]\nlisten_tls = []\n[auth]\nmax_checks = 0\n",
                "auth.max_checks",
            ),
            (
                "[pop3]\nlisten_tls = []\n[tls]\ncert = \"c\"\nkey = \"k\"\n[submission]\nmin_data_rate = 0\n",
                "submission.min_data_rate",
            ),
            (
                "[pop3]\nlisten_tls = []\n[proxy_protocol]\ntimeout = \"0s\"\n",
                "proxy_protocol.timeout",
            ),
            (
                "[pop3]\nlisten_tls = []\n[proxy_protocol]\ntrusted = [\"10.1.2.3/16\"]\n",
                "host bits",
            ),
            (
                "[pop3]\nlisten_tls = []\n[proxy_protocol]\ntrustd = []\n",
                "trustd",
            ),
            (
                "[pop3]\nlisten_tls = []\n[metrics]\nlisten = \"0.0.0.0:9187\"\n",
                "metrics.listen",
            ),
            (
                "[pop3]\nlisten_tls = []\n[metrics]\nlisten = \"127.0.0.1:9187\"\nallow_publc = true\n",
                "allow_publc",
            ),
            ("[pop3]\nlisten_tls = []\n[metrics]\n", "listen"),
            (
                "[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = \"lots\"\n",
                "snapshot_cache",
            ),
            (
                "[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = -1\n",
                "snapshot_cache",
            ),
            (
                "[pop3]\nlisten_tls = []\n[store]\nsnapshot_cache = \"2G\"\n",
                "store.snapshot_cache",
            ),
        ] {
            let file = write(text);
            let error = Settings::load(file.path()).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        let file = write("[pop3]\nlisten_tls = []\nlock_wait = \"soon\"\n");
        let error = Settings::load(file.path()).unwrap_err().to_string();
        assert!(
            error.contains("soon") && error.contains("lock_wait"),
            "{error}"
        );
    }

    #[test]
    fn only_configuration_shaped_variables_are_taken_from_the_environment() {
        let vars = [
            ("POPGATE_POP3__LOGIN", "plaintext"),
            ("POPGATE_HOSTNAME", "h"),
            ("POPGATE_BIN", "/usr/bin/popgate"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept = configuration_variables(vars.into_iter());
        let mut names: Vec<_> = kept.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["POPGATE_HOSTNAME", "POPGATE_POP3__LOGIN"]);
    }
}
