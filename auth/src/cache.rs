//! The cache of recent successful logins.
//!
//! A client that polls every minute would otherwise pay a full bcrypt (or a
//! PAM transaction) each time. After a successful check, the cache
//! remembers for a short TTL that *this user with this password* was
//! accepted. It never stores the password: only a fingerprint,
//! `SHA-256(salt ‖ len(user) ‖ user ‖ password)`, with a salt drawn at
//! random when the process starts, compared in constant time.
//!
//! * A hit needs the same user, the same password and an unexpired entry.
//! * A wrong password never hits: it goes to the backend as usual (and leaves
//!   the entry of the right one alone).
//! * Each entry carries the backend generation that granted it and counts
//!   only while that generation is current; the cache is also emptied when
//!   the backend's data changes or is reloaded. A changed or removed
//!   password stops working at once. PAM has no generation of its own: a
//!   password changed or an account locked through PAM takes effect when
//!   the entry expires, or at once on SIGHUP (which empties the cache).
//! * A TTL of zero turns the cache off; it holds at most
//!   [`MAX_CACHED_LOGINS`] users.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::account::Account;
use crate::evict::make_room;
use crate::sync;
use crate::AuthError;

/// The most users the cache holds.
pub(crate) const MAX_CACHED_LOGINS: usize = 10_000;

/// Recent successful logins.
pub(crate) struct LoginCache {
    ttl: RwLock<Duration>,
    capacity: usize,
    salt: [u8; 32],
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    generation: u64,
    fingerprint: [u8; 32],
    expires: Instant,
    account: Account,
}

