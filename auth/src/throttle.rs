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
//! [`ThrottleConfig::forget_after`] without failures.
//!
//! # Whose failures a success clears
//!
//! The delay counts *every* failure from the address, whatever user it was
//! for, so spraying guesses over many users slows down as much as guessing
//! one. Inside the address's record, failures are also kept per user, and a
//! successful login clears only that user's failures from that address. An
//! attacker holding one valid account cannot use it to wipe the slate: the
//! guesses at another user's password stay counted, and the delay keeps
//! doubling however often the valid account logs in between. Users are kept
//! by a keyed hash of their (folded) name, at most
//! [`ThrottleConfig::max_users_per_address`] per address; failures for
//! further users count towards the address and are cleared by nothing but
//! time.
//!
//! Records are kept per [`counted_address`]: an IPv4 address, or an IPv6
//! /64 (one customer's network). Nothing is kept per user across addresses:
//! a correct password from another address is never slowed down by someone
//! else's failures, so an attacker cannot lock a user out.
//!
//! ```
//! use popgate_auth::Throttle;
//! use std::time::Duration;
//!
//! let throttle = Throttle::new(Duration::from_secs(2));
//! let attacker = "203.0.113.7".parse().unwrap();
//! assert_eq!(throttle.record_failure(attacker, "bob").delay, Duration::from_secs(2));
//! assert_eq!(throttle.record_failure(attacker, "carol").delay, Duration::from_secs(4));
//! // The attacker's own account logs in: its failures (none) are cleared ...
//! throttle.record_success(attacker, "mallory");
//! // ... and the guesses at bob and carol still count.
//! assert_eq!(throttle.record_failure(attacker, "bob").delay, Duration::from_secs(8));
//! // bob himself, from that address, clears his own two failures only.
//! throttle.record_success(attacker, "bob");
//! assert_eq!(throttle.record_failure(attacker, "bob").delay, Duration::from_secs(4));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, RwLock};
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
    /// The most users whose failures an address's record tells apart (16 by
    /// default); failures for further users still count for the address.
    pub max_users_per_address: usize,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15),
            close_after: 10,
            forget_after: Duration::from_secs(600),
            max_entries: 100_000,
            max_users_per_address: 16,
        }
    }
}

/// Failure bookkeeping per client address. Thread-safe; share it by `Arc`.
pub struct Throttle {
    /// The settings in force; a reload replaces them, the records stay.
    config: RwLock<ThrottleConfig>,
    /// Keys the hash users are kept by, drawn at random per process, so
    /// nobody can choose names that collide.
    user_hasher: RandomState,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// One address's failures.
#[derive(Debug, Clone)]
struct Record {
    /// Every failure counted against the address.
    failures: u32,
    last_failure: Instant,
    /// Failures per user (by hashed name), for the users told apart.
    users: Vec<(u64, u32)>,
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
            config: RwLock::new(config),
            user_hasher: RandomState::new(),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> ThrottleConfig {
        sync::read(&self.config).clone()
    }

    /// Puts `config` in force (a configuration reload). The records kept so
    /// far stay: an address that has failed ten times is not given a fresh
    /// start by a SIGHUP. The next failure's penalty follows the new
    /// settings.
    pub fn reconfigure(&self, config: ThrottleConfig) {
        *sync::write(&self.config) = config;
    }

    /// Records a failed login for `user` (the folded name) from `ip`;
    /// returns how long to wait before answering, and whether to close the
    /// connection afterwards.
    pub fn record_failure(&self, ip: IpAddr, user: &str) -> Penalty {
        self.record_failure_at(ip, user, Instant::now())
    }

    /// Clears the failures of `user` from `ip` after that user logged in
    /// from it; failures for other users from that address stay counted.
    pub fn record_success(&self, ip: IpAddr, user: &str) {
        let user = self.user_hasher.hash_one(user);
        let key = counted_address(ip);
        let mut records = sync::lock(&self.records);
        let Some(record) = records.get_mut(&key) else {
            return;
        };
        if let Some(index) = record.users.iter().position(|(u, _)| *u == user) {
            let (_, failures) = record.users.swap_remove(index);
            record.failures = record.failures.saturating_sub(failures);
        }
        if record.failures == 0 {
            records.remove(&key);
        }
    }

