//! Shards: connections are served on one single-threaded runtime per CPU,
//! and each stays on the shard that accepted it, from accept to close.
//!
//! A POP3 session is a chain of short steps, each woken by its socket: read
//! a command, open a file, write a reply, wait for the client. On tokio's
//! multi-threaded runtime many of those wake-ups also wake an idle sibling
//! worker to look for work to steal; it finds none and parks again. On a
//! host with few cores that sibling takes the CPU the clients and the
//! kernel need. Measured with one client fetching 1 MB messages on two
//! cores: the multi-threaded runtime made 6.4 futex calls per message, the
//! shards 0.2; the shards served 8.5 % more MB/s for 9 % less server CPU
//! (medians of seven interleaved runs; `docs/performance.md`), and as many
//! sessions per second. One thread alone would leave the other core to the
//! clients; one shard per CPU keeps both in use, as a server of one process
//! per core does.
//!
//! Every shard registers its own duplicate of every listening socket. The
//! kernel wakes the shards that are waiting on it, the first to call
//! `accept` gets the connection, and a shard busy with its sessions is not
//! waiting: new connections go to the idle ones, so the load balances by
//! what each shard is doing, not by a hash of addresses. (`SO_REUSEPORT`
//! would balance by hash, and would also let a second popgate started by
//! mistake share the ports silently instead of failing to bind.)
//!
//! What sessions share (the configuration snapshot, the limits, the login
//! gate, the session registry, the snapshot cache) was already shared
//! between threads, behind `Arc`. Each shard has its own pool of blocking
//! threads for the file work that may wait for the disk.

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Builder;
use tokio::sync::{oneshot, watch};
use tracing::warn;

/// How many shards to run: a count, not yet running.
#[derive(Debug, Clone, Copy)]
pub struct Shards {
    count: usize,
}

impl Shards {
    /// One shard per CPU this process may use (its affinity and cgroup
    /// quota count), at least one.
    pub fn for_this_host() -> Shards {
        let count = std::thread::available_parallelism().map_or(1, |count| count.get());
        Shards::new(count)
    }

    /// `count` shards (at least one).
    pub fn new(count: usize) -> Shards {
        Shards {
            count: count.max(1),
        }
    }

    /// How many shards there are.
    pub fn count(self) -> usize {
        self.count
    }

    /// Runs every shard on a thread of its own, which builds the shard's
    /// runtime. `prepare(shard)` is called here for each shard and gives
    /// what to do first inside that runtime (what it spawns runs there);
    /// the shard then serves until `finished` becomes true. What the first
    /// step held is dropped once it has run. A runtime is dropped on its
    /// own thread, never in async code, and dropping it waits for its
    /// blocking calls in flight (a QUIT's deletions among them), so none is
    /// cut off half-way.
    ///
    /// A shard that cannot be started is logged and left out; an error
    /// only when none could be.
    pub async fn start<F>(
        self,
        mut prepare: impl FnMut(usize) -> F,
        finished: &watch::Receiver<bool>,
    ) -> io::Result<Running>
    where
        F: FnOnce() + Send + 'static,
    {
        let mut threads = Vec::with_capacity(self.count);
        let mut serving = 0;
        let mut last_error = None;
        for shard in 0..self.count {
            let first = prepare(shard);
            let mut finished = finished.clone();
            let (started_tx, started_rx) = oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name(format!("popgate-shard-{shard}"))
                .spawn(move || {
                    let runtime = match Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    runtime.block_on(async move {
                        first();
                        crate::connection::stopped(&mut finished).await;
                    });
                });
            let started = match spawned {
                Ok(thread) => {
                    threads.push(thread);
                    started_rx
                        .await
                        .unwrap_or_else(|_| Err(io::Error::other("shard ended")))
                }
                Err(error) => Err(error),
            };
            match started {
                Ok(()) => serving += 1,
                Err(error) => {
                    warn!("cannot start shard {shard}: {error}");
                    last_error = Some(error);
                }
            }
        }
        match last_error {
            Some(error) if serving == 0 => Err(error),
            _ => Ok(Running { threads }),
        }
    }
}

/// The shards' threads, running.
#[derive(Debug)]
pub struct Running {
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits, off the async thread, until every shard has ended.
    pub async fn join(self) {
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test]
    async fn each_shard_runs_its_first_step_on_a_thread_of_its_own_until_finished() {
        let shards = Shards::new(2);
        assert_eq!(shards.count(), 2);
        let (seen_tx, seen_rx) = mpsc::channel();
        let (finished_tx, finished_rx) = watch::channel(false);
        let prepare = |shard: usize| {
            let seen = seen_tx.clone();
            move || {
                // Spawned here, so it runs on this shard's runtime.
                tokio::spawn(async move {
                    let thread = std::thread::current().name().map(str::to_owned);
                    seen.send((shard, thread)).unwrap();
                });
            }
        };
        let running = shards.start(prepare, &finished_rx).await.unwrap();
        let mut seen: Vec<_> = (0..2)
            .map(|_| seen_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (0, Some("popgate-shard-0".to_owned())),
                (1, Some("popgate-shard-1".to_owned())),
            ]
        );
        finished_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.join())
            .await
            .expect("the shards end once finished");
    }

    #[tokio::test]
    async fn a_shard_keeps_serving_until_finished() {
        let (finished_tx, finished_rx) = watch::channel(false);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = Some(listener);
        let prepare = |_| {
            let listener = listener.take().unwrap();
            move || {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::spawn(async move {
                    while let Ok((mut tcp, _)) = listener.accept().await {
                        use tokio::io::AsyncWriteExt;
                        let _ = tcp.write_all(b"+OK\r\n").await;
                    }
                });
            }
        };
        let running = Shards::new(1).start(prepare, &finished_rx).await.unwrap();
        for _ in 0..2 {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut greeting = [0u8; 5];
            tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut greeting)
                .await
                .unwrap();
            assert_eq!(&greeting, b"+OK\r\n");
        }
        finished_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.join())
            .await
            .expect("the shard ends once finished");
        // Its runtime is gone, and the listener with it.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
