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
//! (`[pop3] max_connections_per_user`, or the mailbox's own
//! `max_connections`). Submission counts its logged-in sessions in a
//! [`UserLimit`] of its own, so a user whose POP3 pollers fill their slots
//! can still send, and a burst of sending never locks a poller out.
//!
//! The counters live as long as the server; the maxima are the caller's,
//! from the configuration in force, so a reload changes a limit for the
//! next connection while every slot already held stays counted. Lowering a
//! limit below what is in use refuses newcomers until enough sessions end;
//! it never closes one.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use popgate_auth::counted_address;

/// Counters shared by all listeners.
#[derive(Debug)]
pub struct Limits {
    per_ip: Counter<IpAddr>,
    per_user: UserLimit,
}

/// The connection maxima in force: `[pop3] max_connections` and
/// `max_connections_per_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionMaxima {
    /// Connections in all.
    pub total: usize,
    /// Connections from one client address.
    pub per_ip: usize,
}

/// Logged-in sessions per user, by account name.
#[derive(Debug)]
pub struct UserLimit {
    counter: Counter<String>,
}

impl Default for UserLimit {
    fn default() -> Self {
        UserLimit::new()
    }
}

impl UserLimit {
    /// No session counted yet.
    pub fn new() -> Self {
        UserLimit {
            counter: Counter::new(),
        }
    }

    /// Admits a logged-in session of `user` (an account name, as popgate-auth
    /// gives it) if it has fewer than `max`, or refuses with
    /// [`Refusal::PerUser`].
    pub fn admit(&self, user: &str, max: usize) -> Result<Slot<String>, Refusal> {
        self.counter
            .acquire(user.to_owned(), max, usize::MAX)
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

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

impl Limits {
    /// No connection counted yet.
    pub fn new() -> Self {
        Limits {
            per_ip: Counter::new(),
            per_user: UserLimit::new(),
        }
    }

    /// Admits a new connection from `ip` (counted by [`counted_address`])
    /// within `maxima`, or says which limit it hit.
    pub fn admit(&self, ip: IpAddr, maxima: ConnectionMaxima) -> Result<ConnectionSlot, Refusal> {
        self.per_ip
            .acquire(counted_address(ip), maxima.per_ip, maxima.total)
            .map(|slot| ConnectionSlot { _ip: slot })
            .map_err(|total| {
                if total {
                    Refusal::Total
                } else {
                    Refusal::PerIp
                }
            })
    }

    /// Admits a logged-in POP3 session of `user` (an account name) if it
    /// has fewer than `max`.
    pub fn admit_user(&self, user: &str, max: usize) -> Result<Slot<String>, Refusal> {
        self.per_user.admit(user, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maxima(total: usize, per_ip: usize) -> ConnectionMaxima {
        ConnectionMaxima { total, per_ip }
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let limits = Limits::new();
        let max = maxima(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a, max).unwrap();
        let _a2 = limits.admit(a, max).unwrap();
        assert_eq!(limits.admit(a, max).unwrap_err(), Refusal::PerIp);
        let _b1 = limits.admit(b, max).unwrap();
        assert_eq!(limits.admit(b, max).unwrap_err(), Refusal::Total);
        drop(a1);
        assert!(limits.admit(b, max).is_ok());
        let alice = limits.admit_user("alice", 1).unwrap();
        assert_eq!(limits.admit_user("alice", 1).unwrap_err(), Refusal::PerUser);
        drop(alice);
        assert!(limits.admit_user("alice", 1).is_ok());
    }

    /// A reload's new maxima count the slots held under the old ones: a
    /// lower limit refuses newcomers and closes nobody; a higher one
    /// admits them at once.
    #[test]
    fn new_maxima_count_the_slots_already_held() {
        let limits = Limits::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| limits.admit(a, maxima(10, 5)).unwrap())
            .collect();
        assert_eq!(limits.admit(a, maxima(10, 2)).unwrap_err(), Refusal::PerIp);
        assert_eq!(limits.admit(a, maxima(3, 5)).unwrap_err(), Refusal::Total);
        assert!(limits.admit(a, maxima(10, 4)).is_ok());
        drop(held);
        let _bob = limits.admit_user("bob", 2).unwrap();
        let _again = limits.admit_user("bob", 2).unwrap();
        assert_eq!(limits.admit_user("bob", 2).unwrap_err(), Refusal::PerUser);
        assert!(
            limits.admit_user("bob", 3).is_ok(),
            "bob's own, higher limit"
        );
    }

    #[test]
    fn addresses_are_counted_as_the_throttle_counts_them() {
        let limits = Limits::new();
        let max = maxima(100, 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _v4 = limits.admit(ip("192.0.2.7"), max).unwrap();
        assert_eq!(
            limits.admit(ip("::ffff:192.0.2.7"), max).unwrap_err(),
            Refusal::PerIp
        );
        let _v6 = limits.admit(ip("2001:db8:1:2::1"), max).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9"), max).unwrap_err(),
            Refusal::PerIp
        );
        assert!(limits.admit(ip("2001:db8:1:3::1"), max).is_ok());
    }

    #[test]
    fn separate_user_limits_count_separately() {
        let pop3 = Limits::new();
        let submission = UserLimit::new();
        let _polling = pop3.admit_user("alice", 1).unwrap();
        assert_eq!(pop3.admit_user("alice", 1).unwrap_err(), Refusal::PerUser);
        let first = submission.admit("alice", 2).unwrap();
        let _second = submission.admit("alice", 2).unwrap();
        assert_eq!(submission.admit("alice", 2).unwrap_err(), Refusal::PerUser);
        assert!(submission.admit("bob", 2).is_ok());
        drop(first);
        assert!(submission.admit("alice", 2).is_ok());
    }
}
