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

use std::sync::{Condvar, Mutex, PoisonError};

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

    /// Waits for a free place and takes it.
    pub(crate) fn enter(&self) -> Permit<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy >= self.limit {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *busy += 1;
        Permit { limiter: self }
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
                    let _permit = limiter.enter();
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
}
