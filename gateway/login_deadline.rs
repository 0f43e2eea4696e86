//! The login deadline: the total time a connection has to log in, however
//! busy it keeps itself.
//!
//! The idle timeout before login (`preauth_timeout`) restarts with every
//! command, so on its own it lets a client that sends `NOOP` every few
//! seconds hold a connection, and its place in the per-address limit,
//! without ever logging in. `login_deadline` (in `[pop3]` and
//! `[submission]`, 2 minutes by default) is counted once, from accept: the
//! PROXY header, the TLS handshake, every command and the login itself (the
//! password check, opening the mailbox) all come out of it. When it passes
//! before a login succeeded, the driver answers (`-ERR [SYS/TEMP]`,
//! `421 4.7.0`) and closes. A logged-in session never meets it.
//!
//! Each connection holds one [`LoginDeadline`] and uses it in three places,
//! which is all there is to it:
//!
//! 1. every wait for input before login lasts at most
//!    [`read_timeout`](LoginDeadline::read_timeout), and a wait (or a
//!    connection that kept sending) that ends with
//!    [`has_passed`](LoginDeadline::has_passed) closes with the deadline's
//!    answer instead of the idle timeout's (the
//!    [connection core](crate::connection) does this for every protocol);
//! 2. the driver's login step runs [`within`](LoginDeadline::within) it;
//! 3. the store gets [`instant`](LoginDeadline::instant) as its deadline,
//!    so the blocking work behind an abandoned login (waiting for the lock,
//!    reading huge files for their sizes) stops then too, and frees what it
//!    holds.

use std::future::Future;
use std::time::{Duration, Instant};

/// When a connection must have logged in by.
#[derive(Debug, Clone, Copy)]
pub struct LoginDeadline {
    at: Instant,
}

impl LoginDeadline {
    /// The deadline of a connection accepted at `accepted`, which has
    /// `allowed` to log in.
    pub fn new(accepted: Instant, allowed: Duration) -> LoginDeadline {
        LoginDeadline {
            at: accepted.checked_add(allowed).unwrap_or(accepted),
        }
    }

    /// The instant itself, for the store.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// `true` once the deadline has passed.
    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// How long a wait that `idle` would otherwise bound may last: no
    /// longer than what is left.
    pub fn read_timeout(&self, idle: Duration) -> Duration {
        idle.min(self.at.saturating_duration_since(Instant::now()))
    }

    /// Runs `step` (the login), giving up when the deadline passes: `None`
    /// then, and `step` is dropped.
    pub async fn within<F: Future>(&self, step: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.at.into(), step).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_cut_to_what_is_left() {
        let deadline = LoginDeadline::new(Instant::now(), Duration::from_secs(120));
        assert_eq!(
            deadline.read_timeout(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert!(deadline.read_timeout(Duration::from_secs(600)) <= Duration::from_secs(120));
        assert!(!deadline.has_passed());

        let passed = LoginDeadline::new(
            Instant::now() - Duration::from_secs(5),
            Duration::from_secs(1),
        );
        assert!(passed.has_passed());
        assert_eq!(passed.read_timeout(Duration::from_secs(60)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_step_that_outlasts_the_deadline_is_given_up() {
        let deadline = LoginDeadline::new(Instant::now(), Duration::from_millis(50));
        let slow = tokio::time::sleep(Duration::from_secs(30));
        let started = Instant::now();
        assert!(deadline.within(slow).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        let far = LoginDeadline::new(Instant::now(), Duration::from_secs(30));
        assert_eq!(far.within(async { 7 }).await, Some(7));
    }
}
