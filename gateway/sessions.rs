//! The session registry: who is connected now, for `popgate who`, and the
//! signal `popgate kick` sends.
//!
//! Every [`Connection`](crate::connection::Connection) registers itself when
//! it starts ([`Sessions::register`]: service, client address, TLS, when)
//! and keeps its entry up to date through the [`Registration`] it holds:
//! the user once logged in, the TLS version after STLS/STARTTLS, and the
//! session's state (`authorization`, `transaction`, `data`, …) whenever it
//! changes. The entry leaves the table when the registration is dropped,
//! so no way a connection ends (a panic in its task included) leaves one
//! behind.
//!
//! One mutex guards the table, and only registering, deregistering and the
//! control socket's requests take it; each entry's changing parts sit
//! behind a mutex of their own that only its connection and `popgate who`
//! touch, so sessions never wait for each other.
//!
//! A kick ([`Sessions::kick`]) sets the entry's flag and wakes its
//! connection, which listens for it wherever it waits
//! ([`Registration::kicked`]); the connection core decides what ending that
//! is (see [`crate::connection`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The sessions of one server.
#[derive(Debug, Default)]
pub struct Sessions {
    next_id: AtomicU64,
    table: Mutex<HashMap<u64, Arc<Entry>>>,
}

/// One session's entry.
#[derive(Debug)]
struct Entry {
    id: u64,
    service: &'static str,
    peer: SocketAddr,
    connected: SystemTime,
    started: Instant,
    detail: Mutex<Detail>,
    kicked: AtomicBool,
    kick: Notify,
}

/// What changes in an entry while its session runs.
#[derive(Debug, Clone)]
struct Detail {
    user: Option<String>,
    tls: Option<&'static str>,
    state: &'static str,
}

/// A session as `popgate who` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's number in this server's life (in connection order).
    pub id: u64,
    /// `pop3` or `submission`.
    pub service: String,
    /// The user, once logged in.
    pub user: Option<String>,
    /// The client's address (the PROXY header's, behind a trusted proxy).
    pub rip: IpAddr,
    /// The TLS version, once TLS.
    pub tls: Option<String>,
    /// When the connection began, RFC 3339 (UTC, seconds).
    pub since: String,
    /// How long ago that was, in seconds.
    pub seconds: u64,
    /// What the session is doing: `authorization`, `transaction`, `data`, …
    pub state: String,
}

/// A connection's place in [`Sessions`]: dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    sessions: Arc<Sessions>,
    entry: Arc<Entry>,
    /// The state last written to the entry, so an unchanged one costs no lock.
    state: &'static str,
}

/// Locks `mutex`, taking over the data of a holder that panicked: every
/// critical section here leaves the data whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sessions {
    /// An empty registry.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Registers a `service` connection from `peer`, in `state`, with TLS
    /// `tls` (on an implicit-TLS port) or none yet.
    pub fn register(
        self: &Arc<Self>,
        service: &'static str,
        peer: SocketAddr,
        tls: Option<&'static str>,
        state: &'static str,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Entry {
            id,
            service,
            peer,
            connected: SystemTime::now(),
            started: Instant::now(),
            detail: Mutex::new(Detail {
                user: None,
                tls,
                state,
            }),
            kicked: AtomicBool::new(false),
            kick: Notify::new(),
        });
        lock(&self.table).insert(id, entry.clone());
        Registration {
            sessions: self.clone(),
            entry,
            state,
        }
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.table).values().cloned().collect()
    }

    /// Every session now, in connection order.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut entries = self.entries();
        entries.sort_by_key(|entry| entry.id);
        entries.iter().map(|entry| entry.info()).collect()
    }

    /// Tells every session of `user` (a name as sessions are logged in
    /// under, folded) to end; returns their ids.
    pub fn kick(&self, user: &str) -> Vec<u64> {
        let mut kicked = Vec::new();
        for entry in self.entries() {
            if lock(&entry.detail).user.as_deref() == Some(user) {
                entry.kicked.store(true, Ordering::Release);
                entry.kick.notify_one();
                kicked.push(entry.id);
            }
        }
        kicked
    }

    /// How many of the sessions `ids` are still registered.
    pub fn still_open(&self, ids: &[u64]) -> usize {
        let table = lock(&self.table);
        ids.iter().filter(|id| table.contains_key(id)).count()
    }
}

