//! `popgate check`: the Test-PopConnectivity of popgate.
//!
//! It plays a user's mail client against the running server, through the
//! same doors a client uses. It always starts with the certificates
//! ([`certificates`], the step `tls`): on each TLS listener — POP3S, STLS on
//! the plain POP3 port, submission's implicit TLS and STARTTLS — it does
//! what a client does up to the end of the handshake and reports the
//! certificate served: subject, issuer, names and days left. The step fails
//! for a certificate that expires within `--warn-days`, has expired or is
//! not valid yet, or does not name `hostname` (RFC 6125, as clients
//! match). To see what is served whatever it is, these handshakes accept
//! any certificate (the server must still prove it holds the key); they
//! send no credentials and end right after the handshake. A served
//! certificate that is not the one in `[tls] cert` (renewed on disk, not
//! reloaded yet) is pointed out.
//!
//! Then, given a user, the steps that log in, which trust only the
//! certificate in `[tls]`. `--user USER` is the light check (Exchange's
//! `-LightMode`, plus what a client does first): login, STAT, UIDL and the
//! headers of the newest message with TOP, then QUIT, changing nothing.
//! `--round-trip USER` goes through submission too:
//!
//! 1. **send**: connect to our own submission listener (implicit TLS if one
//!    is configured, else STARTTLS), log in as USER, and send a message from
//!    USER's address to itself, with a unique token in its Message-ID;
//! 2. **fetch**: log in over our own POP3 (POP3S if configured, else STLS)
//!    and look for the token in the newest messages' headers, polling until
//!    `wait` runs out (a smarthost may take a while to deliver back);
//! 3. **delete**: mark it deleted and QUIT, so the check leaves nothing.
//!
//! These logins verify TLS against the certificate in `[tls]`, so they also
//! prove that the server presents the configured certificate under its
//! `hostname`. Each step is reported with its time; the first failed step
//! ends the check (every TLS listener is reported before that ends it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rand::distr::{Alphanumeric, SampleString};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::certificate::CertificateInfo;
use crate::config::Settings;
use crate::log_text::LogText;

/// How long one network operation of the check may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest POP3 line the check reads.
const MAX_LINE: u64 = 64 * 1024;

/// One step of the check and how it went.
#[derive(Debug)]
pub struct StepReport {
    /// `tls`, `login`, `stat`, `uidl`, `top`, `quit`, `send`, `fetch` or `delete`.
    pub step: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// What happened, or why it failed.
    pub outcome: Result<String, String>,
}

/// Times one step of a check.
async fn timed(
    step: &'static str,
    work: impl std::future::Future<Output = Result<String, String>>,
) -> StepReport {
    let started = Instant::now();
    let outcome = work.await;
    StepReport {
        step,
        elapsed: started.elapsed(),
        outcome,
    }
}

/// How the check reaches TLS on one kind of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsDoor {
    /// POP3 over implicit TLS.
    Pop3s,
    /// STLS on the plain POP3 port.
    Pop3Stls,
    /// Submission over implicit TLS.
    Submissions,
    /// STARTTLS on the submission port.
    SubmissionStarttls,
}

impl TlsDoor {
    fn name(self) -> &'static str {
        match self {
            TlsDoor::Pop3s => "pop3s",
            TlsDoor::Pop3Stls => "pop3 STLS",
            TlsDoor::Submissions => "submissions",
            TlsDoor::SubmissionStarttls => "submission STARTTLS",
        }
    }
}

/// Every listener that serves a certificate, in the order of the
/// configuration: POP3S, POP3 (STLS), then submission's.
fn tls_listeners(settings: &Settings) -> Vec<(TlsDoor, SocketAddr)> {
    if settings.tls.is_none() {
        return Vec::new();
    }
    let mut listeners = Vec::new();
    let mut add = |door, addrs: &[SocketAddr]| {
        listeners.extend(addrs.iter().map(|addr| (door, reachable(*addr))));
    };
    add(TlsDoor::Pop3s, &settings.pop3.listen_tls);
    add(TlsDoor::Pop3Stls, &settings.pop3.listen);
    if let Some(submission) = &settings.submission {
        add(TlsDoor::Submissions, &submission.listen_tls);
        add(TlsDoor::SubmissionStarttls, &submission.listen);
    }
    listeners
}

