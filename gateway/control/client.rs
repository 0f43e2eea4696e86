//! The CLI's end of the control socket: `popgate who`, `kick` and
//! `reload` send one request ([`ask`]) and print the answer
//! ([`who_table`] for `who`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response, MAX_RESPONSE};
use crate::sessions::SessionInfo;

/// How long any one read or write on the socket may wait: `kick` waits a
/// few seconds for sessions to end, a reload reads its files.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached.
    #[error("cannot connect to {}: {source}{}", .path.display(), connect_hint(.source))]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The exchange broke off.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The answer is not one popgate gives.
    #[error("{}: not a popgate answer: {reason}", .path.display())]
    Malformed {
        /// The socket's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a failed connect most likely means.
fn connect_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            " (is popgate running, with this [control] socket?)"
        }
        io::ErrorKind::PermissionDenied => " (run this as root or as the user popgate runs as)",
        _ => "",
    }
}

/// Sends `request` to the server listening on `socket` and reads its answer.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let io_error = |source| ClientError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_error)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_error)?;
    // A server that refuses the peer answers without reading the request,
    // and may have closed before it is sent: its answer still says why.
    let sent = stream.write_all(request.line().as_bytes());
    let mut answer = Vec::new();
    let read = (&mut stream)
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut answer);
    if answer.is_empty() {
        sent.and(read).map_err(io_error)?;
    }
    if answer.len() as u64 > MAX_RESPONSE {
        return Err(ClientError::Malformed {
            path: socket.to_path_buf(),
            reason: format!("longer than {MAX_RESPONSE} octets"),
        });
    }
    serde_json::from_slice(&answer).map_err(|error| ClientError::Malformed {
        path: socket.to_path_buf(),
        reason: error.to_string(),
    })
}

/// The sessions as `popgate who` prints them: a header, then one line per
/// session, in columns: service, user, client address, TLS, since, state.
pub fn who_table(sessions: &[SessionInfo]) -> String {
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .map(|session| {
            [
                session.service.clone(),
                session.user.clone().unwrap_or_else(|| "-".into()),
                session.rip.to_string(),
                session.tls.clone().unwrap_or_else(|| "-".into()),
                session.since.clone(),
                session.state.clone(),
            ]
        })
        .collect();
    let header = ["service", "user", "rip", "tls", "since", "state"].map(str::to_owned);
    let mut widths = header.clone().map(|title| title.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_prints_aligned_columns_with_dashes_for_what_is_unknown() {
        let sessions = [
            SessionInfo {
                id: 1,
                service: "pop3".into(),
                user: Some("alice@example.com".into()),
                rip: "192.0.2.7".parse().unwrap(),
                tls: Some("TLSv1_3".into()),
                since: "2026-01-02T03:04:05Z".into(),
                seconds: 12,
                state: "transaction".into(),
            },
            SessionInfo {
                id: 2,
                service: "submission".into(),
                user: None,
                rip: "2001:db8::1".parse().unwrap(),
                tls: None,
                since: "2026-01-02T03:04:06Z".into(),
                seconds: 11,
                state: "connected".into(),
            },
        ];
        assert_eq!(
            who_table(&sessions),
            "service     user               rip          tls      since                 state\n\
             pop3        alice@example.com  192.0.2.7    TLSv1_3  2026-01-02T03:04:05Z  transaction\n\
             submission  -                  2001:db8::1  -        2026-01-02T03:04:06Z  connected\n"
        );
        assert_eq!(who_table(&[]), "service  user  rip  tls  since  state\n");
    }

    #[test]
    fn a_missing_socket_says_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let error = ask(&dir.path().join("control"), &Request::Who).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("is popgate running"), "{text}");
    }
}
