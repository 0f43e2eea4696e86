//! What popgate counts, for Prometheus: the metric families and the
//! [`Metrics`] handle that records into them.
//!
//! A handle exists only when the configuration has a `[metrics]` section;
//! everywhere it is used it is an `Option` (`Option<Arc<Metrics>>`, or a
//! connection's [`SessionMetrics`]), so with metrics off an event costs one
//! branch. With metrics on, an event is an atomic add or two: every series
//! is created here, at start, and kept as a handle, so recording never looks
//! a label set up. The HTTP side is [`crate::http_listener`].
//!
//! | family | labels | counted |
//! | --- | --- | --- |
//! | `popgate_connections_total` | `service` | at accept, before any limit |
//! | `popgate_sessions` (gauge) | `service` | connections being served: up when the connection core takes one, down when it is dropped |
//! | `popgate_logins_total` | `service`, `result` | each login's end: `ok` or why not ([`LoginResult`], from [`LoginRefusal`]) |
//! | `popgate_login_duration_seconds` | | the password check, from its start to the backend's verdict (the failure delay after it not included) |
//! | `popgate_command_duration_seconds` | `service`, `command` | each command, from the hand-over of its last input to the next read (see [`SessionMetrics`]) |
//! | `popgate_messages_retrieved_total` | | each RETR sent (TOP is not counted) |
//! | `popgate_retrieved_bytes_total` | | the message octets of those RETRs, as the summary line counts them |
//! | `popgate_messages_deleted_total` | | deletions a committed UPDATE applied |
//! | `popgate_mailbox_opens_total` | `how` | each POP3 login's mailbox: `listed` (on a blocking thread) or `reused` (the kept snapshot of an unchanged Maildir) |
//! | `popgate_relay_total` | `result` | each message handed to the relay: `accepted`, `temporary`, `permanent` |
//! | `popgate_config_reloads_total` | `result` | each reload (SIGHUP): `ok`, or `failed` when the configuration was refused or a file kept its old contents |
//!
//! Labels take a few fixed values each: `service` is `pop3` or
//! `submission`, `command` one of the protocol's keywords or `unknown`.
//! Nothing a client chooses (a user name, an address) ever becomes a label,
//! so the number of series is fixed at start.

mod session;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::login::LoginRefusal;
use crate::submission::relay::outcome::RelayOutcome;

pub use session::SessionMetrics;

/// The `Content-Type` of [`Metrics::prometheus_text`].
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of [`Metrics::openmetrics_text`].
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the login duration's buckets, in seconds: a cached
/// login, bcrypt at common costs, a slow PAM stack, `check_timeout`.
const LOGIN_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the command duration's buckets, in seconds: from a STAT
/// answered from memory to a RETR of a big message or a slow relay.
const COMMAND_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
];

/// A service whose connections are counted: the `service` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// POP3, on 110 and 995.
    Pop3,
    /// Submission, on 587 and 465.
    Submission,
}

impl Service {
    const ALL: [Service; 2] = [Service::Pop3, Service::Submission];

    /// The `service` label.
    pub fn label(self) -> &'static str {
        match self {
            Service::Pop3 => "pop3",
            Service::Submission => "submission",
        }
    }

    /// The keywords its commands are counted under (the `command` label);
    /// any other line counts as `unknown`.
    fn keywords(self) -> &'static [&'static str] {
        match self {
            Service::Pop3 => crate::pop3::command::KEYWORDS,
            Service::Submission => crate::submission::session::KEYWORDS,
        }
    }
}

/// The `command` label of a line that starts with none of the keywords.
const UNKNOWN_COMMAND: &str = "unknown";

/// How a login ended: the `result` label of `popgate_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in.
    Ok,
    /// Unknown user, wrong password or denied name.
    Failed,
    /// The service is switched off for the user.
    Disabled,
    /// The check could not be made.
    Unavailable,
    /// The user is at `max_connections_per_user`.
    TooManySessions,
    /// The mailbox stayed locked by another session (POP3).
    MailboxLocked,
    /// The mailbox could not be opened now (POP3).
    MailboxUnavailable,
    /// The mailbox cannot be opened (POP3).
    MailboxBroken,
    /// The login deadline passed during the check.
    Deadline,
}

