//! Slow clients: many connections that each send one byte every
//! [`EVERY`], against a server with short timeouts, while a normal client
//! logs in and retrieves a message beside them.
//!
//! A third of them trickle before login (POP3, plain port: `U`, `S`, `E`,
//! … never ending the line), a third inside a command line once login has
//! started (POP3 over TLS: `USER alice` accepted, then `PASS …` a byte at
//! a time), a third inside DATA on submission after a real AUTH. Each
//! byte restarts the idle timeouts, so only the login deadline can cut
//! the first two kinds, and only the request deadline of message text
//! (`request_deadline.rs`: at `min_data_rate` once the idle timeout has
//! passed) the third.
//!
//! How many: `POPGATE_SLOW_CLIENTS` (default [`DEFAULT_CLIENTS`], so the
//! test takes about 14 s); `scripts/bench-hostile` runs 1,000 and prints
//! the figures `docs/performance.md` quotes. Each client is a task on a
//! small tokio runtime in the test process, whose descriptor limit is
//! raised as far as the hard limit allows.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{crlf, deliver, Options, Server, PASSWORD};
use crate::smtp_harness::{ehlo_reply, plain, submissions_addr};

/// How often a slow client sends its next byte: more often than the idle
/// timeouts, so they never expire.
const EVERY: Duration = Duration::from_secs(2);
/// The server's idle timeouts (before login, after login, submission).
const IDLE: Duration = Duration::from_secs(3);
/// The POP3 login deadline.
const DEADLINE: Duration = Duration::from_secs(8);
/// How late a close may come after its deadline on a loaded machine.
const MARGIN: Duration = Duration::from_secs(5);
/// Slow clients when `POPGATE_SLOW_CLIENTS` is not set.
const DEFAULT_CLIENTS: usize = 60;
/// How long the normal client may take for a login, STAT, RETR and QUIT.
const NORMAL_WITHIN: Duration = Duration::from_secs(1);

/// What POP3 answers at the login deadline.
const POP3_TOO_LATE: &[u8] = b"-ERR [SYS/TEMP] Login not completed in time, try again later\r\n";

/// The message the normal client retrieves.
const MESSAGE: &[u8] = b"Subject: beside the slow ones\n\nserved at normal speed\n";

/// Where a slow client trickles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// POP3, plain port, before any command is complete.
    BeforeLogin,
    /// POP3 over TLS, after `USER alice`, inside the `PASS` line.
    InsideCommand,
    /// Submission over TLS, after AUTH, MAIL, RCPT and DATA.
    InsideData,
}

impl Kind {
    /// The bytes it sends, one at a time, never a line end.
    fn trickle(self) -> &'static [u8] {
        match self {
            Kind::BeforeLogin => b"USER alice",
            Kind::InsideCommand => b"PASS correct horse",
            Kind::InsideData => b"From: alice@example.com",
        }
    }
}

/// How one slow client fared.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    /// When it started to connect.
    connected: Instant,
    /// When its setup was done and it started to trickle.
    trickling: Instant,
    /// When it saw the server close, if it did.
    closed: Option<Instant>,
    /// What the server sent after the setup.
    answer: Vec<u8>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Reads exactly `expected` (a setup answer) or fails with what came.
async fn expect(io: &mut Box<dyn Io>, expected: &[u8]) -> Result<(), String> {
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(60), io.read_exact(&mut got))
        .await
        .map_err(|_| format!("no {:?} within 60 s", expected.escape_ascii().to_string()))?
        .map_err(|e| {
            format!(
                "{e} while waiting for {:?}",
                expected.escape_ascii().to_string()
            )
        })?;
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, got {:?}",
            expected.escape_ascii().to_string(),
            got.escape_ascii().to_string()
        ))
    }
}

async fn send(io: &mut Box<dyn Io>, bytes: &[u8]) -> Result<(), String> {
    io.write_all(bytes).await.map_err(|e| e.to_string())?;
    io.flush().await.map_err(|e| e.to_string())
}

/// Connects as `kind` says and does the setup, up to the first trickled
/// byte.
async fn set_up(
    kind: Kind,
    addr: SocketAddr,
    tls: &tokio_rustls::TlsConnector,
) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut io: Box<dyn Io> = match kind {
        Kind::BeforeLogin => Box::new(tcp),
        Kind::InsideCommand | Kind::InsideData => {
            let name = ServerName::try_from("localhost").unwrap();
            Box::new(tls.connect(name, tcp).await.map_err(|e| e.to_string())?)
        }
    };
    match kind {
        Kind::BeforeLogin => expect(&mut io, b"+OK popgate ready\r\n").await?,
        Kind::InsideCommand => {
            expect(&mut io, b"+OK popgate ready\r\n").await?;
            send(&mut io, b"USER alice\r\n").await?;
            expect(&mut io, b"+OK Send your password\r\n").await?;
        }
        Kind::InsideData => {
            expect(&mut io, b"220 localhost ESMTP popgate ready\r\n").await?;
            send(&mut io, b"EHLO client.test\r\n").await?;
            expect(&mut io, ehlo_reply(true).as_bytes()).await?;
            send(
                &mut io,
                format!("AUTH PLAIN {}\r\n", plain("alice", PASSWORD)).as_bytes(),
            )
            .await?;
            expect(&mut io, b"235 2.7.0 Authentication successful\r\n").await?;
            send(
                &mut io,
                b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
            )
            .await?;
            expect(
                &mut io,
                b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
                  354 Start mail input; end with <CRLF>.<CRLF>\r\n",
            )
            .await?;
        }
    }
    Ok(io)
}