    /// How many addresses have a record now.
    pub fn tracked_addresses(&self) -> usize {
        sync::lock(&self.records).len()
    }

    fn record_failure_at(&self, ip: IpAddr, user: &str, now: Instant) -> Penalty {
        let user = self.user_hasher.hash_one(user);
        let key = counted_address(ip);
        let config = self.config();
        let forget_after = config.forget_after;
        let expired =
            |record: &Record| now.saturating_duration_since(record.last_failure) >= forget_after;
        let mut records = sync::lock(&self.records);
        if !records.contains_key(&key) {
            make_room(&mut records, config.max_entries, expired, |record| {
                record.last_failure
            });
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            users: Vec::new(),
        });
        if expired(record) {
            record.failures = 0;
            record.users.clear();
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        if let Some((_, failures)) = record.users.iter_mut().find(|(u, _)| *u == user) {
            *failures = failures.saturating_add(1);
        } else if record.users.len() < config.max_users_per_address {
            record.users.push((user, 1));
        }
        penalty(&config, record.failures)
    }
}

/// The penalty for the `failures`-th failure in a row (from 1).
fn penalty(config: &ThrottleConfig, failures: u32) -> Penalty {
    let doublings = failures.saturating_sub(1).min(31);
    let delay = config
        .base_delay
        .saturating_mul(1 << doublings)
        .min(config.max_delay.max(config.base_delay));
    let close = config.close_after != 0 && failures >= config.close_after;
    Penalty { delay, close }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &*sync::read(&self.config))
            .field("tracked_addresses", &self.tracked_addresses())
            .finish_non_exhaustive()
    }
}

