//! What the submission tests need besides the POP3 harness: a real upstream
//! SMTP server (`smtp_sink.py` on Debian's aiosmtpd) and a small SMTP client
//! on the shared [line client](crate::line_client) that shows every reply
//! line exactly.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::harness::{Options, Server, PASSWORD};
use crate::line_client::{LineClient, Trickled};

/// Debian's Python, where python3-aiosmtpd is installed (a `python3` found
/// first on PATH may be another installation without it).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// An upstream SMTP server on loopback that records what it receives.
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// One message the sink received.
#[derive(Debug)]
pub struct Received {
    pub envelope: String,
    pub data: Vec<u8>,
    /// The MAIL and RCPT commands, exactly as they arrived (keyword in
    /// upper case).
    pub commands: Vec<String>,
}

impl Sink {
    /// A sink that accepts everything.
    pub fn start() -> Sink {
        Sink::with(&[])
    }

    /// A sink that answers every message with `reply` (e.g. "550 5.7.1 No").
    pub fn replying(reply: &str) -> Sink {
        Sink::with(&["--reply", reply])
    }

    /// A sink started with these options of `smtp_sink.py`.
    pub fn with(args: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/smtp_sink.py");
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(script)
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/system-deps.sh test installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("smtp_sink.py did not start: {line:?}"))
            .parse()
            .unwrap();
        Sink { port, dir, child }
    }

    /// Stops the sink (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The messages received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for n in 1.. {
            let base: PathBuf = self.dir.path().join(n.to_string());
            let Ok(envelope) = fs::read_to_string(base.with_extension("json")) else {
                break;
            };
            let data = fs::read(base.with_extension("eml")).unwrap();
            let commands = fs::read_to_string(base.with_extension("smtp"))
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            out.push(Received {
                envelope,
                data,
                commands,
            });
        }
        out
    }

    /// `[submission]` lines that relay to this sink without TLS.
    pub fn relay_lines(&self) -> Vec<String> {
        vec![
            format!("relay = \"smtp://127.0.0.1:{}\"", self.port),
            "relay_tls = \"none\"".into(),
            "relay_timeout = \"20s\"".into(),
        ]
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A popgate with submission relaying to `sink`, alice allowed to send as
/// alice@example.com, plus `extra` submission lines.
pub fn server_relaying_to(sink: &Sink, extra: &[&str]) -> Server {
    let mut lines = sink.relay_lines();
    lines.extend(extra.iter().map(|l| l.to_string()));
    lines.push("[submission.addresses]".into());
    lines.push("alice = [\"alice@example.com\"]".into());
    Server::with(Options {
        submission: Some(lines),
        ..Options::default()
    })
}

/// The submission (STARTTLS) address of `server`.
pub fn submission_addr(server: &Server) -> SocketAddr {
    server.addrs["submission"]
}

/// The implicit-TLS submission address of `server`.
pub fn submissions_addr(server: &Server) -> SocketAddr {
    server.addrs["submissions"]
}

/// An SMTP client for tests, on the shared [`LineClient`]: replies whole
/// (multi-line ones joined), STARTTLS, DATA with dot-stuffing.
pub struct Smtp {
    line: LineClient,
}

impl Smtp {
    /// Connects (TLS first when `tls` is given) and reads the 220 greeting.
    pub fn connect(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Smtp {
        Smtp::over(TcpStream::connect(addr).unwrap(), tls)
    }

    /// Takes over a connected socket (TLS first when `tls` is given) and
    /// reads the 220 greeting.
    pub fn over(tcp: TcpStream, tls: Option<Arc<rustls::ClientConfig>>) -> Smtp {
        let mut smtp = Smtp {
            line: LineClient::over(tcp, tls, Duration::from_secs(30)),
        };
        let greeting = smtp.reply();
        assert!(greeting.starts_with("220 localhost ESMTP"), "{greeting}");
        smtp
    }

    /// A client logged in as alice over STARTTLS, EHLO done.
    pub fn logged_in(server: &Server) -> Smtp {
        let smtp = Smtp::connect(submission_addr(server), None);
        let mut smtp = smtp.starttls(server.client_config());
        smtp.cmd("EHLO client.test");
        assert_eq!(
            smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD))),
            "235 2.7.0 Authentication successful"
        );
        smtp
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.line.send_raw(bytes);
    }

    /// Sends `bytes` a byte at a time (see [`LineClient::trickle`]).
    pub fn trickle(&mut self, bytes: &[u8], every: Duration, give_up: Duration) -> Trickled {
        self.line.trickle(bytes, every, give_up)
    }

    /// Sends a command and returns its (possibly multi-line) reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.line.send(line);
        self.reply()
    }

    /// Reads one reply; the lines of a multi-line reply joined with "\n".
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line().expect("connection closed before a reply");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// One line without CRLF, or `None` at EOF.
    pub fn line(&mut self) -> Option<String> {
        self.line.line()
    }

    /// True when nothing more arrived within `within`.
    pub fn is_silent_for(&mut self, within: Duration) -> bool {
        self.line.is_silent_for(within)
    }

    /// STARTTLS and the handshake; nothing may have arrived after the 220.
    pub fn starttls(mut self, config: Arc<rustls::ClientConfig>) -> Smtp {
        assert_eq!(self.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS");
        self.tls_after_220(config)
    }

    /// The handshake after the test read the 220 itself.
    pub fn tls_after_220(self, config: Arc<rustls::ClientConfig>) -> Smtp {
        Smtp {
            line: self.line.into_tls(config),
        }
    }

    /// DATA, the message (dot-stuffed here), and the final reply.
    pub fn data(&mut self, message: &[u8]) -> String {
        assert!(self.cmd("DATA").starts_with("354 "));
        self.send_raw(&stuff(message));
        self.send_raw(b".\r\n");
        self.reply()
    }

    /// MAIL, RCPT…, DATA, the message (dot-stuffed here), and the final reply.
    pub fn send_message(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        assert_eq!(
            self.cmd(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Sender OK"
        );
        for rcpt in to {
            assert_eq!(
                self.cmd(&format!("RCPT TO:<{rcpt}>")),
                "250 2.1.5 Recipient OK"
            );
        }
        self.data(message)
    }
}

/// The headers popgate put in front of `data`, after checking that the
/// rest is `original` byte for byte.
pub fn added_headers(data: &[u8], original: &[u8]) -> String {
    assert!(
        data.ends_with(original),
        "relayed:\n{}",
        String::from_utf8_lossy(data)
    );
    String::from_utf8(data[..data.len() - original.len()].to_vec()).unwrap()
}

/// Dot-stuffs a CRLF message for DATA.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out
}

/// The EHLO answer of a test server with the default `max_message_size`,
/// before TLS (STARTTLS offered) and after (AUTH offered), CRLF after
/// each line.
pub fn ehlo_reply(tls: bool) -> String {
    let last = if tls { "AUTH PLAIN LOGIN" } else { "STARTTLS" };
    format!(
        "250-localhost\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250 {last}\r\n"
    )
}

/// The base64 SASL PLAIN response for `user` and `password`.
pub fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}