impl Entry {
    fn info(&self) -> SessionInfo {
        let detail = lock(&self.detail).clone();
        SessionInfo {
            id: self.id,
            service: self.service.to_owned(),
            user: detail.user,
            rip: self.peer.ip(),
            tls: detail.tls.map(str::to_owned),
            since: humantime::format_rfc3339_seconds(self.connected).to_string(),
            seconds: self.started.elapsed().as_secs(),
            state: detail.state.to_owned(),
        }
    }
}

impl Registration {
    /// Sets the user (`None`: not logged in, or the login was forgotten).
    pub fn set_user(&self, user: Option<&str>) {
        lock(&self.entry.detail).user = user.map(str::to_owned);
    }

    /// Sets the TLS version, after STLS or STARTTLS.
    pub fn set_tls(&self, tls: Option<&'static str>) {
        lock(&self.entry.detail).tls = tls;
    }

    /// Sets the state; an unchanged one costs a comparison.
    pub fn set_state(&mut self, state: &'static str) {
        if self.state != state {
            self.state = state;
            lock(&self.entry.detail).state = state;
        }
    }

    /// True once the session was kicked.
    pub fn is_kicked(&self) -> bool {
        self.entry.kicked.load(Ordering::Acquire)
    }

    /// Resolves once the session is kicked (at once if it was already).
    /// Cancel-safe: a kick that comes while no one waits is kept.
    pub async fn kicked(&self) {
        if self.is_kicked() {
            return;
        }
        // A kick between the check and the wait leaves a permit, which
        // this wait takes at once.
        self.entry.kick.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.sessions.table).remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 50_000))
    }

    #[test]
    fn sessions_are_listed_in_order_with_what_they_said_and_leave_when_dropped() {
        let sessions = Arc::new(Sessions::new());
        let mut first = sessions.register("pop3", peer(1), None, "authorization");
        let second = sessions.register("submission", peer(2), Some("TLSv1_3"), "authorization");
        first.set_user(Some("alice"));
        first.set_tls(Some("TLSv1_2"));
        first.set_state("transaction");
        let listed = sessions.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].service, "pop3");
        assert_eq!(listed[0].user.as_deref(), Some("alice"));
        assert_eq!(listed[0].rip, peer(1).ip());
        assert_eq!(listed[0].tls.as_deref(), Some("TLSv1_2"));
        assert_eq!(listed[0].state, "transaction");
        assert!(listed[0].since.ends_with('Z'), "{}", listed[0].since);
        assert_eq!(listed[1].service, "submission");
        assert_eq!(listed[1].user, None);
        assert!(listed[0].id < listed[1].id);
        drop(second);
        assert_eq!(sessions.list().len(), 1);
        drop(first);
        assert!(sessions.list().is_empty());
    }

    #[test]
    fn a_kick_reaches_every_session_of_the_user_and_no_other() {
        let sessions = Arc::new(Sessions::new());
        let alice_1 = sessions.register("pop3", peer(1), None, "transaction");
        let alice_2 = sessions.register("submission", peer(2), None, "ready");
        let bob = sessions.register("pop3", peer(3), None, "transaction");
        let anonymous = sessions.register("pop3", peer(4), None, "authorization");
        alice_1.set_user(Some("alice"));
        alice_2.set_user(Some("alice"));
        bob.set_user(Some("bob"));
        let ids = sessions.kick("alice");
        assert_eq!(ids.len(), 2);
        assert!(alice_1.is_kicked() && alice_2.is_kicked());
        assert!(!bob.is_kicked() && !anonymous.is_kicked());
        assert_eq!(sessions.still_open(&ids), 2);
        drop(alice_1);
        assert_eq!(sessions.still_open(&ids), 1);
        assert!(sessions.kick("carol").is_empty());
    }

    #[tokio::test]
    async fn a_kick_wakes_a_waiting_session_and_one_that_waits_later() {
        let sessions = Arc::new(Sessions::new());
        let waiting = sessions.register("pop3", peer(1), None, "transaction");
        waiting.set_user(Some("alice"));
        let later = sessions.register("pop3", peer(2), None, "transaction");
        later.set_user(Some("alice"));
        let kicker = sessions.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            kicker.kick("alice");
        });
        tokio::time::timeout(Duration::from_secs(10), waiting.kicked())
            .await
            .unwrap();
        // `later` was not waiting when the kick came: it still hears it.
        tokio::time::timeout(Duration::from_secs(10), later.kicked())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), later.kicked())
            .await
            .unwrap();
    }
}