impl LoginResult {
    const ALL: [LoginResult; 9] = [
        LoginResult::Ok,
        LoginResult::Failed,
        LoginResult::Disabled,
        LoginResult::Unavailable,
        LoginResult::TooManySessions,
        LoginResult::MailboxLocked,
        LoginResult::MailboxUnavailable,
        LoginResult::MailboxBroken,
        LoginResult::Deadline,
    ];

    /// The result of a login that `refusal` ended.
    pub fn of(refusal: LoginRefusal) -> LoginResult {
        match refusal {
            LoginRefusal::Credentials { .. } => LoginResult::Failed,
            LoginRefusal::Disabled => LoginResult::Disabled,
            LoginRefusal::Unavailable => LoginResult::Unavailable,
            LoginRefusal::TooManySessions => LoginResult::TooManySessions,
            LoginRefusal::MailboxLocked => LoginResult::MailboxLocked,
            LoginRefusal::MailboxUnavailable => LoginResult::MailboxUnavailable,
            LoginRefusal::MailboxBroken => LoginResult::MailboxBroken,
            LoginRefusal::LoginDeadline => LoginResult::Deadline,
        }
    }

    /// The `result` label.
    pub fn label(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Disabled => "disabled",
            LoginResult::Unavailable => "unavailable",
            LoginResult::TooManySessions => "too_many_sessions",
            LoginResult::MailboxLocked => "mailbox_locked",
            LoginResult::MailboxUnavailable => "mailbox_unavailable",
            LoginResult::MailboxBroken => "mailbox_broken",
            LoginResult::Deadline => "deadline",
        }
    }
}

/// The `result` labels of `popgate_relay_total`, in [`relay_index`] order.
const RELAY_RESULTS: [&str; 3] = ["accepted", "temporary", "permanent"];

fn relay_index(outcome: &RelayOutcome) -> usize {
    match outcome {
        RelayOutcome::Accepted => 0,
        RelayOutcome::Temporary(_) => 1,
        RelayOutcome::Permanent(..) => 2,
    }
}

/// The `result` labels of `popgate_config_reloads_total`: `ok`, `failed`.
const RELOAD_RESULTS: [&str; 2] = ["ok", "failed"];

