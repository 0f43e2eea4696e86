//! A reply-by-email poller: the integration pattern popgate is built for.
//!
//! Every run logs in over TLS, fetches every message, hands each to
//! `process`, marks the processed ones deleted and QUITs. popgate applies
//! the deletions only at that QUIT, so:
//!
//! - a run that dies before QUIT deletes nothing: the next run sees the same
//!   messages again — `process` must be idempotent, which is why it is keyed
//!   by the message's UIDL (stable across sessions);
//! - a message that fails to process is simply not deleted and comes back;
//! - a second poller started while one runs waits for the mailbox lock
//!   instead of being told the password is wrong.
//!
//! ```text
//! cargo run --example poller -- 127.0.0.1:995 localhost ca.pem alice < password
//! ```
//! (server address, TLS name, CA certificate to trust, user; the password on
//! standard input). It prints one line per message: `UIDL subject`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A minimal POP3 client: just what a poller needs.
struct Pop3 {
    reader: BufReader<Tls>,
}

impl Pop3 {
    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Sends a command; an `-ERR` answer is an error carrying the server's text.
    fn command(&mut self, command: &str) -> std::io::Result<String> {
        self.reader
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())?;
        let reply = self.line()?;
        match reply.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(std::io::Error::other(format!(
                "{}: {reply}",
                command.split(' ').next().unwrap_or("")
            ))),
        }
    }

    /// The body of a multi-line answer, dot-stuffing undone.
    fn body(&mut self) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            match line.as_str() {
                "." => return Ok(lines),
                _ => lines.push(line.strip_prefix('.').map(str::to_owned).unwrap_or(line)),
            }
        }
    }
}

/// What the integration does with one message; `Err` leaves it on the server.
fn process(uidl: &str, message: &[String]) -> Result<(), String> {
    let subject = message
        .iter()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("Subject: "))
        .unwrap_or("(no subject)");
    println!("{uidl} {subject}");
    Ok(())
}

fn connect(addr: &str, name: &str, ca: &str) -> Result<Pop3, Box<dyn std::error::Error>> {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, name, ca, user] = args.as_slice() else {
        return Err("usage: poller HOST:PORT TLS-NAME CA.pem USER < password".into());
    };
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let mut pop3 = connect(addr, name, ca)?;
    pop3.command(&format!("USER {user}"))?;
    pop3.command(&format!("PASS {}", password.trim_end()))?;
    pop3.command("UIDL")?;
    let uidls: Vec<(String, String)> = pop3
        .body()?
        .into_iter()
        .filter_map(|line| {
            line.split_once(' ')
                .map(|(n, u)| (n.to_owned(), u.to_owned()))
        })
        .collect();
    for (number, uidl) in &uidls {
        pop3.command(&format!("RETR {number}"))?;
        let message = pop3.body()?;
        match process(uidl, &message) {
            Ok(()) => {
                pop3.command(&format!("DELE {number}"))?;
            }
            Err(error) => eprintln!("{uidl}: left on the server: {error}"),
        }
    }
    // Only now are the deletions applied; dying before this line deletes nothing.
    pop3.command("QUIT")?;
    Ok(())
}