/// The address a client is counted under, by the throttle here and by the
/// gateway's per-address connection limits and password-check share: an
/// IPv4 address as is, also when it arrives mapped into IPv6
/// (`::ffff:192.0.2.7`, as a dual-stack listener reports IPv4 clients); an
/// IPv6 address by its /64 prefix, because one customer's network or one
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
                    .record_failure_at(ip("192.0.2.1"), "u", now + secs(i))
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
            assert!(!throttle.record_failure(attacker, "u").close);
        }
        assert!(throttle.record_failure(attacker, "u").close);
        assert!(throttle.record_failure(attacker, "u").close);
    }

    #[test]
    fn other_addresses_are_unaffected() {
        let throttle = Throttle::new(secs(2));
        for _ in 0..20 {
            throttle.record_failure(ip("192.0.2.1"), "u");
        }
        let penalty = throttle.record_failure(ip("192.0.2.2"), "u");
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
            throttle.record_failure(client, "u");
        }
        throttle.record_success(client, "u");
        assert_eq!(throttle.tracked_addresses(), 0);
        assert_eq!(throttle.record_failure(client, "u").delay, secs(2));
    }

    #[test]
    fn a_success_clears_only_that_users_failures() {
        let throttle = Throttle::new(secs(1));
        let client = ip("192.0.2.1");
        // The attacker's own account logs in between guesses at bob's
        // password: the delay of the guesses keeps doubling.
        let delays: Vec<u64> = (0..4)
            .map(|_| {
                let delay = throttle.record_failure(client, "bob").delay.as_secs();
                throttle.record_success(client, "mallory");
                delay
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        // Spraying other users counts for the address as well.
        assert_eq!(throttle.record_failure(client, "carol").delay, secs(15));
        // bob logs in from there himself: his four failures are cleared,
        // carol's one stays.
        throttle.record_success(client, "bob");
        assert_eq!(throttle.record_failure(client, "dave").delay, secs(2));
        throttle.record_success(client, "carol");
        throttle.record_success(client, "dave");
        assert_eq!(throttle.tracked_addresses(), 0);
    }

    #[test]
    fn users_beyond_the_cap_still_count_for_the_address() {
        let throttle = Throttle::with_config(ThrottleConfig {
            base_delay: secs(1),
            max_delay: secs(1000),
            close_after: 0,
            max_users_per_address: 4,
            ..ThrottleConfig::default()
        });
        let client = ip("192.0.2.1");
        for i in 0..8 {
            throttle.record_failure(client, &format!("user{i}"));
        }
        // Nobody's success clears the failures for users beyond the cap.
        for i in 0..8 {
            throttle.record_success(client, &format!("user{i}"));
        }
        assert_eq!(throttle.record_failure(client, "user0").delay, secs(16));
        let record = sync::lock(&throttle.records)[&client].clone();
        assert!(record.users.len() <= 4, "{record:?}");
    }

    #[test]
    fn records_expire_after_a_quiet_period() {
        let throttle = Throttle::new(secs(2));
        let client = ip("192.0.2.1");
        let start = Instant::now();
        for i in 0..5 {
            throttle.record_failure_at(client, "u", start + secs(i * 60));
        }
        // Failures a few minutes apart keep counting ...
        assert_eq!(
            throttle
                .record_failure_at(client, "u", start + secs(5 * 60))
                .delay,
            secs(15)
        );
        // ... ten quiet minutes wipe the slate.
        let later = start + secs(5 * 60 + 600);
        assert_eq!(
            throttle.record_failure_at(client, "u", later).delay,
            secs(2)
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = Throttle::new(secs(1));
        throttle.record_failure(ip("2001:db8:1:2::1"), "u");
        assert_eq!(
            throttle
                .record_failure(ip("2001:db8:1:2:ffff::9"), "u")
                .delay,
            secs(2)
        );
        assert_eq!(
            throttle.record_failure(ip("2001:db8:1:3::1"), "u").delay,
            secs(1)
        );
        throttle.record_failure(ip("198.51.100.4"), "u");
        assert_eq!(
            throttle
                .record_failure(ip("::ffff:198.51.100.4"), "u")
                .delay,
            secs(2)
        );
        throttle.record_success(ip("::ffff:198.51.100.4"), "u");
        assert_eq!(
            throttle.record_failure(ip("198.51.100.4"), "u").delay,
            secs(1)
        );
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
            throttle.record_failure_at(address, "u", now + Duration::from_millis(u64::from(i)));
            assert!(throttle.tracked_addresses() <= 1000);
        }
        // The most recent offender is still remembered.
        let last = IpAddr::from(9_999u32.to_be_bytes());
        assert_eq!(throttle.record_failure(last, "u").delay, secs(4));
    }

    #[test]
    fn odd_settings() {
        let never_close = Throttle::with_config(ThrottleConfig {
            close_after: 0,
            base_delay: Duration::ZERO,
            ..ThrottleConfig::default()
        });
        for _ in 0..50 {
            let penalty = never_close.record_failure(ip("192.0.2.1"), "u");
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
        assert_eq!(slow.record_failure(ip("192.0.2.1"), "u").delay, secs(30));
        assert_eq!(slow.record_failure(ip("192.0.2.1"), "u").delay, secs(30));
        assert_eq!(slow.config().max_delay, secs(15));
        assert!(format!("{slow:?}").contains("tracked_addresses: 1"));
    }

    /// A reload changes the penalties but not the books: an address that
    /// failed before the reload goes on from its count.
    #[test]
    fn a_new_configuration_keeps_the_records() {
        let throttle = Throttle::new(secs(2));
        let attacker = ip("203.0.113.7");
        assert_eq!(throttle.record_failure(attacker, "u").delay, secs(2));
        assert_eq!(throttle.record_failure(attacker, "u").delay, secs(4));
        throttle.reconfigure(ThrottleConfig {
            base_delay: secs(1),
            close_after: 3,
            ..ThrottleConfig::default()
        });
        assert_eq!(
            throttle.record_failure(attacker, "u"),
            Penalty {
                delay: secs(4),
                close: true
            }
        );
        assert_eq!(throttle.config().base_delay, secs(1));
    }
}
