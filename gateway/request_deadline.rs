//! Per-request deadlines: how long a logged-in client may take to send one
//! command line, or one message.
//!
//! The idle timeout restarts with every read, so on its own it lets a
//! client that sends one byte every few seconds hold its session, and its
//! place in `max_connections_per_user`, for as long as it likes: hours for
//! one 8 KiB POP3 line, without end inside DATA. As Postfix does
//! (`smtpd_per_request_deadline`, `smtpd_min_data_rate`), the connection
//! core also bounds each request as a whole, once the client has logged in:
//!
//! - a **command line** (or a SASL response) must be complete within the
//!   idle timeout counted from its first byte (or, for the rest of a line
//!   that came behind others, from when the server turned to it: a client
//!   never pays for the time the server spent on what came before);
//! - **message text** (submission's DATA) must be complete by the idle
//!   timeout counted from its start (the first wait for it, right after
//!   the 354 went out), plus one second for every
//!   `min_data_rate` octets received so far (`[submission] min_data_rate`,
//!   1 KiB/s by default): a client sending at the minimum rate or faster
//!   is never cut, however large its message; one that trickles is cut
//!   about one idle timeout after it started.
//!
//! Before login the [login deadline](crate::login_deadline) already bounds
//! everything, so these deadlines apply after it only. A session cut by one
//! hears the protocol's timeout reply and its summary says
//! `end=request-timeout`.
//!
//! A [`RequestClock`] is pure: the core tells it what the session was
//! handed ([`RequestClock::handed`], which needs no clock, so a command
//! costs no time lookup) and asks it, before each read, when what is being
//! received must be complete ([`RequestClock::deadline`]); a request's
//! clock starts at the first wait for it.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::protocol_log::Reading;

/// The deadline of the request a connection is receiving.
#[derive(Debug, Clone, Copy)]
pub struct RequestClock {
    idle: Duration,
    min_data_rate: Option<NonZeroU64>,
    /// When the request being received began: the first wait for the
    /// rest of an unfinished line, or for message text.
    since: Option<Instant>,
    /// Octets of message text received so far, while the session reads it.
    message_octets: Option<u64>,
}

impl RequestClock {
    /// A clock for a connection whose idle timeout after login is `idle`
    /// and whose message text must arrive at `min_data_rate` octets a
    /// second or more (`None`: the protocol reads no message text).
    pub fn new(idle: Duration, min_data_rate: Option<NonZeroU64>) -> RequestClock {
        RequestClock {
            idle,
            min_data_rate,
            since: None,
            message_octets: None,
        }
    }

    /// The session was handed `used` octets while reading `before`, and
    /// now reads `after`.
    pub fn handed(&mut self, before: Reading, used: usize, after: Reading) {
        let text_before = before == Reading::MessageText;
        let text_after = after == Reading::MessageText;
        if text_before {
            if let Some(octets) = &mut self.message_octets {
                *octets = octets.saturating_add(used as u64);
            }
        }
        match (text_before, text_after) {
            // Message text begins; its clock starts when it is waited for.
            (false, true) => {
                self.since = None;
                self.message_octets = Some(0);
            }
            (true, true) => {}
            // A line was taken, or the message ended: whatever is left is
            // a new request, whose clock starts when it is waited for.
            (true, false) => {
                self.since = None;
                self.message_octets = None;
            }
            (false, false) if used > 0 => self.since = None,
            (false, false) => {}
        }
    }

    /// When what is being received must be complete, asked at `now` before
    /// a read with `held` octets of input waiting unused; `None` when no
    /// request is under way (nothing held between lines), and only the idle
    /// timeout bounds the wait. A request (message text, an unfinished
    /// line) whose clock is not running yet starts it at `now`.
    pub fn deadline(&mut self, now: Instant, held: usize) -> Option<Instant> {
        if let Some(octets) = self.message_octets {
            let rate = self.min_data_rate?;
            let allowance = Duration::from_millis(octets.saturating_mul(1000) / rate.get());
            let since = *self.since.get_or_insert(now);
            return Some(
                since
                    .checked_add(self.idle.saturating_add(allowance))
                    .unwrap_or(since),
            );
        }
        if held == 0 {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        Some(since.checked_add(self.idle).unwrap_or(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn rate(octets: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(octets)
    }

    #[test]
    fn a_line_is_timed_from_its_first_byte_not_from_each_byte() {
        let mut clock = RequestClock::new(IDLE, None);
        let start = Instant::now();
        assert_eq!(clock.deadline(start, 0), None);
        // One byte came: the line's clock starts at the next wait.
        assert_eq!(clock.deadline(start, 1), Some(start + IDLE));
        // More bytes, later: the deadline stays where it was.
        let later = start + Duration::from_secs(7);
        assert_eq!(clock.deadline(later, 5), Some(start + IDLE));
        // The line is complete and taken: the next one starts afresh.
        clock.handed(Reading::Command, 6, Reading::Command);
        assert_eq!(clock.deadline(later, 0), None);
        let next = later + Duration::from_secs(1);
        assert_eq!(clock.deadline(next, 2), Some(next + IDLE));
    }

    #[test]
    fn the_rest_of_a_pipelined_line_is_timed_from_when_it_is_waited_for() {
        let mut clock = RequestClock::new(IDLE, None);
        let start = Instant::now();
        assert_eq!(clock.deadline(start, 4), Some(start + IDLE));
        // A whole line came with the start of the next; the server then
        // spends a long time on the first (a big RETR).
        clock.handed(Reading::Command, 8, Reading::Command);
        let after_retr = start + Duration::from_secs(600);
        assert_eq!(clock.deadline(after_retr, 3), Some(after_retr + IDLE));
    }

    #[test]
    fn message_text_must_keep_the_minimum_rate() {
        let mut clock = RequestClock::new(IDLE, rate(1000));
        let data = Instant::now();
        clock.handed(Reading::Command, 6, Reading::MessageText);
        // The clock starts at the first wait for the text.
        assert_eq!(clock.deadline(data, 0), Some(data + IDLE));
        // 5,000 octets so far earn 5 s more.
        let later = data + Duration::from_secs(3);
        clock.handed(Reading::MessageText, 5000, Reading::MessageText);
        assert_eq!(
            clock.deadline(later, 0),
            Some(data + IDLE + Duration::from_secs(5))
        );
        // A trickle earns next to nothing.
        clock.handed(Reading::MessageText, 1, Reading::MessageText);
        assert_eq!(
            clock.deadline(later, 0),
            Some(data + IDLE + Duration::from_millis(5001))
        );
        // The message ends: back to lines, no request under way.
        clock.handed(Reading::MessageText, 5, Reading::Command);
        assert_eq!(clock.deadline(later, 0), None);
        let next = later + Duration::from_secs(1);
        assert_eq!(clock.deadline(next, 1), Some(next + IDLE));
    }

    #[test]
    fn a_large_message_at_a_normal_rate_is_never_due() {
        let mut clock = RequestClock::new(IDLE, rate(1024));
        let mut now = Instant::now();
        clock.handed(Reading::Command, 6, Reading::MessageText);
        assert_eq!(clock.deadline(now, 0), Some(now + IDLE));
        // 100 MiB at 64 KiB/s: always well inside its deadline.
        for _ in 0..1600 {
            now += Duration::from_secs(1);
            clock.handed(Reading::MessageText, 64 * 1024, Reading::MessageText);
            assert!(clock.deadline(now, 0).unwrap() > now + IDLE);
        }
    }
}