/// One slow client: sets up, then sends a byte every [`EVERY`] until the
/// server closes or `give_up` passes.
async fn slow_client(
    kind: Kind,
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    ready: Arc<AtomicUsize>,
    give_up: Duration,
) -> Result<Outcome, String> {
    let connected = Instant::now();
    let io = set_up(kind, addr, &tls).await;
    let trickling = Instant::now();
    ready.fetch_add(1, Ordering::SeqCst);
    let io = io.map_err(|e| format!("{kind:?}: {e}"))?;
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut bytes = kind.trickle().iter().cycle();
    let mut tick = tokio::time::interval_at((trickling + EVERY).into(), EVERY);
    let end = tokio::time::sleep_until((trickling + give_up).into());
    tokio::pin!(end);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    let closed = loop {
        tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break Some(Instant::now()),
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            },
            _ = tick.tick() => {
                // A refused write means the server closed; the read says when.
                let byte = [*bytes.next().unwrap()];
                let _ = writer.write_all(&byte).await;
                let _ = writer.flush().await;
            }
            _ = &mut end => break None,
        }
    };
    Ok(Outcome {
        kind,
        connected,
        trickling,
        closed,
        answer,
    })
}

/// How many slow clients to run.
fn clients() -> usize {
    std::env::var("POPGATE_SLOW_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CLIENTS)
}

/// Raises this process's descriptor limit (inherited by the server it
/// starts) to what `connections` need, as far as the hard limit allows.
fn raise_descriptor_limit(connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let wanted = (2 * connections as u64 + 512).min(hard);
    if wanted > soft {
        setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).unwrap();
    }
}

/// A server whose timeouts cut slow clients in seconds, with limits that
/// let thousands of connections in from one address and one user.
fn slow_server(connections: usize) -> Server {
    let server = Server::with(Options {
        pop3: vec![
            format!("preauth_timeout = \"{}s\"", IDLE.as_secs()),
            format!("idle_timeout = \"{}s\"", IDLE.as_secs()),
            format!("login_deadline = \"{}s\"", DEADLINE.as_secs()),
            format!("max_connections = {}", 2 * connections + 100),
            format!("max_connections_per_ip = {}", 2 * connections + 100),
            "lock = false".into(),
        ],
        submission: Some(vec![
            "relay = \"maildir\"".into(),
            format!("idle_timeout = \"{}s\"", IDLE.as_secs()),
            // The AUTHs of a thousand clients queue for the password
            // checks: they must all get through.
            "login_deadline = \"120s\"".into(),
            format!("max_connections_per_user = {}", connections + 10),
            "[submission.addresses]".into(),
            "alice = [\"alice@example.com\"]".into(),
        ]),
        ..Options::default()
    });
    deliver(&server.maildir("alice"), 1000, MESSAGE);
    server
}