/// The `tls` step: the certificate each TLS listener serves, one report per
/// listener. A report fails when its certificate expires within
/// `warn_days` (or has expired, or is not valid yet), or does not name
/// `hostname`, or when no certificate could be had.
pub async fn certificates(settings: &Settings, warn_days: u32) -> Vec<StepReport> {
    let listeners = tls_listeners(settings);
    if listeners.is_empty() {
        return vec![StepReport {
            step: "tls",
            elapsed: Duration::ZERO,
            outcome: Ok("no TLS listener: [tls] is not configured".to_owned()),
        }];
    }
    let configured = certificate_pem(settings).ok().and_then(|pem| {
        CertificateDer::pem_slice_iter(&pem)
            .next()
            .and_then(|first| first.ok())
    });
    let mut reports = Vec::new();
    for (door, addr) in listeners {
        let report = timed("tls", async {
            let listener = format!("{} {addr}", door.name());
            let chain = served_chain(settings, door, addr)
                .await
                .map_err(|e| format!("{listener}: {e}"))?;
            let leaf = chain
                .first()
                .ok_or_else(|| format!("{listener}: the server sent no certificate"))?;
            let info = CertificateInfo::parse(leaf).map_err(|e| format!("{listener}: {e}"))?;
            let now = SystemTime::now();
            let mut served = LogText(info.describe(now)).to_string();
            if configured.as_ref().is_some_and(|file| file != leaf) {
                served
                    .push_str(" — not the certificate in [tls] cert: reload popgate to serve that");
            }
            let problems: Vec<String> = [
                info.expiry_problem(warn_days, now),
                info.name_problem(&settings.hostname),
            ]
            .into_iter()
            .flatten()
            .collect();
            if problems.is_empty() {
                Ok(format!("{listener}: {served}"))
            } else {
                let problems = LogText(problems.join("; "));
                Err(format!("{listener}: {problems}; served: {served}"))
            }
        });
        reports.push(report.await);
    }
    reports
}

/// Accepts whatever certificate the server presents, so that the `tls`
/// step can report an expired or misnamed one; the handshake's signature is
/// still verified, so the server proves it holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `addr` as a client of `door` would, up to the end of the
/// TLS handshake, and returns the certificate chain the server presented.
async fn served_chain(
    settings: &Settings,
    door: TlsDoor,
    addr: SocketAddr,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(settings.hostname.clone())
        .unwrap_or_else(|_| ServerName::from(addr.ip()));
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    let tcp = match door {
        TlsDoor::Pop3s | TlsDoor::Submissions => tcp,
        TlsDoor::Pop3Stls => {
            let mut plain = Peer {
                stream: BufReader::new(tcp),
            };
            plain.line().await?;
            plain.command("STLS", "STLS").await?;
            plain.stream.into_inner()
        }
        TlsDoor::SubmissionStarttls => {
            let mut plain = Peer {
                stream: BufReader::new(tcp),
            };
            plain.smtp_reply("220").await?;
            plain.write(&format!("EHLO {}", settings.hostname)).await?;
            plain.smtp_reply("250").await?;
            plain.write("STARTTLS").await?;
            plain.smtp_reply("220").await?;
            plain.stream.into_inner()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    goodbye(door, tls).await;
    Ok(chain)
}

/// Ends a `tls` step's connection as a client would, so that the server
/// logs a session that quit rather than one that broke off: the greeting
/// (sent after the handshake on implicit TLS), QUIT and its answer, then
/// the TLS close. Whatever goes wrong here is not the step's business.
async fn goodbye(door: TlsDoor, tls: tokio_rustls::client::TlsStream<TcpStream>) {
    let mut peer = Peer {
        stream: BufReader::new(tls),
    };
    let quit = async {
        match door {
            TlsDoor::Pop3s | TlsDoor::Pop3Stls => {
                if door == TlsDoor::Pop3s {
                    peer.line().await?;
                }
                peer.command("QUIT", "QUIT").await?;
            }
            TlsDoor::Submissions | TlsDoor::SubmissionStarttls => {
                if door == TlsDoor::Submissions {
                    peer.smtp_reply("220").await?;
                }
                peer.write("QUIT").await?;
                peer.smtp_reply("221").await?;
            }
        }
        Ok::<(), String>(())
    };
    let _ = quit.await;
    let _ = tokio::time::timeout(IO_TIMEOUT, peer.stream.get_mut().shutdown()).await;
}

/// The light check for `user`: login over TLS, STAT, UIDL, TOP of the
/// newest message, QUIT. Stops at the first failed step; deletes nothing.
pub async fn light(settings: &Settings, user: &str, password: &str) -> Vec<StepReport> {
    let mut reports = Vec::new();
    let started = Instant::now();
    let mut pop3 = match pop3_session(settings, user, password).await {
        Ok(pop3) => pop3,
        Err(error) => {
            reports.push(StepReport {
                step: "login",
                elapsed: started.elapsed(),
                outcome: Err(error),
            });
            return reports;
        }
    };
    reports.push(StepReport {
        step: "login",
        elapsed: started.elapsed(),
        outcome: Ok(format!("logged in as {user} over TLS")),
    });
    let mut count = 0;
    let stat = timed("stat", async {
        let reply = pop3.command("STAT", "STAT").await?;
        count = reply
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("STAT: {reply}"))?;
        Ok(reply)
    });
    let steps_ok = |reports: &Vec<StepReport>| reports.iter().all(|r| r.outcome.is_ok());
    reports.push(stat.await);
    if steps_ok(&reports) {
        let uidl = timed("uidl", async {
            pop3.command("UIDL", "UIDL").await?;
            Ok(format!("{} unique ids", pop3.lines().await?.len()))
        });
        reports.push(uidl.await);
    }
    if steps_ok(&reports) {
        let top = timed("top", async {
            if count == 0 {
                return Ok("the mailbox is empty".to_string());
            }
            pop3.command(&format!("TOP {count} 0"), "TOP").await?;
            let headers = pop3.lines().await?;
            Ok(format!("TOP {count} 0: {} lines", headers.len()))
        });
        reports.push(top.await);
    }
    if steps_ok(&reports) {
        reports.push(timed("quit", pop3.command("QUIT", "QUIT")).await);
    }
    reports
}

/// Runs the round trip for `user`; stops at the first failed step.
pub async fn round_trip(
    settings: &Settings,
    user: &str,
    password: &str,
    wait: Duration,
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    let token = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let started = Instant::now();
    let sent = send(settings, user, password, &token).await;
    let ok = sent.is_ok();
    reports.push(StepReport {
        step: "send",
        elapsed: started.elapsed(),
        outcome: sent,
    });
    if !ok {
        return reports;
    }
    let started = Instant::now();
    match fetch(settings, user, password, &token, wait).await {
        Ok((found, deleted)) => {
            reports.push(StepReport {
                step: "fetch",
                elapsed: started.elapsed(),
                outcome: Ok(found),
            });
            reports.push(StepReport {
                step: "delete",
                elapsed: Duration::ZERO,
                outcome: deleted,
            });
        }
        Err(error) => reports.push(StepReport {
            step: "fetch",
            elapsed: started.elapsed(),
            outcome: Err(error),
        }),
    }
    reports
}

/// Where to reach a listener bound to `addr` from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn own_address(settings: &Settings, user: &str) -> Result<Address, String> {
    let text = if user.contains('@') {
        user.to_owned()
    } else {
        format!("{user}@{}", settings.hostname)
    };
    text.parse()
        .map_err(|e| format!("`{text}` is not an address: {e}"))
}

