//! File descriptors: how many popgate needs for `max_connections`, raising
//! its own limit to that at start, the listen backlog, and what the accept
//! loops do when descriptors run out anyway.
//!
//! # How many
//!
//! A connection holds up to [`PER_CONNECTION`] descriptors at once: its socket;
//! the mailbox lock of a logged-in POP3 session (an open file, since the lock
//! is an open file description lock); the message RETR or TOP is sending; and,
//! in a session that has had to wait for the disk, for a moment the next
//! message, while the kernel is asked to load it (see
//! `popgate_store::prefetch`). A submission session holds its socket and, while
//! it hands a message on, the relay's connection or the file it delivers into.
//! On top of that the process keeps [`RESERVE`] for itself: the listeners, the
//! runtime's epoll and wake-up descriptors, the signal pipe, the metrics and
//! control sockets, and what logins open for a moment beside their socket (a
//! Maildir's directories while its snapshot is taken, PAM's files and sockets
//! on the blocking threads). `max_connections` counts every service's
//! connections together, so [`needed`] is `4 × max_connections + 256`: 40,256
//! for the default 10,000.
//!
//! # Raising the limit
//!
//! A shell's soft limit is usually 1,024, below what the default
//! `max_connections` needs, while its hard limit is far higher. At start
//! [`raise_soft_limit`] raises the soft limit to [`needed`], never past the
//! hard limit and never downwards, as systemd advises programs that need many
//! descriptors to do. It leaves the hard limit alone even as root: the hard
//! limit is the administrator's ceiling (`LimitNOFILE=` in a systemd unit,
//! `ulimit -Hn`, limits.conf) and popgate does not overrule it. When the
//! hard limit is below the need, the caller warns once with both figures and
//! what to set. popgate's own I/O goes through epoll, never `select`
//! (which cannot watch descriptors above 1,023), so a high limit is safe for
//! it; libraries loaded into it, such as PAM modules, are expected to use
//! `poll` as current ones do.
//!
//! # The listen backlog
//!
//! Pollers arrive together (every poller of a site at the top of the minute,
//! every client after a network blip). Connections the accept loop has not
//! taken yet wait in the listener's queue; once it is full the kernel drops
//! further SYNs and those clients retry only after a second, then three,
//! then seven. [`listen_backlog`] gives every listener room for
//! `max_connections` (any one listener may receive all of them; each has a
//! queue of its own) as far as the kernel's `net.core.somaxconn` allows. The
//! queue costs nothing until connections wait in it.
//!
//! # Running out anyway
//!
//! When accept fails for want of descriptors (`EMFILE`, `ENFILE`) or kernel
//! memory, the connection stays in the listen queue. The accept loop waits
//! ([`Backoff`]: 10 ms, doubling to 1 s, back to 10 ms after an accept) and
//! tries again, so it neither spins nor gives up; sessions already open carry
//! on; a [`Shortage`] shared by all listeners makes the whole episode one
//! warning when it starts and one line when it ends.
//!
//! popgate does not keep a spare descriptor to accept and turn away
//! connections while it is out of them. A client waiting in the queue is
//! served as soon as any session ends, which at the scale of polling clients
//! is seconds; one turned away has failed its poll (Thunderbird reports
//! it). And the trick is unreliable in a multi-threaded process: the
//! descriptor freed for the accept can be taken first by a session opening a
//! message on another thread.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors one connection may hold at once (see the module header).
pub const PER_CONNECTION: u64 = 4;

/// Descriptors the process keeps besides its connections.
pub const RESERVE: u64 = 256;

/// Descriptors popgate needs to serve `max_connections` connections.
pub fn needed(max_connections: usize) -> u64 {
    u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(PER_CONNECTION)
        .saturating_add(RESERVE)
}

/// What the descriptor limit is after [`raise_soft_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The soft limit already covered the need; nothing was changed.
    Enough {
        /// The soft limit.
        soft: u64,
        /// What `max_connections` needs.
        needed: u64,
    },
    /// The soft limit was raised to the need.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now: the need.
        to: u64,
    },
    /// The hard limit is below the need; the soft limit is now the hard one.
    Short {
        /// The soft limit before.
        from: u64,
        /// The hard limit, and now the soft one too.
        hard: u64,
        /// What `max_connections` needs.
        needed: u64,
    },
}