/// Runs `total` slow clients against `server`, taking turns at `kinds`;
/// `beside` runs (on a thread) once they all trickle. Returns every
/// outcome, once each client was closed or gave up after `give_up`.
fn run_slow_clients<T: Send + 'static>(
    server: &Arc<Server>,
    kinds: &[Kind],
    total: usize,
    give_up: Duration,
    beside: impl FnOnce() -> T + Send + 'static,
) -> (Vec<Outcome>, T) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(server.client_config());
    let ready = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..total)
        .map(|i| kinds[i % kinds.len()])
        .map(|kind| {
            let addr = match kind {
                Kind::BeforeLogin => server.plain,
                Kind::InsideCommand => server.tls,
                Kind::InsideData => submissions_addr(server),
            };
            runtime.spawn(slow_client(kind, addr, tls.clone(), ready.clone(), give_up))
        })
        .collect();
    let set_up_by = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::SeqCst) < total {
        assert!(
            Instant::now() < set_up_by,
            "only {} of {total} slow clients set up",
            ready.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let beside = std::thread::spawn(beside).join().unwrap();
    let outcomes = runtime.block_on(async {
        let mut outcomes = Vec::with_capacity(total);
        for task in tasks {
            outcomes.push(task.await.unwrap().unwrap_or_else(|e| panic!("setup: {e}")));
        }
        outcomes
    });
    (outcomes, beside)
}

/// A normal POP3 session: login over TLS, STAT, RETR, QUIT; how long it
/// took.
fn normal_session(server: &Server) -> Duration {
    let started = Instant::now();
    let mut client = server.login("alice");
    assert_eq!(client.cmd("STAT"), format!("+OK 1 {}", crlf(MESSAGE).len()));
    assert_eq!(client.retrieve("RETR 1").1, crlf(MESSAGE));
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 0 messages deleted");
    started.elapsed()
}

/// Seconds with two decimals, for the figures.
fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// Slow clients before login and inside a command line are cut at the
/// login deadline (and not before it), each with the deadline's answer;
/// those inside DATA are cut within the idle timeout (and a margin) of
/// their first trickled byte, with `421 4.x`; and a normal client logs in
/// and retrieves a message five times beside them, each time within
/// [`NORMAL_WITHIN`].
///
/// Would fail on a server whose only bound before login is the idle
/// timeout (as before `login_deadline`): every byte restarts it, and the
/// test's clients send one every 2 s against a 3 s timeout; and on one
/// without request deadlines after login (as before `request_deadline.rs`),
/// where every DATA trickler was still open long after the idle timeout.
#[test]
fn slow_clients_are_cut_at_the_login_deadline_while_a_normal_client_is_served() {
    let connections = clients();
    raise_descriptor_limit(connections);
    let server = Arc::new(slow_server(connections));
    let kinds = [Kind::BeforeLogin, Kind::InsideCommand, Kind::InsideData];
    let normal_server = server.clone();
    let (outcomes, (normal, normal_done)) =
        run_slow_clients(&server, &kinds, connections, DEADLINE + MARGIN, move || {
            let times: Vec<Duration> = (0..5)
                .map(|_| {
                    let took = normal_session(&normal_server);
                    std::thread::sleep(Duration::from_millis(300));
                    took
                })
                .collect();
            (times, Instant::now())
        });
    let mut failures = Vec::new();
    let mut closes = Vec::new();
    for outcome in outcomes.iter().filter(|o| o.kind != Kind::InsideData) {
        let Some(closed) = outcome.closed else {
            failures.push(format!("{:?}: never closed", outcome.kind));
            continue;
        };
        let after = closed - outcome.connected;
        closes.push(after);
        if after < DEADLINE - Duration::from_millis(200) || after > DEADLINE + MARGIN {
            failures.push(format!("{:?}: closed after {after:?}", outcome.kind));
        }
        if outcome.answer != POP3_TOO_LATE {
            failures.push(format!(
                "{:?}: answered {:?}",
                outcome.kind,
                outcome.answer.escape_ascii().to_string()
            ));
        }
        if closed < normal_done {
            failures.push(format!(
                "{:?}: closed before the normal client was done",
                outcome.kind
            ));
        }
    }
    let data: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.kind == Kind::InsideData)
        .collect();
    let mut data_cuts = Vec::new();
    for outcome in &data {
        let Some(closed) = outcome.closed else {
            failures.push("InsideData: never closed".to_owned());
            continue;
        };
        let cut = closed - outcome.trickling;
        data_cuts.push(cut);
        if cut > IDLE + MARGIN {
            failures.push(format!("InsideData: cut {cut:?} after the trickle began"));
        }
        if !outcome.answer.starts_with(b"421 4.") {
            failures.push(format!(
                "InsideData: answered {:?}",
                outcome.answer.escape_ascii().to_string()
            ));
        }
    }
    data_cuts.sort();
    closes.sort();
    let mut normal_sorted = normal.clone();
    normal_sorted.sort();
    eprintln!(
        "slow clients: {}, a third of each kind, a byte every {}s; idle timeouts {}s, login deadline {}s\n\
         before login and inside a command line: {} closed by the deadline, after {}s (first) / {}s (median) / {}s (last) from connect\n\
         inside DATA: {} cut by the request deadline, after {}s (first) / {}s (median) / {}s (last) of trickling\n\
         normal client beside them (login, STAT, RETR, QUIT), 5 runs: median {} ms, slowest {} ms",
        outcomes.len(),
        EVERY.as_secs(),
        IDLE.as_secs(),
        DEADLINE.as_secs(),
        closes.len(),
        secs(closes.first().copied().unwrap_or_default()),
        secs(closes.get(closes.len() / 2).copied().unwrap_or_default()),
        secs(closes.last().copied().unwrap_or_default()),
        data_cuts.len(),
        secs(data_cuts.first().copied().unwrap_or_default()),
        secs(data_cuts.get(data_cuts.len() / 2).copied().unwrap_or_default()),
        secs(data_cuts.last().copied().unwrap_or_default()),
        normal_sorted[2].as_millis(),
        normal_sorted[4].as_millis(),
    );
    assert!(
        failures.is_empty(),
        "{} of {} slow clients:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    for took in &normal {
        assert!(
            *took < NORMAL_WITHIN,
            "a normal session took {took:?}: {normal:?}"
        );
    }
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}
