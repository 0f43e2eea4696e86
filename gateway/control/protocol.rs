//! What goes over the control socket: one request line in, one JSON
//! document out, then the server closes.
//!
//! ```text
//! who                  ->  {"sessions":[{"id":1,"service":"pop3","user":"alice",…}]}
//! kick alice           ->  {"kicked":{"user":"alice","sessions":2,"still_open":0}}
//! reload               ->  {"reloaded":{"complete":true,"report":"TLS certificate reloaded\n…"}}
//! anything else        ->  {"error":"…"}
//! ```
//!
//! Requests are text so an administrator can also type them
//! (`socat - UNIX-CONNECT:/run/popgate/control`); answers are JSON so
//! `popgate who --json` passes them on as they are. Both are bounded
//! ([`MAX_REQUEST`], [`MAX_RESPONSE`]).

use serde::{Deserialize, Serialize};

use crate::sessions::SessionInfo;

/// The longest request line, its line end included.
pub const MAX_REQUEST: usize = 512;
/// The largest answer a client reads: `who` of 100,000 sessions fits.
pub const MAX_RESPONSE: u64 = 64 << 20;

/// A request to the running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// List the sessions.
    Who,
    /// End every session of a user, applying nothing.
    Kick(String),
    /// Reload, as SIGHUP does.
    Reload,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// `who`: every session, in connection order.
    Sessions(Vec<SessionInfo>),
    /// `kick`: how many sessions were told to end, and how many had not
    /// ended yet when the server stopped waiting for them.
    Kicked {
        /// The user, as sessions know it (login-name case applied).
        user: String,
        /// Sessions kicked.
        sessions: usize,
        /// Of those, sessions still open after the wait.
        still_open: usize,
    },
    /// `reload`: whether everything was reloaded, and what was done.
    Reloaded {
        /// True when every part was reloaded.
        complete: bool,
        /// One line per part.
        report: String,
    },
    /// The request could not be served.
    Error(String),
}

impl Request {
    /// Parses a request line (its line end already removed).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_ascii_whitespace();
        let request = match (words.next(), words.next()) {
            (Some("who"), None) => Request::Who,
            (Some("reload"), None) => Request::Reload,
            (Some("kick"), Some(user)) => {
                if popgate_auth::validate_login_name(user).is_err() {
                    return Err("kick: not a valid login name".into());
                }
                Request::Kick(user.to_owned())
            }
            (Some("kick"), None) => return Err("kick: name a user".into()),
            _ => return Err("unknown request: who, kick USER or reload".into()),
        };
        match words.next() {
            None => Ok(request),
            Some(_) => Err("too many words".into()),
        }
    }

    /// The request as a line, its line end included.
    pub fn line(&self) -> String {
        match self {
            Request::Who => "who\n".into(),
            Request::Kick(user) => format!("kick {user}\n"),
            Request::Reload => "reload\n".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_back_from_their_lines_and_bad_ones_say_why() {
        for request in [
            Request::Who,
            Request::Reload,
            Request::Kick("alice@example.com".into()),
        ] {
            let line = request.line();
            assert_eq!(Request::parse(line.trim_end()), Ok(request));
        }
        for (line, why) in [
            ("", "unknown request"),
            ("WHO", "unknown request"),
            ("kick", "name a user"),
            ("kick ../etc", "not a valid login name"),
            ("kick alice bob", "too many words"),
            ("who now", "unknown request"),
        ] {
            let error = Request::parse(line).unwrap_err();
            assert!(error.contains(why), "{line:?}: {error}");
        }
    }

    #[test]
    fn answers_are_tagged_json() {
        let kicked = Response::Kicked {
            user: "alice".into(),
            sessions: 2,
            still_open: 0,
        };
        let text = serde_json::to_string(&kicked).unwrap();
        assert_eq!(
            text,
            r#"{"kicked":{"user":"alice","sessions":2,"still_open":0}}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), kicked);
        let error = serde_json::to_string(&Response::Error("no".into())).unwrap();
        assert_eq!(error, r#"{"error":"no"}"#);
    }
}