impl Limit {
    /// The decision for a process whose limits are `soft` and `hard`.
    fn plan(soft: u64, hard: u64, needed: u64) -> Limit {
        if soft >= needed {
            Limit::Enough { soft, needed }
        } else if hard >= needed {
            Limit::Raised {
                from: soft,
                to: needed,
            }
        } else {
            Limit::Short {
                from: soft,
                hard,
                needed,
            }
        }
    }

    /// The soft limit the plan wants, when it wants a change.
    fn new_soft(self) -> Option<u64> {
        match self {
            Limit::Enough { .. } => None,
            Limit::Raised { to, .. } => Some(to),
            Limit::Short { from, hard, .. } => (hard > from).then_some(hard),
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` towards what
/// `max_connections` needs, up to the hard limit, and says what it did.
///
/// Errors: the operating system's, when the limits cannot be read or set.
pub fn raise_soft_limit(max_connections: usize) -> Result<Limit, Errno> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let limit = Limit::plan(soft, hard, needed(max_connections));
    if let Some(new_soft) = limit.new_soft() {
        setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard)?;
    }
    Ok(limit)
}

/// The current soft descriptor limit, for messages.
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// The kernel's ceiling on a listen backlog (`net.core.somaxconn`, per
/// network namespace), when it can be read.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The backlog each listener asks for: `max_connections`, capped by the
/// kernel's `somaxconn` when known (the kernel would cap it silently anyway;
/// capping here keeps the logged figure true).
pub fn listen_backlog(max_connections: usize, somaxconn: Option<u32>) -> u32 {
    let wanted = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let ceiling = somaxconn.unwrap_or(u32::MAX).min(i32::MAX as u32);
    wanted.min(ceiling).max(1)
}

/// True when a failed accept concerns only the connection it would have
/// returned (aborted before it was taken, or one of the network errors
/// accept(2) says to treat like `EAGAIN`): the next accept may go ahead at once.
pub fn is_per_connection(error: &io::Error) -> bool {
    let Some(raw) = error.raw_os_error() else {
        return false;
    };
    matches!(
        Errno::from_raw(raw),
        Errno::ECONNABORTED
            | Errno::ECONNRESET
            | Errno::EPROTO
            | Errno::EPERM
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::EINTR
    )
}

/// True when a failed accept means this process is at its own descriptor
/// limit (`EMFILE`), as opposed to the whole system (`ENFILE`).
pub fn is_at_own_limit(error: &io::Error) -> bool {
    error.raw_os_error().map(Errno::from_raw) == Some(Errno::EMFILE)
}

/// How long one accept loop waits before trying again after a failure:
/// the mail listeners', the metrics port's and the control socket's.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(10);
    /// The longest wait: how late, at most, a queued client is noticed
    /// after descriptors free up.
    pub const LONGEST: Duration = Duration::from_secs(1);

    /// A backoff that starts at [`Backoff::FIRST`].
    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The wait after one more failure: twice the last, up to [`Backoff::LONGEST`].
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::LONGEST);
        wait
    }

    /// Starts again from [`Backoff::FIRST`] (after a successful accept).
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// One process-wide record of accepts failing, so that an episode is logged
/// once however long it lasts and however many accept loops run into it
/// (every listener has one per [shard](crate::shards)). A shortage that
/// comes back within [`Shortage::QUIET`] of the last one's end is the same
/// trouble flapping at the limit (loops on other shards can take the
/// descriptors one loop's success just found): it is recorded but logged
/// neither when it starts nor when it ends.
#[derive(Debug)]
pub struct Shortage {
    /// Whether an episode is open: read on every accept without locking.
    active: AtomicBool,
    state: Mutex<ShortageState>,
    quiet: Duration,
}

#[derive(Debug, Default)]
struct ShortageState {
    open: Option<Episode>,
    last_end: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    failures: u64,
    /// Its start was logged, so its end is too.
    logged: bool,
}

/// A shortage that has ended: how long it lasted and how many accepts failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// From the first failed accept to the first successful one.
    pub lasted: Duration,
    /// Accept attempts that failed meanwhile, over all listeners.
    pub failures: u64,
}

impl Shortage {
    /// How long after a shortage ends another one goes unlogged.
    pub const QUIET: Duration = Duration::from_secs(10);

    /// A record whose episodes go unlogged within `quiet` of the last one.
    pub fn new(quiet: Duration) -> Self {
        Shortage {
            active: AtomicBool::new(false),
            state: Mutex::default(),
            quiet,
        }
    }

    /// Records a failed accept; true when it starts an episode to log
    /// (warn then).
    pub fn failed(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = state.open.as_mut() {
            open.failures += 1;
            return false;
        }
        let logged = state.last_end.is_none_or(|end| end.elapsed() >= self.quiet);
        state.open = Some(Episode {
            since: Instant::now(),
            failures: 1,
            logged,
        });
        self.active.store(true, Ordering::Release);
        logged
    }

    /// Records a successful accept; the episode it ends, if one was open
    /// and its start was logged.
    pub fn accepted(&self) -> Option<Ended> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = state.open.take()?;
        state.last_end = Some(Instant::now());
        self.active.store(false, Ordering::Release);
        open.logged.then(|| Ended {
            lasted: open.since.elapsed(),
            failures: open.failures,
        })
    }
}

impl Default for Shortage {
    /// Quiet for [`Shortage::QUIET`] after each episode.
    fn default() -> Self {
        Shortage::new(Shortage::QUIET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_is_four_per_connection_and_a_reserve() {
        assert_eq!(needed(10_000), 40_256);
        assert_eq!(needed(0), RESERVE);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_need_never_past_the_hard_one_nor_down() {
        assert_eq!(
            Limit::plan(1024, 524_288, 40_256),
            Limit::Raised {
                from: 1024,
                to: 40_256
            }
        );
        assert_eq!(Limit::plan(1024, 524_288, 40_256).new_soft(), Some(40_256));
        let short = Limit::plan(1024, 4096, 40_256);
        assert_eq!(
            short,
            Limit::Short {
                from: 1024,
                hard: 4096,
                needed: 40_256
            }
        );
        assert_eq!(short.new_soft(), Some(4096));
        assert_eq!(Limit::plan(4096, 4096, 40_256).new_soft(), None);
        let enough = Limit::plan(65_536, 65_536, 40_256);
        assert!(matches!(enough, Limit::Enough { soft: 65_536, .. }));
        assert_eq!(enough.new_soft(), None);
    }

    #[test]
    fn the_backlog_is_max_connections_within_somaxconn() {
        assert_eq!(listen_backlog(10_000, Some(4096)), 4096);
        assert_eq!(listen_backlog(3000, Some(4096)), 3000);
        assert_eq!(listen_backlog(10_000, None), 10_000);
        assert_eq!(listen_backlog(usize::MAX, None), i32::MAX as u32);
        assert_eq!(listen_backlog(0, Some(4096)), 1);
    }

    #[test]
    fn the_backoff_doubles_to_a_second_and_starts_over_after_an_accept() {
        let mut backoff = Backoff::new();
        let waits: Vec<u128> = (0..9).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(10));
    }

    #[test]
    fn a_shortage_is_reported_once_when_it_starts_and_once_when_it_ends() {
        let shortage = Shortage::new(Duration::ZERO);
        assert_eq!(shortage.accepted(), None);
        assert!(shortage.failed());
        assert!(!shortage.failed());
        assert!(!shortage.failed());
        let ended = shortage.accepted().unwrap();
        assert_eq!(ended.failures, 3);
        assert_eq!(shortage.accepted(), None);
        assert!(shortage.failed(), "a new episode starts afresh");
    }

    #[test]
    fn a_shortage_back_within_the_quiet_time_is_not_reported_again() {
        let shortage = Shortage::new(Duration::from_secs(3600));
        assert!(shortage.failed());
        assert!(shortage.accepted().is_some());
        assert!(!shortage.failed(), "flapping: not warned again");
        assert!(!shortage.failed());
        assert_eq!(shortage.accepted(), None, "nor its end told");
        assert_eq!(shortage.accepted(), None);
    }

    #[test]
    fn errors_are_told_apart() {
        let os = |errno: Errno| io::Error::from_raw_os_error(errno as i32);
        assert!(is_at_own_limit(&os(Errno::EMFILE)));
        assert!(!is_at_own_limit(&os(Errno::ENFILE)));
        assert!(!is_per_connection(&os(Errno::EMFILE)));
        assert!(!is_per_connection(&os(Errno::ENOBUFS)));
        assert!(is_per_connection(&os(Errno::ECONNABORTED)));
        assert!(!is_per_connection(&io::Error::other("no errno")));
    }
}
