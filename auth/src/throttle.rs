//! The failure throttle: slowing down password guessing, per client address.
//!
//! After a failed login the gateway asks [`Throttle::record_failure`] what to
//! do, sleeps for the returned [`Penalty::delay`] *before* answering, and
//! hangs up if [`Penalty::close`] is set. The throttle only keeps books; it
//! never sleeps.
//!
//! The delay starts at the configured `failure_delay` and doubles with each
//! further failure from the same address (2 s, 4 s, 8 s, …), up to
//! [`ThrottleConfig::max_delay`] (15 s, as Dovecot's anvil). After
//! [`ThrottleConfig::close_after`] failures the connection is closed after
//! every further failure. An address's record is forgotten after
//! [`ThrottleConfig::forget_after`] without failures, and cleared by a
//! success from it.
//!
//! Records are kept per [`counted_address`]: an IPv4 address, or an IPv6
//! /64 (one customer's network). Nothing is kept
//! per user: a correct password from another address is never slowed down by
//! someone else's failures, so an attacker cannot lock a user out.
//!
//! ```
//! use popgate_auth::Throttle;
//! use std::time::Duration;
//!
//! let throttle = Throttle::new(Duration::from_secs(2));
//! let attacker = "203.0.113.7".parse().unwrap();
//! assert_eq!(throttle.record_failure(attacker).delay, Duration::from_secs(2));
//! assert_eq!(throttle.record_failure(attacker).delay, Duration::from_secs(4));
//! throttle.record_success(attacker);
//! assert_eq!(throttle.record_failure(attacker).delay, Duration::from_secs(2));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::evict::make_room;
use crate::sync;

/// What to do after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalty {
    /// How long to wait before answering the failure.
    pub delay: Duration,
    /// Whether to close the connection after answering.
    pub close: bool,
}

/// The throttle's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// The delay after a first failure (`[auth] failure_delay`, 2 s by default).
    pub base_delay: Duration,
    /// The longest delay (15 s by default; never below `base_delay`).
    pub max_delay: Duration,
    /// Failures after which every further failure closes the connection
    /// (10 by default; 0 never closes).
    pub close_after: u32,
    /// How long an address must stay quiet before its failures are forgotten
    /// (10 minutes by default).
    pub forget_after: Duration,
    /// The most addresses remembered (100,000 by default); when full, the
    /// oldest records are dropped.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15),
            close_after: 10,
            forget_after: Duration::from_secs(600),
            max_entries: 100_000,
        }
    }
}

/// Failure bookkeeping per client address. Thread-safe; share it by `Arc`.
pub struct Throttle {
    config: ThrottleConfig,
    records: Mutex<HashMap<IpAddr, Record>>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

impl Throttle {
    /// A throttle with the default settings and this base delay.
    pub fn new(base_delay: Duration) -> Throttle {
        Throttle::with_config(ThrottleConfig {
            base_delay,
            ..ThrottleConfig::default()
        })
    }

    /// A throttle with custom settings.
    pub fn with_config(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Records a failed login from `ip`; returns how long to wait before
    /// answering, and whether to close the connection afterwards.
    pub fn record_failure(&self, ip: IpAddr) -> Penalty {
        self.record_failure_at(ip, Instant::now())
    }

    /// Clears the record of `ip` after a successful login from it.
    pub fn record_success(&self, ip: IpAddr) {
        sync::lock(&self.records).remove(&counted_address(ip));
    }

    /// How many addresses have a record now.
    pub fn tracked_addresses(&self) -> usize {
        sync::lock(&self.records).len()
    }

    fn record_failure_at(&self, ip: IpAddr, now: Instant) -> Penalty {
        let key = counted_address(ip);
        let forget_after = self.config.forget_after;
        let expired =
            |record: &Record| now.saturating_duration_since(record.last_failure) >= forget_after;
        let mut records = sync::lock(&self.records);
        if !records.contains_key(&key) {
            make_room(&mut records, self.config.max_entries, expired, |record| {
                record.last_failure
            });
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if expired(record) {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        self.penalty(record.failures)
    }

    /// The penalty for the `failures`-th failure in a row (from 1).
    fn penalty(&self, failures: u32) -> Penalty {
        let doublings = failures.saturating_sub(1).min(31);
        let delay = self
            .config
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.config.max_delay.max(self.config.base_delay));
        let close = self.config.close_after != 0 && failures >= self.config.close_after;
        Penalty { delay, close }
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .field("tracked_addresses", &self.tracked_addresses())
            .finish()
    }
}

/// The address a client is counted under, by the throttle here and by the
/// gateway's per-address connection limits: an IPv4 address as is, also
/// when it arrives mapped into IPv6 (`::ffff:192.0.2.7`, as a dual-stack
/// listener reports IPv4 clients); an IPv6 address by its /64 prefix, because one customer's network or one
/// rented server gets a whole /64 and can pick any address in it for each
/// connection. Counting by full IPv6 address would give such a client
/// 2^64 fresh budgets.
///
/// ```
/// use popgate_auth::counted_address;
/// use std::net::IpAddr;
///
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// assert_eq!(counted_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
/// assert_eq!(counted_address(ip("2001:db8:1:2:a:b:c:d")), ip("2001:db8:1:2::"));
/// assert_eq!(counted_address(ip("192.0.2.7")), ip("192.0.2.7"));
/// ```
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let throttle = Throttle::new(secs(2));
        let now = Instant::now();
        let delays: Vec<u64> = (0..7)
            .map(|i| {
                throttle
                    .record_failure_at(ip("192.0.2.1"), now + secs(i))
                    .delay
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 15, 15, 15, 15]);
    }

