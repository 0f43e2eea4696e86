use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::protocol_log::Reading::{self, Command, MessageText, SecretResponse};

/// The value of the sample `series` (name and labels, as written) in the
/// Prometheus text; panics when it is missing.
fn value(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.prometheus_text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn command_count(metrics: &Metrics, service: &str, command: &str) -> f64 {
    value(
        metrics,
        &format!(
            "popgate_command_duration_seconds_count{{service=\"{service}\",command=\"{command}\"}}"
        ),
    )
}

/// The families and their types are the contract dashboards are built
/// on: a renamed family or a changed type fails here.
#[test]
fn the_families_are_named_and_typed_as_documented() {
    let text = Metrics::new().openmetrics_text();
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .collect();
    let expected: BTreeSet<&str> = [
        "popgate_connections counter",
        "popgate_sessions gauge",
        "popgate_logins counter",
        "popgate_command_duration_seconds histogram",
        "popgate_messages_retrieved counter",
        "popgate_retrieved_bytes counter",
        "popgate_messages_deleted counter",
        "popgate_relay counter",
        "popgate_login_duration_seconds histogram",
        "popgate_config_reloads counter",
        "popgate_mailbox_opens counter",
    ]
    .into();
    assert_eq!(families, expected, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let prometheus = Metrics::new().prometheus_text();
    for sample in [
        "popgate_connections_total{service=\"pop3\"} 0",
        "popgate_sessions{service=\"submission\"} 0",
        "popgate_messages_retrieved_total 0",
        "popgate_retrieved_bytes_total 0",
        "popgate_messages_deleted_total 0",
        "popgate_relay_total{result=\"permanent\"} 0",
        "popgate_config_reloads_total{result=\"failed\"} 0",
        "popgate_mailbox_opens_total{how=\"reused\"} 0",
        "popgate_login_duration_seconds_count 0",
    ] {
        assert!(
            prometheus.lines().any(|line| line == sample),
            "{sample} in\n{prometheus}"
        );
    }
}

/// Every series exists from the start, at zero, and labels take only the
/// documented values: nothing a client sends can add a series.
#[test]
fn every_label_takes_a_fixed_set_of_values() {
    let metrics = Metrics::new();
    let text = metrics.prometheus_text();
    let label_values = |name: &str| -> BTreeSet<String> {
        let needle = format!("{name}=\"");
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let rest = &line[line.find(&needle)? + needle.len()..];
                Some(rest[..rest.find('"')?].to_owned())
            })
            .collect()
    };
    assert_eq!(
        label_values("service"),
        ["pop3", "submission"].map(String::from).into()
    );
    assert_eq!(
        label_values("result"),
        [
            "ok",
            "failed",
            "disabled",
            "unavailable",
            "too_many_sessions",
            "mailbox_locked",
            "mailbox_unavailable",
            "mailbox_broken",
            "deadline",
            "accepted",
            "temporary",
            "permanent",
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(
        label_values("how"),
        ["listed", "reused"].map(String::from).into()
    );
    let commands = label_values("command");
    for keyword in crate::pop3::command::KEYWORDS
        .iter()
        .chain(crate::submission::session::KEYWORDS)
        .chain(&["unknown"])
    {
        assert!(commands.contains(*keyword), "{keyword}: {commands:?}");
    }
    // 2 services × 9 login results; each protocol's keywords and unknown.
    let logins = text
        .lines()
        .filter(|line| line.starts_with("popgate_logins_total{"))
        .count();
    assert_eq!(logins, 18);
    let command_series = text
        .lines()
        .filter(|line| line.starts_with("popgate_command_duration_seconds_count{"))
        .count();
    assert_eq!(
        command_series,
        crate::pop3::command::KEYWORDS.len() + crate::submission::session::KEYWORDS.len() + 2
    );
}

/// Each recording lands in its own series and nowhere else.
#[test]
fn events_are_counted_in_their_series() {
    let metrics = Arc::new(Metrics::new());
    metrics.connection_accepted(Service::Submission);
    let pop3 = metrics.session(Service::Pop3);
    let submission = metrics.session(Service::Submission);
    pop3.logged_in();
    pop3.login_refused(LoginRefusal::Credentials { close: true });
    pop3.login_refused(LoginRefusal::MailboxLocked);
    submission.login_refused(LoginRefusal::Disabled);
    pop3.retrieved(1200);
    pop3.retrieved(34);
    pop3.deleted(3);
    pop3.mailbox_opened(false);
    pop3.mailbox_opened(true);
    pop3.mailbox_opened(true);
    submission.relayed(&RelayOutcome::Accepted);
    submission.relayed(&RelayOutcome::Temporary("4.4.1 down".into()));
    submission.relayed(&RelayOutcome::Permanent(550, "no".into()));
    submission.relayed(&RelayOutcome::Permanent(554, "no".into()));
    metrics.login_checked(Duration::from_millis(30));
    count_reload(Some(&metrics), true);
    count_reload(Some(&metrics), false);
    count_reload(Some(&metrics), false);
    count_reload(None, true);
    for (series, expected) in [
        ("popgate_connections_total{service=\"submission\"}", 1.0),
        ("popgate_connections_total{service=\"pop3\"}", 0.0),
        ("popgate_sessions{service=\"pop3\"}", 1.0),
        ("popgate_sessions{service=\"submission\"}", 1.0),
        ("popgate_logins_total{service=\"pop3\",result=\"ok\"}", 1.0),
        (
            "popgate_logins_total{service=\"pop3\",result=\"failed\"}",
            1.0,
        ),
        (
            "popgate_logins_total{service=\"pop3\",result=\"mailbox_locked\"}",
            1.0,
        ),
        (
            "popgate_logins_total{service=\"pop3\",result=\"disabled\"}",
            0.0,
        ),
        (
            "popgate_logins_total{service=\"submission\",result=\"disabled\"}",
            1.0,
        ),
        (
            "popgate_logins_total{service=\"submission\",result=\"ok\"}",
            0.0,
        ),
        ("popgate_messages_retrieved_total", 2.0),
        ("popgate_retrieved_bytes_total", 1234.0),
        ("popgate_messages_deleted_total", 3.0),
        ("popgate_relay_total{result=\"accepted\"}", 1.0),
        ("popgate_relay_total{result=\"temporary\"}", 1.0),
        ("popgate_relay_total{result=\"permanent\"}", 2.0),
        ("popgate_login_duration_seconds_count", 1.0),
        ("popgate_login_duration_seconds_bucket{le=\"0.025\"}", 0.0),
        ("popgate_login_duration_seconds_bucket{le=\"0.1\"}", 1.0),
        ("popgate_config_reloads_total{result=\"ok\"}", 1.0),
        ("popgate_config_reloads_total{result=\"failed\"}", 2.0),
        ("popgate_mailbox_opens_total{how=\"listed\"}", 1.0),
        ("popgate_mailbox_opens_total{how=\"reused\"}", 2.0),
    ] {
        assert_eq!(value(&metrics, series), expected, "{series}");
    }
    drop(pop3);
    assert_eq!(value(&metrics, "popgate_sessions{service=\"pop3\"}"), 0.0);
    drop(submission);
    assert_eq!(
        value(&metrics, "popgate_sessions{service=\"submission\"}"),
        0.0
    );
}

/// Every refusal a login can end with has its own result.
#[test]
fn each_login_refusal_has_a_result_of_its_own() {
    // `Credentials` closing or not is one result, checked below.
    let refusals: Vec<LoginRefusal> = LoginRefusal::ALL
        .into_iter()
        .filter(|&refusal| refusal != LoginRefusal::Credentials { close: true })
        .collect();
    let labels: BTreeSet<&str> = refusals
        .iter()
        .map(|&refusal| LoginResult::of(refusal).label())
        .collect();
    assert_eq!(labels.len(), refusals.len());
    assert!(!labels.contains("ok"));
    assert_eq!(
        LoginResult::of(LoginRefusal::Credentials { close: true }),
        LoginResult::Failed
    );
    for (index, result) in LoginResult::ALL.iter().enumerate() {
        assert_eq!(*result as usize, index, "{result:?}");
    }
}

/// Hands `input` to a session's clock as the core does: the session reads
/// `before` it and `after` it.
fn hand(session: &mut SessionMetrics, before: Reading, input: &[u8], after: Reading) {
    let started = session.handing();
    session.handed(before, input, after, started);
}

/// A command is counted once, under its keyword, when it is done; one that
/// reads on (AUTH, DATA) once its last input is in.
#[test]
fn commands_are_timed_under_their_keyword_once() {
    let metrics = Arc::new(Metrics::new());
    let mut pop3 = metrics.session(Service::Pop3);
    hand(&mut pop3, Command, b"retr 1", Command);
    // Carried out until the next hand-over.
    assert_eq!(command_count(&metrics, "pop3", "RETR"), 0.0);
    hand(&mut pop3, Command, b"  DELE 1", Command);
    assert_eq!(command_count(&metrics, "pop3", "RETR"), 1.0);
    pop3.waiting();
    assert_eq!(command_count(&metrics, "pop3", "DELE"), 1.0);
    // AUTH PLAIN, then its response: one AUTH.
    hand(&mut pop3, Command, b"AUTH PLAIN", SecretResponse);
    pop3.waiting();
    hand(&mut pop3, SecretResponse, b"AGFsaWNlAHNlY3JldA==", Command);
    assert_eq!(command_count(&metrics, "pop3", "AUTH"), 0.0);
    pop3.waiting();
    pop3.waiting();
    assert_eq!(command_count(&metrics, "pop3", "AUTH"), 1.0);
    hand(&mut pop3, Command, b"XYZZY", Command);
    hand(&mut pop3, Command, b"", Command);
    pop3.waiting();
    assert_eq!(command_count(&metrics, "pop3", "unknown"), 2.0);
    // Nothing else was counted.
    let total: f64 = metrics
        .prometheus_text()
        .lines()
        .filter(|line| line.starts_with("popgate_command_duration_seconds_count{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 5.0);

    let mut submission = metrics.session(Service::Submission);
    hand(&mut submission, Command, b"MAIL FROM:<a@b>\r\n", Command);
    hand(&mut submission, Command, b"DATA\r\n", MessageText);
    submission.waiting();
    hand(&mut submission, MessageText, b"Subject: x\r\n", MessageText);
    submission.waiting();
    assert_eq!(command_count(&metrics, "submission", "DATA"), 0.0);
    hand(&mut submission, MessageText, b"\r\n.\r\n", Command);
    submission.waiting();
    assert_eq!(command_count(&metrics, "submission", "MAIL"), 1.0);
    assert_eq!(command_count(&metrics, "submission", "DATA"), 1.0);
    // POP3 has no DATA: nothing was counted there.
    assert!(!metrics
        .prometheus_text()
        .contains("service=\"pop3\",command=\"DATA\""));
}

/// The keyword is the first word, in any case; anything else is unknown.
#[test]
fn keywords_are_found_in_any_case() {
    let keywords = crate::pop3::command::KEYWORDS;
    let unknown = keywords.len();
    let index = |line: &[u8]| session::keyword_index(keywords, line);
    assert_eq!(keywords[index(b"top 1 10")], "TOP");
    assert_eq!(keywords[index(b"Quit")], "QUIT");
    assert_eq!(keywords[index(b"\tSTAT")], "STAT");
    assert_eq!(index(b"RETRIEVE 1"), unknown);
    assert_eq!(index(b"RET"), unknown);
    assert_eq!(index(b""), unknown);
    assert_eq!(index(b"\xff\xfe"), unknown);
}
