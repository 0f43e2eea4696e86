//! Each client address's share of the password-check slots.
//!
//! The [`LoginGate`](crate::login::LoginGate) runs at most `max_checks`
//! password checks at once. Without a share per address, one client could
//! start that many logins against a slow backend (a hanging PAM module, an
//! LDAP server timing out) and hold every slot, so that everybody else's
//! login waited out `check_timeout` and answered `[SYS/TEMP]`. With
//! [`AddressShares`], one address — as
//! [`counted_address`] counts it: an IPv4
//! address or an IPv6 /64 — holds at most its share; a further login from
//! it *waits* for one of its own checks to end. Waiting, rather than failing
//! at once, keeps a burst of honest logins from behind one NAT working: they
//! are only served in turn. A login that is still waiting when
//! `check_timeout` ends gets `[SYS/TEMP]` like any check that could not be
//! made in time, and is not counted as a failure.
//!
//! The table holds only addresses with a check in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use popgate_auth::counted_address;
use tokio::sync::Notify;

/// Password checks in flight per client address, at most `share` each.
#[derive(Debug)]
pub struct AddressShares {
    share: usize,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    in_flight: Mutex<HashMap<IpAddr, usize>>,
    released: Notify,
}

/// One check's place in its address's share; dropping it gives the place back.
#[derive(Debug)]
pub struct SharePermit {
    inner: Arc<Inner>,
    address: IpAddr,
}

impl AddressShares {
    /// Shares of `share` checks per address (at least one).
    pub fn new(share: usize) -> AddressShares {
        AddressShares {
            share: share.max(1),
            inner: Arc::new(Inner {
                in_flight: Mutex::new(HashMap::new()),
                released: Notify::new(),
            }),
        }
    }

    /// The share of each address.
    pub fn share(&self) -> usize {
        self.share
    }

    /// Waits until the address of `ip` is below its share, and takes a place.
    /// Cancel-safe: a waiter that gives up holds nothing.
    pub async fn acquire(&self, ip: IpAddr) -> SharePermit {
        let address = counted_address(ip);
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release in between is not missed.
            released.as_mut().enable();
            {
                let mut in_flight = lock(&self.inner.in_flight);
                let count = in_flight.entry(address).or_insert(0);
                if *count < self.share {
                    *count += 1;
                    return SharePermit {
                        inner: self.inner.clone(),
                        address,
                    };
                }
            }
            released.await;
        }
    }

    /// How many addresses have a check in flight.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        lock(&self.inner.in_flight).len()
    }
}

impl Drop for SharePermit {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.inner.in_flight);
        if let Some(count) = in_flight.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.address);
            }
        }
        drop(in_flight);
        self.inner.released.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn an_address_waits_for_its_own_checks_only() {
        let shares = AddressShares::new(2);
        let first = shares.acquire(ip("192.0.2.1")).await;
        let _second = shares.acquire(ip("::ffff:192.0.2.1")).await;
        // The third from that address waits ...
        let third =
            tokio::time::timeout(Duration::from_millis(50), shares.acquire(ip("192.0.2.1")));
        assert!(third.await.is_err());
        // ... another address does not ...
        let _other = shares.acquire(ip("192.0.2.2")).await;
        // ... and a neighbour in the same IPv6 /64 counts with its network.
        let _v6 = shares.acquire(ip("2001:db8::1")).await;
        let _v6 = shares.acquire(ip("2001:db8::2")).await;
        let neighbour =
            tokio::time::timeout(Duration::from_millis(50), shares.acquire(ip("2001:db8::3")));
        assert!(neighbour.await.is_err());
        // A place given back lets the waiter in.
        let waiter = shares.acquire(ip("192.0.2.1"));
        let release = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(first);
        };
        let (_third, ()) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(waiter, release)
        })
        .await
        .unwrap();
        assert_eq!(shares.addresses(), 3);
    }

    #[tokio::test]
    async fn given_up_waiters_and_ended_checks_leave_nothing_behind() {
        let shares = AddressShares::new(0);
        assert_eq!(shares.share(), 1);
        let held = shares.acquire(ip("192.0.2.1")).await;
        for _ in 0..3 {
            let waiter = shares.acquire(ip("192.0.2.1"));
            assert!(tokio::time::timeout(Duration::from_millis(10), waiter)
                .await
                .is_err());
        }
        drop(held);
        assert_eq!(shares.addresses(), 0);
        let _again = shares.acquire(ip("192.0.2.1")).await;
    }
}
