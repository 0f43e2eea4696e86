//! `[metrics]`: Prometheus metrics and Thunderbird's autoconfig file over
//! HTTP, fetched with curl from the real binary; the metrics text is read
//! back by Python's `prometheus_client` parsers (Debian's
//! python3-prometheus-client), which refuse a malformed exposition.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use popgate::config::Settings;

use crate::harness::{deliver, serve_refused, settle, Options, Server, PASSWORD};
use crate::smtp_harness::{Sink, Smtp, SYSTEM_PYTHON};

/// Samples by series, `name{label="value",…}` with the labels sorted.
type Samples = BTreeMap<String, f64>;

/// Parses an exposition with Python's prometheus_client: the Prometheus
/// text format, or OpenMetrics (whose parser is strict: `# EOF`, types,
/// units). Panics when it does not parse.
fn parse(text: &str, openmetrics: bool) -> Samples {
    let parser = match openmetrics {
        true => "prometheus_client.openmetrics.parser",
        false => "prometheus_client.parser",
    };
    let script = format!(
        "import sys\n\
         from {parser} import text_string_to_metric_families\n\
         for family in text_string_to_metric_families(sys.stdin.read()):\n\
         \x20   for s in family.samples:\n\
         \x20       labels = ','.join('%s=\"%s\"' % kv for kv in sorted(s.labels.items()))\n\
         \x20       print('%s{{%s}} %r' % (s.name, labels, float(s.value)))\n"
    );
    let mut python = Command::new(SYSTEM_PYTHON)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/system-deps.sh test installs python3-prometheus-client)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not a valid exposition ({parser}): {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// What curl got: the status, the content type and the body.
struct Fetched {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Fetches `path` from `addr` with curl, with `args` before the URL.
fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl (scripts/system-deps.sh test installs it)");
    assert!(
        output.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = String::from_utf8(output.stdout).unwrap();
    let (status, content_type) = written.split_once(' ').unwrap();
    Fetched {
        status: status.parse().unwrap(),
        content_type: content_type.to_owned(),
        body: fs::read(&body).unwrap_or_default(),
    }
}

/// Scrapes `/metrics` as curl does by default (the Prometheus text format).
fn scrape(server: &Server) -> Samples {
    let fetched = curl(server.addrs["metrics"], "/metrics", &[]);
    assert_eq!(fetched.status, 200);
    assert_eq!(
        fetched.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&String::from_utf8(fetched.body).unwrap(), false)
}

/// Scrapes until no session of either service is open any more (a session
/// leaves the gauge when its task has ended, just after the client saw the
/// last reply), within a deadline.
fn scrape_when_idle(server: &Server) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let samples = scrape(server);
        let open = sample(&samples, "popgate_sessions", &[("service", "pop3")])
            + sample(&samples, "popgate_sessions", &[("service", "submission")]);
        if open == 0.0 {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "sessions still open: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one series; panics when the exposition lacks it.
fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let series = format!("{name}{{{}}}", labels.join(","));
    *samples
        .get(&series)
        .unwrap_or_else(|| panic!("no {series} among {samples:#?}"))
}

/// How much each series grew from `before` to `after`, leaving out the
/// ones that did not move and the sums of durations (their amounts are
/// times), and the buckets (their counts are in `_count`).
fn moved(before: &Samples, after: &Samples) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(series, _)| !series.contains("_sum{") && !series.contains("_bucket{"))
        .filter_map(|(series, value)| {
            let grown = value - before.get(series).copied().unwrap_or(0.0);
            (grown != 0.0).then(|| (series.clone(), grown))
        })
        .collect()
}

