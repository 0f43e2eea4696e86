//! A limit on cold logins: sessions that read message files to learn their
//! sizes.
//!
//! The first login on a big Maildir without a size cache reads every
//! message once (100,000 messages can be more than a gigabyte). Memory stays
//! bounded, since [`wire_size`](crate::wire::wire_size) streams each file
//! in 64 KiB pieces, but many such logins at once would take all the disk
//! bandwidth and all of the gateway's blocking threads, starving the warm
//! logins that need neither. So at most [`MAX_COLD_BUILDS`] sessions of the
//! process compute sizes at the same time; the others wait their turn
//! before their first read (they hold their mailbox lock meanwhile, as they
//! would while reading). Warm logins never come here.
//!
//! No session waits for a place without bound: a login has a deadline
//! (the gateway's `login_deadline`), and [`Limiter::enter`] gives up when
//! it passes, as the sizing itself does between reads (see `sizing`), so a
//! mailbox whose files are slow to read holds a place only until its own
//! login's deadline.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// How many sessions may compute sizes at once.
pub(crate) const MAX_COLD_BUILDS: usize = 2;

/// The process-wide limiter.
pub(crate) static COLD_BUILDS: Limiter = Limiter::new(MAX_COLD_BUILDS);

/// A counting semaphore for blocking threads.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: usize,
    busy: Mutex<usize>,
    freed: Condvar,
}

/// A place taken in a [`Limiter`]; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    limiter: &'a Limiter,
}

impl Limiter {
    /// A limiter letting `limit` holders in at once.
    pub(crate) const fn new(limit: usize) -> Limiter {
        Limiter {
            limit,
            busy: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free place and takes it; `None` when `deadline` passes
    /// first (`None` as the deadline: wait as long as it takes).
    pub(crate) fn enter(&self, deadline: Option<Instant>) -> Option<Permit<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy >= self.limit {
            busy = match deadline {
                None => self
                    .freed
                    .wait(busy)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    self.freed
                        .wait_timeout(busy, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *busy += 1;
        Some(Permit { limiter: self })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .limiter
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *busy = busy.saturating_sub(1);
        self.limiter.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn never_more_than_the_limit_inside() {
        let limiter = Arc::new(Limiter::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (limiter, inside, most) = (limiter.clone(), inside.clone(), most.clone());
                thread::spawn(move || {
                    let _permit = limiter.enter(None);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(30));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(*limiter.busy.lock().unwrap(), 0);
    }

    #[test]
    fn a_wait_stops_at_its_deadline_and_a_freed_place_is_taken() {
        let limiter = Arc::new(Limiter::new(1));
        let held = limiter.enter(None);
        assert!(held.is_some());
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        assert!(limiter.enter(Some(deadline)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        // A deadline already passed does not wait at all.
        assert!(limiter.enter(Some(started)).is_none());
        assert_eq!(*limiter.busy.lock().unwrap(), 1);

        // A place freed before the deadline is taken.
        let waiter = {
            let limiter = limiter.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                limiter.enter(Some(deadline)).is_some()
            })
        };
        thread::sleep(Duration::from_millis(50));
        drop(held);
        assert!(matches!(waiter.join(), Ok(true)));
        assert_eq!(*limiter.busy.lock().unwrap(), 0);
    }
}
