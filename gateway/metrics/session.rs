//! One connection's metrics: its place in the sessions gauge, what its
//! driver records (logins, RETRs, deletions, relays), and the clock of its
//! commands, which the [connection core](crate::connection) runs.
//!
//! # When a command starts and ends
//!
//! The core hands every piece of input to the session and knows, from
//! [`Reading`], what the session reads before and after it. A command line
//! handed while the session reads commands names the command (its first
//! word, one of the protocol's keywords, else `unknown`). The command is
//! timed from the hand-over of its *last* input — the line itself, or for
//! a command that goes on reading (AUTH's SASL responses, DATA's message
//! text) the piece after which the session reads commands again — to the
//! next time the driver hands input over or waits for it. So the time is
//! the server's: the client's typing and uploading is not in it, and what
//! the driver does for the command (the password check, writing a message
//! out, the UPDATE after QUIT, the relay after DATA) is.

use std::sync::Arc;
use std::time::Instant;

use super::{LoginResult, Metrics, Service};
use crate::login::LoginRefusal;
use crate::protocol_log::Reading;
use crate::submission::relay::outcome::RelayOutcome;

/// The metrics of one connection being served, from [`Metrics::session`].
/// Dropping it takes the connection out of the sessions gauge.
#[derive(Debug)]
pub struct SessionMetrics {
    metrics: Arc<Metrics>,
    service: Service,
    /// The command whose last input has not come yet: its keyword's index.
    pending: Option<usize>,
    /// The command being carried out, and when its last input was handed over.
    running: Option<(usize, Instant)>,
}

impl SessionMetrics {
    pub(super) fn new(metrics: Arc<Metrics>, service: Service) -> SessionMetrics {
        metrics.service(service).sessions.inc();
        SessionMetrics {
            metrics,
            service,
            pending: None,
            running: None,
        }
    }

    /// The user logged in.
    pub fn logged_in(&self) {
        self.count_login(LoginResult::Ok);
    }

    /// A login ended with `refusal`.
    pub fn login_refused(&self, refusal: LoginRefusal) {
        self.count_login(LoginResult::of(refusal));
    }

    fn count_login(&self, result: LoginResult) {
        // Built from LoginResult::ALL, whose order the discriminants follow.
        self.metrics.service(self.service).logins[result as usize].inc();
    }

    /// A RETR sent a message of `octets`.
    pub fn retrieved(&self, octets: u64) {
        self.metrics.retrieved.inc();
        self.metrics.retrieved_bytes.inc_by(octets);
    }

    /// A POP3 login opened its mailbox: from the kept snapshot of an
    /// unchanged Maildir (`reused`) or by listing it.
    pub fn mailbox_opened(&self, reused: bool) {
        self.metrics.opens[usize::from(reused)].inc();
    }

    /// A committed UPDATE applied `count` deletions.
    pub fn deleted(&self, count: usize) {
        self.metrics.deleted.inc_by(count as u64);
    }

    /// The relay answered `outcome`.
    pub fn relayed(&self, outcome: &RelayOutcome) {
        self.metrics.relays[super::relay_index(outcome)].inc();
    }

    /// Input is about to be handed to the session: the command being
    /// carried out, if any, is done. The time returned is when the hand-over
    /// started, for [`SessionMetrics::handed`]. (The connection core runs
    /// this clock; `benches/metrics.rs` measures it.)
    pub fn handing(&mut self) -> Instant {
        let now = Instant::now();
        self.end_command(now);
        now
    }

    /// The session took `input`, reading `before` it and `after` it; the
    /// hand-over started at `started`.
    pub fn handed(&mut self, before: Reading, input: &[u8], after: Reading, started: Instant) {
        if before == Reading::Command {
            self.pending = Some(keyword_index(self.service.keywords(), input));
        }
        if after == Reading::Command {
            if let Some(command) = self.pending.take() {
                self.running = Some((command, started));
            }
        }
    }

    /// The driver waits for input, or the connection ends: the command
    /// being carried out, if any, is done.
    pub fn waiting(&mut self) {
        if self.running.is_some() {
            self.end_command(Instant::now());
        }
    }

    fn end_command(&mut self, now: Instant) {
        if let Some((command, started)) = self.running.take() {
            let elapsed = now.saturating_duration_since(started);
            self.metrics.service(self.service).commands[command].observe(elapsed.as_secs_f64());
        }
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        self.metrics.service(self.service).sessions.dec();
    }
}

/// The index in `keywords` of the first word of `line` (any case), or
/// `keywords.len()` (`unknown`) when it is none of them.
pub(super) fn keyword_index(keywords: &[&str], line: &[u8]) -> usize {
    let line = line.trim_ascii_start();
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let word = &line[..end];
    keywords
        .iter()
        .position(|keyword| keyword.as_bytes().eq_ignore_ascii_case(word))
        .unwrap_or(keywords.len())
}
