//! Reloading the whole configuration while serving: SIGHUP, and `popgate
//! reload` over the control socket, call the same [`Reloader::reload`].
//!
//! A reload
//!
//! 1. loads and validates the file as start-up does ([`Settings::load`]);
//!    an invalid configuration is refused, naming the key, and the old one
//!    stays in force;
//! 2. keeps the [restart-only](RESTART_ONLY) keys at the values in force
//!    and reports the ones that changed: they take effect at the next
//!    restart;
//! 3. builds a new [`Runtime`](crate::runtime::Runtime) from the rest (reading the relay's password
//!    and CA files, and a newly named mailbox-settings file), puts the
//!    authentication rules, the failure delays and `check_timeout` in
//!    force, and re-reads the certificate, the htpasswd file (emptying the
//!    login cache, as it always has) and the mailbox-settings file. A file
//!    that cannot be read — say a key only root may read, once popgate runs
//!    as `mail_user` — keeps its old contents, and says so in one line;
//! 4. puts the new snapshot in force for the connections accepted from now
//!    on. Sessions in progress keep the snapshot they started with: their
//!    banner, timeouts, `on_dele`, limits; none is dropped.
//!
//! Its [`ReloadReport`] says what changed, what needs a restart, which
//! files kept their old contents, or why the configuration was refused; the
//! reload logs it (one line, after one line per file kept) and hands it
//! back, for the control socket to print and for metrics to count
//! ([`ReloadReport::is_applied`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use popgate_auth::AuthError;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::expiry_watch;
use crate::log_text::LogText;
use crate::metrics;
use crate::runtime::{Current, Kept, Shared};

/// The keys a running server cannot change, and why: reloads keep their
/// values in force and report them as needing a restart.
///
/// | key | why |
/// | --- | --- |
/// | `pop3.listen`, `pop3.listen_tls`, `submission.listen`, `submission.listen_tls` | sockets are bound at start, before privileges are dropped |
/// | `tls` (the section, on or off), `submission` (the section) | listeners and STLS/STARTTLS offers are set up with them; the files `tls.cert` and `tls.key` do reload |
/// | `store.mail_user` | privileges are dropped for good |
/// | `store.snapshot_cache` | the cache is made once, at start, and outlives every configuration |
/// | `auth.backend`, `auth.htpasswd`, `auth.pam_service` | the user database is opened at start (the htpasswd file's contents do reload) |
/// | `auth.login_name_case` | every table is keyed by folded names: users, login cache, throttle, limits, mailbox settings |
/// | `auth.max_checks` | password checks that hang hold their slots; a reload must not hand out fresh ones beside them |
pub const RESTART_ONLY: &[&str] = &[
    "pop3.listen",
    "pop3.listen_tls",
    "submission.listen",
    "submission.listen_tls",
    "tls",
    "submission",
    "store.mail_user",
    "store.snapshot_cache",
    "auth.backend",
    "auth.htpasswd",
    "auth.pam_service",
    "auth.login_name_case",
    "auth.max_checks",
    "metrics",
    "control",
];

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadReport {
    /// The new configuration is in force for new connections.
    Applied(Applied),
    /// The configuration was refused (the reason names the key); the old
    /// one stays in force.
    Refused(String),
}

/// What an applied reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The keys whose new values are in force (dotted: `pop3.on_dele`).
    pub changed: Vec<String>,
    /// The [restart-only](RESTART_ONLY) keys that changed: their old
    /// values stay in force until popgate restarts.
    pub needs_restart: Vec<&'static str>,
    /// The files that could not be read, whose old contents stay in force.
    pub kept: Vec<Kept>,
}

impl ReloadReport {
    /// True when the new configuration is in force (possibly with files
    /// kept or keys waiting for a restart); false when it was refused.
    pub fn is_applied(&self) -> bool {
        matches!(self, ReloadReport::Applied(_))
    }

    /// True when the whole new configuration is in force: applied, and no
    /// file kept its old contents (keys waiting for a restart aside).
    pub fn is_complete(&self) -> bool {
        matches!(self, ReloadReport::Applied(applied) if applied.kept.is_empty())
    }