fn certificate_pem(settings: &Settings) -> Result<Vec<u8>, String> {
    let tls = settings
        .tls
        .as_ref()
        .ok_or("the configuration has no [tls] section")?;
    std::fs::read(&tls.cert).map_err(|e| format!("{}: {e}", tls.cert.display()))
}

async fn send(
    settings: &Settings,
    user: &str,
    password: &str,
    token: &str,
) -> Result<String, String> {
    let submission = settings
        .submission
        .as_ref()
        .ok_or("the configuration has no [submission] section")?;
    let certificate = Certificate::from_pem(&certificate_pem(settings)?)
        .map_err(|e| format!("the [tls] certificate: {e}"))?;
    let parameters = TlsParameters::builder(settings.hostname.clone())
        .add_root_certificate(certificate)
        .build()
        .map_err(|e| e.to_string())?;
    let (addr, tls, how) = match (submission.listen_tls.first(), submission.listen.first()) {
        (Some(addr), _) => (reachable(*addr), Tls::Wrapper(parameters), "TLS"),
        (None, Some(addr)) => (reachable(*addr), Tls::Required(parameters), "STARTTLS"),
        (None, None) => return Err("submission has no listener".into()),
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(tls)
        .credentials(Credentials::new(user.to_owned(), password.to_owned()))
        .timeout(Some(IO_TIMEOUT))
        .build();
    let address = own_address(settings, user)?;
    let envelope =
        Envelope::new(Some(address.clone()), vec![address.clone()]).map_err(|e| e.to_string())?;
    let message = format!(
        "From: {address}\r\nTo: {address}\r\nSubject: popgate round-trip check\r\n\
         Message-ID: <{token}@{host}>\r\n\r\n\
         Sent by `popgate check --round-trip`; the check deletes it when it arrives.",
        host = settings.hostname,
    );
    transport
        .send_raw(&envelope, message.as_bytes())
        .await
        .map_err(|e| format!("submission {addr} ({how}): {e}"))?;
    Ok(format!(
        "accepted by submission {addr} ({how}) from and to {address}"
    ))
}

/// A connection of the check: reads bounded lines, writes commands.
struct Peer<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    async fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let mut limited = (&mut self.stream).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(IO_TIMEOUT, read).await {
            Ok(Ok(0)) => Err("the server closed the connection".into()),
            Ok(Ok(_)) => Ok(String::from_utf8_lossy(&line).trim_end().to_owned()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    async fn write(&mut self, command: &str) -> Result<(), String> {
        let line = format!("{command}\r\n");
        let write = self.stream.get_mut().write_all(line.as_bytes());
        tokio::time::timeout(IO_TIMEOUT, write)
            .await
            .map_err(|_| "the server stopped reading".to_string())?
            .map_err(|e| e.to_string())
    }

    /// Reads an SMTP reply (all its lines); fails unless its code is `code`.
    async fn smtp_reply(&mut self, code: &str) -> Result<String, String> {
        loop {
            let line = self.line().await?;
            if !line.starts_with(code) {
                return Err(format!("expected {code}: {line}"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    }

    async fn command(&mut self, command: &str, shown: &str) -> Result<String, String> {
        self.write(command).await?;
        let reply = self.line().await?;
        if reply.starts_with("+OK") {
            Ok(reply)
        } else {
            Err(format!("{shown}: {reply}"))
        }
    }

    /// The lines of a multi-line answer, up to the terminating ".".
    async fn lines(&mut self) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            if line == "." {
                return Ok(lines);
            }
            lines.push(line);
        }
    }

    async fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        self.command(&format!("USER {user}"), "USER").await?;
        self.command(&format!("PASS {password}"), "PASS").await?;
        Ok(())
    }

    /// Finds the message with `token` among the newest 50; deletes it.
    async fn find_and_delete(&mut self, token: &str) -> Result<Option<u32>, String> {
        let stat = self.command("STAT", "STAT").await?;
        let count: u32 = stat
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("STAT: {stat}"))?;
        let needle = format!("<{token}@");
        for number in (1..=count).rev().take(50) {
            self.command(&format!("TOP {number} 0"), "TOP").await?;
            if self.lines().await?.iter().any(|l| l.contains(&needle)) {
                self.command(&format!("DELE {number}"), "DELE").await?;
                return Ok(Some(number));
            }
        }
        Ok(None)
    }
}

fn client_config(settings: &Settings) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = certificate_pem(settings)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| format!("the [tls] certificate: {e}"))?;
        roots
            .add(certificate)
            .map_err(|e| format!("the [tls] certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A logged-in POP3 session on our own server: POP3S if configured, else
/// STLS, with the certificate checked against `[tls]` under `hostname`.
async fn pop3_session(
    settings: &Settings,
    user: &str,
    password: &str,
) -> Result<Peer<tokio_rustls::client::TlsStream<TcpStream>>, String> {
    let config = client_config(settings)?;
    let name = ServerName::try_from(settings.hostname.clone()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let (addr, implicit) = match (
        settings.pop3.listen_tls.first(),
        settings.pop3.listen.first(),
    ) {
        (Some(addr), _) => (reachable(*addr), true),
        (None, Some(addr)) => (reachable(*addr), false),
        (None, None) => return Err("POP3 has no listener".into()),
    };
    let connect = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr));
    let tcp = connect
        .await
        .map_err(|_| format!("POP3 {addr}: no answer in time"))?
        .map_err(|e| format!("POP3 {addr}: {e}"))?;
    let tcp = if implicit {
        tcp
    } else {
        let mut plain = Peer {
            stream: BufReader::new(tcp),
        };
        plain.line().await?;
        plain.command("STLS", "STLS").await?;
        plain.stream.into_inner()
    };
    let tls = tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("POP3 {addr}: TLS handshake timed out"))?
        .map_err(|e| format!("POP3 {addr}: TLS: {e}"))?;
    let mut pop3 = Peer {
        stream: BufReader::new(tls),
    };
    if implicit {
        pop3.line().await?;
    }
    pop3.login(user, password).await?;
    Ok(pop3)
}

/// One POP3 session: log in, look for the token. `Ok(None)`: not there yet.
async fn poll_once(
    settings: &Settings,
    user: &str,
    password: &str,
    token: &str,
) -> Result<Option<(u32, String)>, String> {
    let mut pop3 = pop3_session(settings, user, password).await?;
    let found = pop3.find_and_delete(token).await?;
    let quit = pop3.command("QUIT", "QUIT").await;
    match (found, quit) {
        (Some(number), Ok(reply)) => Ok(Some((number, reply))),
        (Some(_), Err(error)) => Err(format!("the message was not deleted: {error}")),
        (None, _) => Ok(None),
    }
}

/// Polls POP3 until the message arrives or `wait` runs out.
async fn fetch(
    settings: &Settings,
    user: &str,
    password: &str,
    token: &str,
    wait: Duration,
) -> Result<(String, Result<String, String>), String> {
    let deadline = Instant::now() + wait;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Some((number, quit)) = poll_once(settings, user, password, token).await? {
            return Ok((
                format!("found as message {number} after {polls} POP3 login(s)"),
                Ok(quit),
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the message did not arrive within {}s ({polls} POP3 logins)",
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
