//! A reply-by-email poller: the integration pattern popgate is built for
//! (docs/guides/reply-by-email.md).
//!
//! A ticket system sends notifications with `Reply-To: reply+TICKET@…`;
//! users answer from Outlook, Gmail or Thunderbird; the answers land in one
//! mailbox that this poller empties every minute. Each run logs in over
//! POP3S, fetches every message, reads it (the `reply` module: who wrote,
//! which ticket, the text above the quoted original), prints one JSON line
//! per message, marks it deleted, and QUITs. popgate applies the deletions
//! only at that QUIT, so:
//!
//! - a run that dies before QUIT deletes nothing: the next run sees the same
//!   messages again — the consumer of the JSON lines must be idempotent,
//!   which is why each line carries the message's UIDL (stable across
//!   sessions);
//! - a message is marked deleted only after its line was written, and one
//!   that cannot be parsed or is too big is left on the server (and said so
//!   on standard error);
//! - a second poller started while one runs waits for the mailbox lock
//!   instead of being told the password is wrong.
//!
//! ```text
//! cargo run --example reply_poller -- mail.example.com:995 mail.example.com ca.pem tickets < password
//! ```
//! (server address, TLS name, CA certificate to trust, user; the password on
//! standard input). Each line of output is
//! `{"uidl":…,"from":…,"ticket":…|null,"reply":…}`.

mod reply;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
type Error = Box<dyn std::error::Error>;

/// The longest line read from the server (RFC 5322 allows 998 octets).
const MAX_LINE: u64 = 64 * 1024;
/// Messages bigger than this are left on the server, unread.
const MAX_MESSAGE: u64 = 25 * 1024 * 1024;

/// A minimal POP3 client: just what a poller needs.
struct Pop3 {
    reader: BufReader<Tls>,
}

impl Pop3 {
    /// One line without its CRLF; a line longer than `MAX_LINE` is an error.
    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(std::io::Error::other("connection closed or line too long"));
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        Ok(line)
    }

    /// Sends a command; an `-ERR` answer is an error carrying the server's text.
    fn command(&mut self, command: &str) -> std::io::Result<String> {
        self.reader
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())?;
        let reply = String::from_utf8_lossy(&self.line()?).into_owned();
        match reply.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(std::io::Error::other(format!(
                "{}: {reply}",
                command.split(' ').next().unwrap_or("")
            ))),
        }
    }

    /// The lines of a multi-line answer, dot-stuffing undone.
    fn lines(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            match line.strip_prefix(b".") {
                Some([]) => return Ok(lines),
                Some(unstuffed) => lines.push(unstuffed.to_vec()),
                None => lines.push(line),
            }
        }
    }

    /// `(number, second field)` of each line of a LIST or UIDL answer.
    fn listing(&mut self, command: &str) -> std::io::Result<Vec<(String, String)>> {
        self.command(command)?;
        Ok(self
            .lines()?
            .iter()
            .filter_map(|line| {
                let line = String::from_utf8_lossy(line);
                let (number, value) = line.split_once(' ')?;
                Some((number.to_owned(), value.to_owned()))
            })
            .collect())
    }

    /// A whole message, its lines joined with CRLF.
    fn retrieve(&mut self, number: &str) -> std::io::Result<Vec<u8>> {
        self.command(&format!("RETR {number}"))?;
        Ok(self.lines()?.join(&b"\r\n"[..]))
    }
}

fn connect(addr: &str, name: &str, ca: &str) -> Result<Pop3, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca)? {
        roots.add(certificate?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(name.to_owned())?)?;
    let mut pop3 = Pop3 {
        reader: BufReader::new(rustls::StreamOwned::new(connection, tcp)),
    };
    pop3.line()?;
    Ok(pop3)
}

/// The JSON line for one message.
fn json_line(uidl: &str, reply: &reply::Reply) -> String {
    serde_json::json!({
        "uidl": uidl,
        "from": reply.from,
        "ticket": reply.ticket,
        "reply": reply.text,
    })
    .to_string()
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, ca, user] = args.as_slice() else {
        return Err("usage: reply_poller HOST:PORT TLS-NAME CA.pem USER < password".into());
    };
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let mut pop3 = connect(addr, name, ca)?;
    pop3.command(&format!("USER {user}"))?;
    pop3.command(&format!("PASS {}", password.trim_end()))?;
    let sizes = pop3.listing("LIST")?;
    let uidls: HashMap<String, String> = pop3.listing("UIDL")?.into_iter().collect();
    let mut out = std::io::stdout().lock();
    for (number, size) in &sizes {
        let Some(uidl) = uidls.get(number) else {
            continue;
        };
        if size.parse::<u64>().map_or(true, |size| size > MAX_MESSAGE) {
            eprintln!("{uidl}: left on the server: {size} octets is too big");
            continue;
        }
        let message = pop3.retrieve(number)?;
        match reply::read(&message) {
            Ok(reply) => {
                // Written and flushed first: a line lost is a reply lost.
                writeln!(out, "{}", json_line(uidl, &reply))?;
                out.flush()?;
                pop3.command(&format!("DELE {number}"))?;
            }
            Err(error) => eprintln!("{uidl}: left on the server: {error}"),
        }
    }
    // Only now are the deletions applied; dying before this line deletes nothing.
    pop3.command("QUIT")?;
    Ok(())
}