/// The session of the issue, measured: a failed and a good POP3 login, a
/// RETR, a DELE and QUIT, then a message relayed through submission; each
/// counter moves by exactly that and nothing else does (caught: any event
/// counted twice or not at all, a wrong label, sessions left in the gauge,
/// TOP taken for RETR, the SASL response or message text timed as a
/// command of its own). Both text formats parse and agree.
#[test]
fn counters_move_by_exactly_what_the_sessions_did() {
    let sink = Sink::start();
    let mut submission = sink.relay_lines();
    submission.push("[submission.addresses]".into());
    submission.push("alice = [\"alice@example.com\"]".into());
    let server = Server::with(Options {
        submission: Some(submission),
        metrics: true,
        ..Options::default()
    });
    let message = b"Subject: one\r\n\r\nThe first message.\r\n";
    deliver(&server.maildir("alice"), 1, message);
    deliver(
        &server.maildir("alice"),
        2,
        b"Subject: two\r\n\r\nSecond.\r\n",
    );

    let before = scrape_when_idle(&server);
    let mut pop3 = server.connect_tls();
    pop3.ok("USER alice");
    assert!(pop3.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    pop3.ok("USER alice");
    pop3.ok(&format!("PASS {PASSWORD}"));
    let during = scrape(&server);
    assert_eq!(
        sample(&during, "popgate_sessions", &[("service", "pop3")]),
        1.0
    );
    let (_, retrieved) = pop3.retrieve("RETR 1");
    assert_eq!(retrieved, message);
    pop3.ok("DELE 1");
    assert_eq!(pop3.ok("QUIT"), "+OK Logging out, 1 messages deleted");

    let mut smtp = Smtp::logged_in(&server);
    let sent = smtp.send_message(
        "alice@example.com",
        &["bob@example.org"],
        b"From: alice@example.com\r\nSubject: hi\r\n\r\nHello.\r\n",
    );
    assert_eq!(sent, "250 2.0.0 Message accepted for delivery");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 Bye");
    assert_eq!(sink.received().len(), 1);

    let after = scrape_when_idle(&server);
    let pop3_command = |command| {
        format!("popgate_command_duration_seconds_count{{command=\"{command}\",service=\"pop3\"}}")
    };
    let smtp_command = |command| {
        format!(
            "popgate_command_duration_seconds_count{{command=\"{command}\",service=\"submission\"}}"
        )
    };
    let expected: BTreeMap<String, f64> = [
        ("popgate_connections_total{service=\"pop3\"}".into(), 1.0),
        (
            "popgate_connections_total{service=\"submission\"}".into(),
            1.0,
        ),
        (
            "popgate_logins_total{result=\"failed\",service=\"pop3\"}".into(),
            1.0,
        ),
        (
            "popgate_logins_total{result=\"ok\",service=\"pop3\"}".into(),
            1.0,
        ),
        (
            "popgate_logins_total{result=\"ok\",service=\"submission\"}".into(),
            1.0,
        ),
        ("popgate_login_duration_seconds_count{}".into(), 3.0),
        ("popgate_messages_retrieved_total{}".into(), 1.0),
        (
            "popgate_retrieved_bytes_total{}".into(),
            message.len() as f64,
        ),
        ("popgate_messages_deleted_total{}".into(), 1.0),
        ("popgate_mailbox_opens_total{how=\"listed\"}".into(), 1.0),
        ("popgate_relay_total{result=\"accepted\"}".into(), 1.0),
        (pop3_command("USER"), 2.0),
        (pop3_command("PASS"), 2.0),
        (pop3_command("RETR"), 1.0),
        (pop3_command("DELE"), 1.0),
        (pop3_command("QUIT"), 1.0),
        (smtp_command("EHLO"), 1.0),
        (smtp_command("STARTTLS"), 1.0),
        (smtp_command("AUTH"), 1.0),
        (smtp_command("MAIL"), 1.0),
        (smtp_command("RCPT"), 1.0),
        (smtp_command("DATA"), 1.0),
        (smtp_command("QUIT"), 1.0),
    ]
    .into();
    assert_eq!(moved(&before, &after), expected);

    let open = curl(
        server.addrs["metrics"],
        "/metrics",
        &["-H", "Accept: application/openmetrics-text; version=1.0.0"],
    );
    assert_eq!(open.status, 200);
    assert_eq!(
        open.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let open = parse(&String::from_utf8(open.body).unwrap(), true);
    assert_eq!(moved(&after, &open), BTreeMap::new());
    assert_eq!(open.len(), after.len());
}

/// A login of a Maildir unchanged since the last one is counted as
/// `reused`, any other as `listed` (caught: the kept snapshot never used,
/// or used after a delivery).
#[test]
fn logins_count_whether_the_mailbox_was_listed_or_its_snapshot_reused() {
    let server = Server::with(Options {
        metrics: true,
        ..Options::default()
    });
    let maildir = server.maildir("alice");
    let message = b"Subject: one\r\n\r\nOne.\r\n";
    deliver(&maildir, 1, message);
    let stat = |expected: String| {
        let mut client = server.login("alice");
        assert_eq!(client.ok("STAT"), expected);
        client.ok("QUIT");
        assert!(client.is_closed_within(Duration::from_secs(5)));
    };
    let before = scrape_when_idle(&server);
    // Moves new/ to cur/ and writes the size cache: listed.
    stat(format!("+OK 1 {}", message.len()));
    settle(&maildir);
    // Listed, and its snapshot kept; then reused twice.
    for _ in 0..3 {
        stat(format!("+OK 1 {}", message.len()));
    }
    // A delivery: listed again, and the new message seen.
    deliver(&maildir, 2, message);
    stat(format!("+OK 2 {}", 2 * message.len()));
    let after = scrape_when_idle(&server);
    let opens =
        |samples: &Samples, how| sample(samples, "popgate_mailbox_opens_total", &[("how", how)]);
    assert_eq!(opens(&after, "listed") - opens(&before, "listed"), 3.0);
    assert_eq!(opens(&after, "reused") - opens(&before, "reused"), 2.0);
}

/// With `[store] snapshot_cache = "0"` no snapshot is kept: every login of
/// a settled, unchanged Maildir lists it (caught: the setting ignored, or
/// a cache of no octets still consulted and counted as reused).
#[test]
fn with_the_snapshot_cache_off_every_login_lists_the_mailbox() {
    let server = Server::with(Options {
        metrics: true,
        store: vec!["snapshot_cache = \"0\"".into()],
        ..Options::default()
    });
    let maildir = server.maildir("alice");
    let message = b"Subject: one\r\n\r\nOne.\r\n";
    deliver(&maildir, 1, message);
    let stat = || {
        let mut client = server.login("alice");
        assert_eq!(client.ok("STAT"), format!("+OK 1 {}", message.len()));
        client.ok("QUIT");
        assert!(client.is_closed_within(Duration::from_secs(5)));
    };
    // Moves new/ to cur/ and writes the size cache.
    stat();
    settle(&maildir);
    let before = scrape_when_idle(&server);
    // Two logins of the unchanged Maildir: with a cache, the second would
    // be reused.
    stat();
    stat();
    let after = scrape_when_idle(&server);
    let opens =
        |samples: &Samples, how| sample(samples, "popgate_mailbox_opens_total", &[("how", how)]);
    assert_eq!(opens(&after, "listed") - opens(&before, "listed"), 2.0);
    assert_eq!(opens(&after, "reused"), 0.0);
}

/// SIGHUP's reload is counted by its result: `ok`, and `failed` when the
/// user database could not be read (caught: reloads not counted, or a
/// failed one counted as ok).
#[test]
fn reloads_are_counted_by_result() {
    let server = Server::with(Options {
        metrics: true,
        ..Options::default()
    });
    let reloads = |samples: &Samples, result| {
        sample(
            samples,
            "popgate_config_reloads_total",
            &[("result", result)],
        )
    };
    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let wait_for = |result, count| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let samples = scrape(&server);
            if reloads(&samples, result) == count {
                return samples;
            }
            assert!(Instant::now() < deadline, "{samples:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let before = scrape(&server);
    assert_eq!(reloads(&before, "ok"), 0.0);
    hangup();
    let samples = wait_for("ok", 1.0);
    assert_eq!(reloads(&samples, "failed"), 0.0);
    fs::remove_file(server.dir.path().join("users.htpasswd")).unwrap();
    hangup();
    let samples = wait_for("failed", 1.0);
    assert_eq!(reloads(&samples, "ok"), 1.0);
    server.wait_for_log("user database not reloaded");
}

/// Thunderbird's autoconfig file at both of its paths: 200,
/// `application/xml`, and exactly what `client_settings::autoconfig_xml`
/// writes for the server's configuration; 404 anywhere else, 405 for a
/// POST (caught: a path missing or misspelt, another content type, a
/// document that is not the configuration's).
#[test]
fn the_autoconfig_file_is_served_at_both_paths_and_nothing_else_is() {
    let server = Server::with(Options {
        metrics: true,
        ..Options::default()
    });
    let config = server.dir.path().join("popgate.toml");
    let expected =
        popgate::client_settings::autoconfig_xml(&Settings::load(&config).unwrap()).unwrap();
    assert!(
        expected.contains("<incomingServer type=\"pop3\">"),
        "{expected}"
    );
    let addr = server.addrs["metrics"];
    for path in [
        "/mail/config-v1.1.xml",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
        "/mail/config-v1.1.xml?emailaddress=alice%40localhost",
    ] {
        let fetched = curl(addr, path, &[]);
        assert_eq!(fetched.status, 200, "{path}");
        assert_eq!(fetched.content_type, "application/xml", "{path}");
        assert_eq!(String::from_utf8(fetched.body).unwrap(), expected, "{path}");
    }
    for path in [
        "/",
        "/mail/",
        "/mail/config-v1.1.xml.bak",
        "/.well-known/autoconfig/mail/",
        "/metrics/x",
        "/%2e%2e/etc/passwd",
    ] {
        assert_eq!(curl(addr, path, &[]).status, 404, "{path}");
    }
    assert_eq!(curl(addr, "/metrics", &["-X", "POST"]).status, 405);
    let head = curl(addr, "/mail/config-v1.1.xml", &["--head"]);
    assert_eq!(head.status, 200);
}

/// A metrics address that is not loopback is refused at start, naming
/// the key and the opt-in; without `[metrics]` no HTTP port is bound
/// (caught: metrics public by default, or on when not configured).
#[test]
fn metrics_stay_off_and_private_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("popgate.toml");
    fs::write(
        &path,
        "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n[metrics]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let error = serve_refused(&path);
    assert!(
        error.contains("metrics.listen") && error.contains("allow_public"),
        "{error}"
    );
    // Every listener is logged before the first session ends.
    let server = Server::start();
    server.connect_tls().ok("QUIT");
    let log = server.wait_for_log("pop3 session ended");
    assert!(log.contains("listening: service=pop3s"), "{log}");
    assert!(!log.contains("service=metrics"), "{log}");
}

/// The metrics port serves at most `MAX_CONNECTIONS` connections at once:
/// with that many held open and silent, one more is closed at accept
/// without an answer; each held one is closed once `HEADER_TIMEOUT` passes
/// without a request head, and a scrape is served again after them
/// (caught: no cap, so idle clients pile up; no header timeout, so the
/// held ones keep their slots for good).
#[test]
fn the_metrics_port_holds_a_bounded_number_of_connections_and_drops_silent_ones() {
    use popgate::http_listener::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    use std::io::Read;
    use std::net::TcpStream;

    let server = Server::with(Options {
        metrics: true,
        ..Options::default()
    });
    let addr = server.addrs["metrics"];
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut one_more = TcpStream::connect(addr).unwrap();
    one_more
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        one_more.read(&mut byte).map_err(|e| e.kind()),
        Ok(0),
        "a connection over the cap must be closed at once"
    );
    let started = Instant::now();
    for mut silent in held {
        silent
            .set_read_timeout(Some(HEADER_TIMEOUT + Duration::from_secs(10)))
            .unwrap();
        let read = silent.read(&mut byte).map_err(|e| e.kind());
        assert!(
            matches!(read, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
            "a silent connection must be closed at the header timeout: {read:?}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited + Duration::from_millis(500) >= HEADER_TIMEOUT
            && waited <= HEADER_TIMEOUT + Duration::from_secs(10),
        "closed after {waited:?}"
    );
    let fetched = curl(addr, "/metrics", &[]);
    assert_eq!(fetched.status, 200);
}