    #[test]
    fn close_after_the_limit() {
        let throttle = Throttle::new(secs(2));
        let attacker = ip("192.0.2.1");
        for _ in 0..9 {
            assert!(!throttle.record_failure(attacker).close);
        }
        assert!(throttle.record_failure(attacker).close);
        assert!(throttle.record_failure(attacker).close);
    }

    #[test]
    fn other_addresses_are_unaffected() {
        let throttle = Throttle::new(secs(2));
        for _ in 0..20 {
            throttle.record_failure(ip("192.0.2.1"));
        }
        let penalty = throttle.record_failure(ip("192.0.2.2"));
        assert_eq!(
            penalty,
            Penalty {
                delay: secs(2),
                close: false
            }
        );
        assert_eq!(throttle.tracked_addresses(), 2);
    }

    #[test]
    fn success_clears_the_record() {
        let throttle = Throttle::new(secs(2));
        let client = ip("192.0.2.1");
        for _ in 0..5 {
            throttle.record_failure(client);
        }
        throttle.record_success(client);
        assert_eq!(throttle.tracked_addresses(), 0);
        assert_eq!(throttle.record_failure(client).delay, secs(2));
    }

    #[test]
    fn records_expire_after_a_quiet_period() {
        let throttle = Throttle::new(secs(2));
        let client = ip("192.0.2.1");
        let start = Instant::now();
        for i in 0..5 {
            throttle.record_failure_at(client, start + secs(i * 60));
        }
        // Failures a few minutes apart keep counting ...
        assert_eq!(
            throttle
                .record_failure_at(client, start + secs(5 * 60))
                .delay,
            secs(15)
        );
        // ... ten quiet minutes wipe the slate.
        let later = start + secs(5 * 60 + 600);
        assert_eq!(throttle.record_failure_at(client, later).delay, secs(2));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = Throttle::new(secs(1));
        throttle.record_failure(ip("2001:db8:1:2::1"));
        assert_eq!(
            throttle.record_failure(ip("2001:db8:1:2:ffff::9")).delay,
            secs(2)
        );
        assert_eq!(
            throttle.record_failure(ip("2001:db8:1:3::1")).delay,
            secs(1)
        );
        throttle.record_failure(ip("198.51.100.4"));
        assert_eq!(
            throttle.record_failure(ip("::ffff:198.51.100.4")).delay,
            secs(2)
        );
        throttle.record_success(ip("::ffff:198.51.100.4"));
        assert_eq!(throttle.record_failure(ip("198.51.100.4")).delay, secs(1));
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = Throttle::with_config(ThrottleConfig {
            max_entries: 1000,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        for i in 0..10_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            throttle.record_failure_at(address, now + Duration::from_millis(u64::from(i)));
            assert!(throttle.tracked_addresses() <= 1000);
        }
        // The most recent offender is still remembered.
        let last = IpAddr::from(9_999u32.to_be_bytes());
        assert_eq!(throttle.record_failure(last).delay, secs(4));
    }

    #[test]
    fn odd_settings() {
        let never_close = Throttle::with_config(ThrottleConfig {
            close_after: 0,
            base_delay: Duration::ZERO,
            ..ThrottleConfig::default()
        });
        for _ in 0..50 {
            let penalty = never_close.record_failure(ip("192.0.2.1"));
            assert_eq!(
                penalty,
                Penalty {
                    delay: Duration::ZERO,
                    close: false
                }
            );
        }
        let slow = Throttle::with_config(ThrottleConfig {
            base_delay: secs(30),
            ..ThrottleConfig::default()
        });
        assert_eq!(slow.record_failure(ip("192.0.2.1")).delay, secs(30));
        assert_eq!(slow.record_failure(ip("192.0.2.1")).delay, secs(30));
        assert_eq!(slow.config().max_delay, secs(15));
        assert!(format!("{slow:?}").contains("tracked_addresses: 1"));
    }
}