/// The `how` labels of `popgate_mailbox_opens_total`: `listed`, `reused`.
const OPEN_KINDS: [&str; 2] = ["listed", "reused"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HowLabels {
    how: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoginLabels {
    service: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CommandLabels {
    service: &'static str,
    command: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The series of one service.
#[derive(Debug)]
struct ServiceSeries {
    connections: Counter,
    sessions: Gauge,
    /// In [`LoginResult::ALL`] order.
    logins: Vec<Counter>,
    /// One per keyword of [`Service::keywords`], then `unknown`.
    commands: Vec<Histogram>,
}

/// The metric families of one popgate process, and a handle on every series.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// In [`Service::ALL`] order.
    services: Vec<ServiceSeries>,
    retrieved: Counter,
    retrieved_bytes: Counter,
    deleted: Counter,
    /// In [`RELAY_RESULTS`] order.
    relays: Vec<Counter>,
    login_duration: Histogram,
    /// In [`RELOAD_RESULTS`] order.
    reloads: Vec<Counter>,
    /// In [`OPEN_KINDS`] order.
    opens: Vec<Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, every series created at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("popgate");
        let connections = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted, whether served or turned away",
            connections.clone(),
        );
        let sessions = Family::<ServiceLabels, Gauge>::default();
        registry.register("sessions", "Connections being served now", sessions.clone());
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Logins, by how they ended", logins.clone());
        let commands =
            Family::<CommandLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(COMMAND_BUCKETS)
            });
        registry.register_with_unit(
            "command_duration",
            "Time from a command's last input to the server's readiness for the next",
            Unit::Seconds,
            commands.clone(),
        );
        let services = Service::ALL
            .iter()
            .map(|service| {
                let (label, keywords) = (service.label(), service.keywords());
                ServiceSeries {
                    connections: connections.get_or_create_owned(&ServiceLabels { service: label }),
                    sessions: sessions.get_or_create_owned(&ServiceLabels { service: label }),
                    logins: LoginResult::ALL
                        .iter()
                        .map(|result| {
                            logins.get_or_create_owned(&LoginLabels {
                                service: label,
                                result: result.label(),
                            })
                        })
                        .collect(),
                    commands: keywords
                        .iter()
                        .copied()
                        .chain([UNKNOWN_COMMAND])
                        .map(|command| {
                            commands.get_or_create_owned(&CommandLabels {
                                service: label,
                                command,
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        let retrieved = Counter::default();
        registry.register(
            "messages_retrieved",
            "Messages sent by RETR",
            retrieved.clone(),
        );
        let retrieved_bytes = Counter::default();
        registry.register_with_unit(
            "retrieved",
            "Message octets sent by RETR, before dot-stuffing",
            Unit::Bytes,
            retrieved_bytes.clone(),
        );
        let deleted = Counter::default();
        registry.register(
            "messages_deleted",
            "Deletions applied by a committed UPDATE",
            deleted.clone(),
        );
        let relay = Family::<ResultLabels, Counter>::default();
        registry.register(
            "relay",
            "Messages handed to the relay, by its answer",
            relay.clone(),
        );
        let login_duration = Histogram::new(LOGIN_BUCKETS);
        registry.register_with_unit(
            "login_duration",
            "Password checks, from their start to the verdict",
            Unit::Seconds,
            login_duration.clone(),
        );
        let reload = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Reloads of the configuration (SIGHUP)",
            reload.clone(),
        );
        let open = Family::<HowLabels, Counter>::default();
        registry.register(
            "mailbox_opens",
            "Mailboxes opened by POP3 logins: listed, or reused from the snapshot of an unchanged Maildir",
            open.clone(),
        );
        let opens = OPEN_KINDS
            .iter()
            .map(|&how| open.get_or_create_owned(&HowLabels { how }))
            .collect();
        let by_result = |family: &Family<ResultLabels, Counter>, results: &[&'static str]| {
            results
                .iter()
                .map(|&result| family.get_or_create_owned(&ResultLabels { result }))
                .collect()
        };
        Metrics {
            relays: by_result(&relay, &RELAY_RESULTS),
            reloads: by_result(&reload, &RELOAD_RESULTS),
            opens,
            registry,
            services,
            retrieved,
            retrieved_bytes,
            deleted,
            login_duration,
        }
    }

    fn service(&self, service: Service) -> &ServiceSeries {
        // Built from Service::ALL, whose order the discriminants follow.
        &self.services[service as usize]
    }

    /// A connection was accepted on a listener of `service`.
    pub fn connection_accepted(&self, service: Service) {
        self.service(service).connections.inc();
    }

    /// The metrics of a connection of `service` now being served; the
    /// sessions gauge counts it until the value is dropped.
    pub fn session(self: &Arc<Self>, service: Service) -> SessionMetrics {
        SessionMetrics::new(self.clone(), service)
    }

    /// A password check took `elapsed`.
    pub fn login_checked(&self, elapsed: Duration) {
        self.login_duration.observe(elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn prometheus_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// The metrics in the OpenMetrics text format (with its `# EOF`).
    pub fn openmetrics_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts a reload that put the whole new configuration in force (`ok`),
/// or one that was refused or kept a file's old contents; nothing with
/// metrics off.
pub fn count_reload(metrics: Option<&Metrics>, ok: bool) {
    if let Some(metrics) = metrics {
        metrics.reloads[usize::from(!ok)].inc();
    }
}

#[cfg(test)]
mod tests;
