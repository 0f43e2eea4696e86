//! Connection limits: in all, per client address and per user.
//!
//! Each admitted connection or login holds a guard; dropping the guard gives
//! the slot back, so a panicking or aborted task can never leak a slot.
//!
//! A client address is counted as the login throttle counts it
//! ([`counted_address`]): an IPv6 client by its /64, an IPv4-mapped IPv6
//! address as the IPv4 address, so neither picking fresh addresses in one's
//! own /64 nor connecting over a dual-stack listener gets a client more
//! connections. Users are counted by the name they are known by (the
//! account name, folded by `[auth] login_name_case`).
//!
//! [`Limits`] is shared by every listener; its per-user count is POP3's
//! (`[pop3] max_connections_per_user`). Submission counts its logged-in
//! sessions in a [`UserLimit`] of its own, so a user whose POP3 pollers fill
//! their slots can still send, and a burst of sending never locks a poller
//! out.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use popgate_auth::counted_address;

/// Counters shared by all listeners of one service.
#[derive(Debug)]
pub struct Limits {
    max_total: usize,
    max_per_ip: usize,
    per_ip: Counter<IpAddr>,
    per_user: UserLimit,
}

/// Logged-in sessions per user, at most `max` each, by account name.
#[derive(Debug)]
pub struct UserLimit {
    max: usize,
    counter: Counter<String>,
}

impl UserLimit {
    /// A limit of `max` sessions per user.
    pub fn new(max: usize) -> Self {
        UserLimit {
            max,
            counter: Counter::new(),
        }
    }

    /// Admits a logged-in session of `user` (an account name, as popgate-auth
    /// gives it), or refuses with [`Refusal::PerUser`].
    pub fn admit(&self, user: &str) -> Result<Slot<String>, Refusal> {
        self.counter
            .acquire(user.to_owned(), self.max, usize::MAX)
            .map_err(|_| Refusal::PerUser)
    }
}

/// Why a connection or login was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server is at `max_connections`.
    Total,
    /// The client address is at `max_connections_per_ip`.
    PerIp,
    /// The user is at `max_connections_per_user`.
    PerUser,
}

/// A slot held by one connection (or one logged-in session, for users).
#[derive(Debug)]
pub struct Slot<K: Eq + Hash + Clone> {
    counter: Counter<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        self.counter.release(&self.key);
    }
}

/// A connection's place: its address slot and one in the total.
#[derive(Debug)]
pub struct ConnectionSlot {
    _ip: Slot<IpAddr>,
}

#[derive(Debug)]
struct Counter<K>(Arc<Mutex<CounterInner<K>>>);

#[derive(Debug)]
struct CounterInner<K> {
    counts: HashMap<K, usize>,
    total: usize,
}

impl<K> Clone for Counter<K> {
    fn clone(&self) -> Self {
        Counter(self.0.clone())
    }
}

impl<K: Eq + Hash + Clone> Counter<K> {
    fn new() -> Self {
        Counter(Arc::new(Mutex::new(CounterInner {
            counts: HashMap::new(),
            total: 0,
        })))
    }

    fn acquire(&self, key: K, max_each: usize, max_total: usize) -> Result<Slot<K>, bool> {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if inner.total >= max_total {
            return Err(true);
        }
        let count = inner.counts.entry(key.clone()).or_insert(0);
        if *count >= max_each {
            return Err(false);
        }
        *count += 1;
        inner.total += 1;
        Ok(Slot {
            counter: self.clone(),
            key,
        })
    }

    fn release(&self, key: &K) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.total = inner.total.saturating_sub(1);
        if let Some(count) = inner.counts.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                inner.counts.remove(key);
            }
        }
    }
}

impl Limits {
    /// Limits of `max_total` connections, `max_per_ip` per address and
    /// `max_per_user` sessions per user.
    pub fn new(max_total: usize, max_per_ip: usize, max_per_user: usize) -> Self {
        Limits {
            max_total,
            max_per_ip,
            per_ip: Counter::new(),
            per_user: UserLimit::new(max_per_user),
        }
    }

    /// Admits a new connection from `ip` (counted by [`counted_address`]),
    /// or says which limit it hit.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        self.per_ip
            .acquire(counted_address(ip), self.max_per_ip, self.max_total)
            .map(|slot| ConnectionSlot { _ip: slot })
            .map_err(|total| {
                if total {
                    Refusal::Total
                } else {
                    Refusal::PerIp
                }
            })
    }

    /// Admits a logged-in POP3 session of `user` (an account name).
    pub fn admit_user(&self, user: &str) -> Result<Slot<String>, Refusal> {
        self.per_user.admit(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let limits = Limits::new(3, 2, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerIp);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total);
        drop(a1);
        assert!(limits.admit(b).is_ok());
        let alice = limits.admit_user("alice").unwrap();
        assert_eq!(limits.admit_user("alice").unwrap_err(), Refusal::PerUser);
        drop(alice);
        assert!(limits.admit_user("alice").is_ok());
    }

    #[test]
    fn addresses_are_counted_as_the_throttle_counts_them() {
        let limits = Limits::new(100, 1, 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _v4 = limits.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            limits.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::PerIp
        );
        let _v6 = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerIp
        );
        assert!(limits.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn separate_user_limits_count_separately() {
        let pop3 = Limits::new(10, 10, 1);
        let submission = UserLimit::new(2);
        let _polling = pop3.admit_user("alice").unwrap();
        assert_eq!(pop3.admit_user("alice").unwrap_err(), Refusal::PerUser);
        let first = submission.admit("alice").unwrap();
        let _second = submission.admit("alice").unwrap();
        assert_eq!(submission.admit("alice").unwrap_err(), Refusal::PerUser);
        assert!(submission.admit("bob").is_ok());
        drop(first);
        assert!(submission.admit("alice").is_ok());
    }
}