    /// The report as the log shows it: a line per file kept, then the
    /// report's own line (what `popgate reload` prints).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let ReloadReport::Applied(applied) = self {
            for kept in &applied.kept {
                lines.push(kept.to_string());
            }
        }
        lines.push(self.to_string());
        lines
    }

    /// Logs the report: a line per file kept, then the report's own line,
    /// an error when refused, a warning when something did not take
    /// effect.
    fn log(&self) {
        match self {
            ReloadReport::Refused(_) => error!("{self}"),
            ReloadReport::Applied(applied) => {
                for kept in &applied.kept {
                    error!("{kept}");
                }
                if applied.kept.is_empty() && applied.needs_restart.is_empty() {
                    info!("{self}");
                } else {
                    warn!("{self}");
                }
            }
        }
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadReport::Refused(reason) => write!(
                f,
                "configuration not reloaded, the old one stays in force: {}",
                LogText(reason)
            ),
            ReloadReport::Applied(applied) => {
                f.write_str("configuration reloaded: ")?;
                if applied.changed.is_empty() {
                    f.write_str("no setting changed")?;
                } else {
                    write!(f, "changed {}", applied.changed.join(", "))?;
                }
                if !applied.needs_restart.is_empty() {
                    write!(
                        f,
                        "; needs a restart to take effect: {}",
                        applied.needs_restart.join(", ")
                    )?;
                }
                if !applied.kept.is_empty() {
                    let keys: Vec<&str> = applied.kept.iter().map(|k| k.key).collect();
                    write!(f, "; old contents kept: {}", keys.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Reloads the configuration of a running gateway (see the module).
#[derive(Debug, Clone)]
pub struct Reloader {
    config: PathBuf,
    current: Arc<Current>,
    shared: Arc<Shared>,
    /// Held by the reload under way.
    one_at_a_time: Arc<Mutex<()>>,
}

impl Reloader {
    /// A reloader of the configuration file `config` into `current`.
    pub fn new(config: PathBuf, current: Arc<Current>, shared: Arc<Shared>) -> Reloader {
        Reloader {
            config,
            current,
            shared,
            one_at_a_time: Arc::new(Mutex::new(())),
        }
    }

    /// Reloads the configuration file, certificates, users and mailbox
    /// settings; sessions carry on. Logs what it did, and returns it.
    /// Blocking (it reads files): call it from a blocking thread
    /// (`tokio::task::spawn_blocking`). Reloads asked for at once (SIGHUP
    /// and the control socket) run one after the other.
    pub fn reload(&self) -> ReloadReport {
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let report = self.apply();
        report.log();
        metrics::count_reload(self.shared.metrics.as_deref(), report.is_complete());
        report
    }

    fn apply(&self) -> ReloadReport {
        let loaded = match Settings::load(&self.config) {
            Ok(settings) => settings,
            Err(error) => return ReloadReport::Refused(error.to_string()),
        };
        let old = self.current.load();
        let (settings, needs_restart) = keep_restart_only(old.settings(), loaded);
        if let Err(error) = settings.validate() {
            return ReloadReport::Refused(format!("{}: {error}", self.config.display()));
        }
        let changed = changed_keys(old.settings(), &settings);
        let mut kept = Vec::new();
        let runtime = match old.rebuild(settings, &self.shared, &mut kept) {
            Ok(runtime) => runtime,
            Err(error) => {
                return ReloadReport::Refused(format!("{}: {error}", self.config.display()))
            }
        };
        // The last step that may refuse; it changes nothing when it does.
        let settings = runtime.settings();
        if let Err(error) = self.shared.auth.reconfigure(&settings.auth_config()) {
            let key = match error {
                AuthError::MaildirTemplate { .. } | AuthError::HomeNotAvailable(_) => {
                    "store.maildir"
                }
                _ => "auth",
            };
            return ReloadReport::Refused(format!(
                "{}: key `{key}`: {error}",
                self.config.display()
            ));
        }
        self.shared
            .login
            .reconfigure(settings.auth.check_timeout.0, settings.throttle_config());
        if let (Some(tls), Some(paths)) = (&self.shared.tls, &settings.tls) {
            match tls.reload_from(&paths.cert, &paths.key) {
                // A certificate near its end is said at once, not at the
                // expiry watch's next daily look.
                Ok(()) => {
                    if let Some(warning) = expiry_watch::warning(tls, SystemTime::now()) {
                        warn!("{warning}");
                    }
                }
                Err(error) => kept.push(Kept {
                    what: "TLS certificate",
                    key: "tls.cert",
                    reason: error.to_string(),
                }),
            }
        }
        if let Err(error) = self.shared.auth.reload() {
            kept.push(Kept {
                what: "user database",
                key: "auth.htpasswd",
                reason: error.to_string(),
            });
        }
        if let Some(file) = runtime
            .mailbox_file()
            .filter(|file| old.mailbox_file().is_some_and(|old| Arc::ptr_eq(old, file)))
        {
            if let Err(error) = file.reload() {
                kept.push(Kept {
                    what: "mailbox settings",
                    key: "auth.mailbox_settings",
                    reason: error.to_string(),
                });
            }
        }
        self.current.store(runtime);
        ReloadReport::Applied(Applied {
            changed,
            needs_restart,
            kept,
        })
    }
}

/// `new` with the [restart-only](RESTART_ONLY) keys as they are in `old`,
/// and the keys among them whose new values differ.
pub fn keep_restart_only(old: &Settings, mut new: Settings) -> (Settings, Vec<&'static str>) {
    let mut restart = Vec::new();
    keep(
        &mut restart,
        "pop3.listen",
        &old.pop3.listen,
        &mut new.pop3.listen,
    );
    keep(
        &mut restart,
        "pop3.listen_tls",
        &old.pop3.listen_tls,
        &mut new.pop3.listen_tls,
    );
    if old.tls.is_some() != new.tls.is_some() {
        restart.push("tls");
        new.tls = old.tls.clone();
    }
    match (&old.submission, &mut new.submission) {
        (Some(old), Some(new)) => {
            keep(
                &mut restart,
                "submission.listen",
                &old.listen,
                &mut new.listen,
            );
            keep(
                &mut restart,
                "submission.listen_tls",
                &old.listen_tls,
                &mut new.listen_tls,
            );
        }
        (None, None) => {}
        _ => {
            restart.push("submission");
            new.submission = old.submission.clone();
        }
    }
    keep(
        &mut restart,
        "store.mail_user",
        &old.store.mail_user,
        &mut new.store.mail_user,
    );
    keep(
        &mut restart,
        "store.snapshot_cache",
        &old.store.snapshot_cache,
        &mut new.store.snapshot_cache,
    );
    keep(&mut restart, "metrics", &old.metrics, &mut new.metrics);
    keep(&mut restart, "control", &old.control, &mut new.control);
    let (auth, new_auth) = (&old.auth, &mut new.auth);
    keep(
        &mut restart,
        "auth.backend",
        &auth.backend,
        &mut new_auth.backend,
    );
    keep(
        &mut restart,
        "auth.htpasswd",
        &auth.htpasswd,
        &mut new_auth.htpasswd,
    );
    keep(
        &mut restart,
        "auth.pam_service",
        &auth.pam_service,
        &mut new_auth.pam_service,
    );
    keep(
        &mut restart,
        "auth.login_name_case",
        &auth.login_name_case,
        &mut new_auth.login_name_case,
    );
    keep(
        &mut restart,
        "auth.max_checks",
        &auth.max_checks,
        &mut new_auth.max_checks,
    );
    (new, restart)
}

/// Puts `old` back into `new` when they differ, noting `key`.
fn keep<T: PartialEq + Clone>(
    restart: &mut Vec<&'static str>,
    key: &'static str,
    old: &T,
    new: &mut T,
) {
    if old != new {
        restart.push(key);
        *new = old.clone();
    }
}

/// The dotted keys whose values differ between `old` and `new`: a key of a
/// section (`pop3.banner`), or a top-level key (`hostname`); a table deeper
/// down is one key (`submission.addresses`).
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let table = |settings: &Settings| toml::Table::try_from(settings).unwrap_or_default();
    let (old, new) = (table(old), table(new));
    let mut changed = Vec::new();
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        match (old.get(name), new.get(name)) {
            (Some(toml::Value::Table(old)), Some(toml::Value::Table(new))) => {
                let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    if old.get(key) != new.get(key) {
                        changed.push(format!("{name}.{key}"));
                    }
                }
            }
            (old, new) if old != new => changed.push(name.clone()),
            _ => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn restart_only_keys_keep_their_values_and_are_named() {
        let old = settings(
            "[pop3]\nlisten = [\"127.0.0.1:110\"]\nbanner = \"old\"\n\
             [auth]\nhtpasswd = \"/a\"\nmax_checks = 4\n",
        );
        let new = settings(
            "[pop3]\nlisten = [\"127.0.0.1:1110\"]\nbanner = \"new\"\n\
             [auth]\nhtpasswd = \"/b\"\nmax_checks = 8\nlogin_name_case = \"exact\"\n\
             [tls]\ncert = \"c\"\nkey = \"k\"\n[store]\nmail_user = \"vmail\"\n\
             [submission]\nrelay = \"maildir\"\n",
        );
        let (kept, restart) = keep_restart_only(&old, new);
        assert_eq!(
            restart,
            [
                "pop3.listen",
                "tls",
                "submission",
                "store.mail_user",
                "auth.htpasswd",
                "auth.login_name_case",
                "auth.max_checks"
            ]
        );
        assert_eq!(kept.pop3.listen, old.pop3.listen);
        assert!(kept.tls.is_none() && kept.submission.is_none());
        assert_eq!(kept.auth.htpasswd, old.auth.htpasswd);
        assert_eq!(kept.pop3.banner, "new", "the rest is the new configuration");
        assert!(changed_keys(&old, &kept) == ["pop3.banner"]);
        for key in restart {
            assert!(RESTART_ONLY.contains(&key), "{key}");
        }
    }

    #[test]
    fn the_snapshot_cache_budget_is_restart_only() {
        let old = settings("[store]\nmaildir = \"/a/%u\"\n");
        for budget in ["\"0\"", "\"1M\""] {
            let new = settings(&format!(
                "[store]\nmaildir = \"/b/%u\"\nsnapshot_cache = {budget}\n"
            ));
            let (kept, restart) = keep_restart_only(&old, new);
            assert_eq!(restart, ["store.snapshot_cache"], "{budget}");
            assert_eq!(kept.store.snapshot_cache, old.store.snapshot_cache);
            assert_eq!(changed_keys(&old, &kept), ["store.maildir"], "{budget}");
            let report = ReloadReport::Applied(Applied {
                changed: changed_keys(&old, &kept),
                needs_restart: restart,
                kept: Vec::new(),
            });
            assert_eq!(
                report.to_string(),
                "configuration reloaded: changed store.maildir; needs a restart to take \
                 effect: store.snapshot_cache"
            );
        }
        let same = settings("[store]\nmaildir = \"/a/%u\"\nsnapshot_cache = \"32M\"\n");
        let (_, restart) = keep_restart_only(&old, same);
        assert!(restart.is_empty(), "32M is the default: {restart:?}");
        assert!(RESTART_ONLY.contains(&"store.snapshot_cache"));
    }

    #[test]
    fn submission_listeners_are_restart_only_and_the_rest_of_the_section_is_not() {
        let old = settings("[submission]\nrelay = \"maildir\"\nlisten = [\"127.0.0.1:587\"]\n");
        let new = settings(
            "[submission]\nrelay = \"sendmail\"\nlisten = [\"127.0.0.1:2587\"]\n\
             [submission.addresses]\nbob = [\"bob@example.com\"]\n",
        );
        let (kept, restart) = keep_restart_only(&old, new);
        assert_eq!(restart, ["submission.listen"]);
        assert_eq!(
            changed_keys(&old, &kept),
            ["submission.addresses", "submission.relay"]
        );
    }

    #[test]
    fn changed_keys_are_dotted_and_sorted() {
        let old = settings("hostname = \"a\"\n[pop3]\non_dele = \"delete\"\n");
        let new = settings(
            "hostname = \"b\"\n[pop3]\non_dele = \"keep\"\nmax_connections_per_ip = 3\n\
             [auth]\nmailbox_settings = \"/etc/m.toml\"\n",
        );
        assert_eq!(
            changed_keys(&old, &new),
            [
                "auth.mailbox_settings",
                "hostname",
                "pop3.max_connections_per_ip",
                "pop3.on_dele"
            ]
        );
        assert!(changed_keys(&old, &old).is_empty());
    }

    #[test]
    fn the_report_reads_as_one_line() {
        let applied = ReloadReport::Applied(Applied {
            changed: vec!["pop3.banner".into(), "pop3.on_dele".into()],
            needs_restart: vec!["pop3.listen"],
            kept: vec![Kept {
                what: "TLS certificate",
                key: "tls.cert",
                reason: "key.pem: Permission denied".into(),
            }],
        });
        assert_eq!(
            applied.to_string(),
            "configuration reloaded: changed pop3.banner, pop3.on_dele; needs a restart to \
             take effect: pop3.listen; old contents kept: tls.cert"
        );
        assert!(applied.is_applied());
        assert_eq!(
            ReloadReport::Applied(Applied::default()).to_string(),
            "configuration reloaded: no setting changed"
        );
        let refused = ReloadReport::Refused("p.toml: key `pop3.banner`: too\nlong".into());
        assert!(!refused.is_applied());
        assert_eq!(
            refused.to_string(),
            "configuration not reloaded, the old one stays in force: p.toml: key \
             `pop3.banner`: too\\nlong"
        );
    }
}