impl LoginCache {
    /// An empty cache whose entries live for `ttl` (zero: no caching).
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Result<LoginCache, AuthError> {
        let mut salt = [0; 32];
        getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(LoginCache {
            ttl: RwLock::new(ttl),
            capacity,
            salt,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The account, if `user` logged in with `password` within the TTL,
    /// granted by the backend's current `generation`.
    pub(crate) fn lookup(&self, user: &str, password: &str, generation: u64) -> Option<Account> {
        self.lookup_at(user, password, generation, Instant::now())
    }

    /// Remembers that `user` logged in with `password`, as granted by the
    /// backend's data of `generation`.
    pub(crate) fn insert(&self, user: &str, password: &str, account: &Account, generation: u64) {
        self.insert_at(user, password, account, generation, Instant::now());
    }

    /// Forgets every entry.
    pub(crate) fn clear(&self) {
        sync::lock(&self.entries).clear();
    }

    /// Gives entries from now on a lifetime of `ttl` (zero: no caching) and
    /// forgets the ones made under the old lifetime.
    pub(crate) fn set_ttl(&self, ttl: Duration) {
        *sync::write(&self.ttl) = ttl;
        self.clear();
    }

    fn ttl(&self) -> Duration {
        *sync::read(&self.ttl)
    }

    fn lookup_at(
        &self,
        user: &str,
        password: &str,
        generation: u64,
        now: Instant,
    ) -> Option<Account> {
        if self.ttl().is_zero() {
            return None;
        }
        let fingerprint = self.fingerprint(user, password);
        let mut entries = sync::lock(&self.entries);
        let entry = entries.get(user)?;
        if entry.expires <= now || entry.generation != generation {
            entries.remove(user);
            return None;
        }
        bool::from(entry.fingerprint.ct_eq(&fingerprint)).then(|| entry.account.clone())
    }

    fn insert_at(
        &self,
        user: &str,
        password: &str,
        account: &Account,
        generation: u64,
        now: Instant,
    ) {
        // A TTL too large to add to the clock disables caching like zero.
        let ttl = self.ttl();
        let Some(expires) = now.checked_add(ttl).filter(|_| !ttl.is_zero()) else {
            return;
        };
        let entry = Entry {
            generation,
            fingerprint: self.fingerprint(user, password),
            expires,
            account: account.clone(),
        };
        let mut entries = sync::lock(&self.entries);
        if !entries.contains_key(user) {
            make_room(
                &mut entries,
                self.capacity,
                |e| e.expires <= now,
                |e| e.expires,
            );
        }
        entries.insert(user.to_owned(), entry);
    }

    fn fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.salt)
            .chain_update((user.len() as u64).to_le_bytes())
            .chain_update(user)
            .chain_update(password)
            .finalize()
            .into()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        sync::lock(&self.entries).len()
    }
}

impl fmt::Debug for LoginCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCache")
            .field("ttl", &self.ttl())
            .field("entries", &sync::lock(&self.entries).len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(user: &str) -> Account {
        Account::new(user, format!("/var/vmail/{user}"))
    }

    #[test]
    fn hit_needs_the_same_password() {
        let cache = LoginCache::new(Duration::from_secs(60), 10).unwrap();
        assert_eq!(cache.lookup("alice", "pw", 0), None);
        cache.insert("alice", "pw", &account("alice"), 0);
        assert_eq!(cache.lookup("alice", "pw", 0), Some(account("alice")));
        assert_eq!(cache.lookup("alice", "PW", 0), None);
        assert_eq!(cache.lookup("alice", "", 0), None);
        assert_eq!(cache.lookup("bob", "pw", 0), None);
        assert_eq!(
            cache.lookup("alice", "pw", 0),
            Some(account("alice")),
            "a miss keeps the entry"
        );
        cache.clear();
        assert_eq!(cache.lookup("alice", "pw", 0), None);
    }

    #[test]
    fn fingerprints_are_salted_and_separate_user_from_password() {
        let a = LoginCache::new(Duration::from_secs(60), 10).unwrap();
        let b = LoginCache::new(Duration::from_secs(60), 10).unwrap();
        assert_ne!(a.fingerprint("alice", "pw"), b.fingerprint("alice", "pw"));
        assert_ne!(a.fingerprint("ab", "c"), a.fingerprint("a", "bc"));
    }

    #[test]
    fn entries_expire() {
        let cache = LoginCache::new(Duration::from_secs(60), 10).unwrap();
        let now = Instant::now();
        cache.insert_at("alice", "pw", &account("alice"), 0, now);
        assert!(cache
            .lookup_at("alice", "pw", 0, now + Duration::from_secs(59))
            .is_some());
        assert!(cache
            .lookup_at("alice", "pw", 0, now + Duration::from_secs(60))
            .is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let cache = LoginCache::new(Duration::ZERO, 10).unwrap();
        cache.insert("alice", "pw", &account("alice"), 0);
        assert_eq!(cache.lookup("alice", "pw", 0), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_new_ttl_forgets_entries_made_under_the_old_one() {
        let cache = LoginCache::new(Duration::from_secs(600), 10).unwrap();
        cache.insert("alice", "pw", &account("alice"), 0);
        cache.set_ttl(Duration::from_secs(5));
        assert_eq!(cache.lookup("alice", "pw", 0), None);
        let now = Instant::now();
        cache.insert_at("alice", "pw", &account("alice"), 0, now);
        assert!(cache
            .lookup_at("alice", "pw", 0, now + Duration::from_secs(5))
            .is_none());
        cache.set_ttl(Duration::ZERO);
        cache.insert("alice", "pw", &account("alice"), 0);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_of_an_older_generation_never_hit() {
        let cache = LoginCache::new(Duration::from_secs(60), 10).unwrap();
        cache.insert("alice", "pw", &account("alice"), 1);
        assert_eq!(cache.lookup("alice", "pw", 2), None);
        assert_eq!(cache.len(), 0);
        cache.insert("alice", "pw", &account("alice"), 2);
        assert!(cache.lookup("alice", "pw", 2).is_some());
    }

    #[test]
    fn absurd_ttl_does_not_panic() {
        let cache = LoginCache::new(Duration::MAX, 10).unwrap();
        cache.insert("alice", "pw", &account("alice"), 0);
        assert_eq!(cache.lookup("alice", "pw", 0), None);
    }

    #[test]
    fn size_is_bounded() {
        let cache = LoginCache::new(Duration::from_secs(60), 50).unwrap();
        for i in 0..500 {
            let user = format!("user{i}");
            cache.insert(&user, "pw", &account(&user), 0);
            assert!(cache.len() <= 50);
        }
        assert!(
            cache.lookup("user499", "pw", 0).is_some(),
            "the newest entry stays"
        );
        let debug = format!("{cache:?}");
        assert!(!debug.contains("pw") && debug.contains("ttl"), "{debug}");
    }
}
