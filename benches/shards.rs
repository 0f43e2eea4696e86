//! One request and its 1 MiB reply over loopback, answered by a task on a
//! shard (a single-threaded runtime, as popgate serves connections since
//! issue 15) and by the same task on a two-worker work-stealing runtime (as
//! it served them before). The client is a plain blocking socket on a thread
//! of its own, as a POP3 client is a process of its own.
//!
//! The work is the same; what differs is how many threads each wake-up
//! touches: on the work-stealing runtime a woken task often wakes the idle
//! sibling worker too, which finds nothing to steal and parks again. A
//! 1 MiB reply fills the socket's buffer, so the writer waits for room and
//! is woken several times per reply, as a RETR of a big message is: there
//! the shard answered in 140 µs and the work-stealing runtime in 225 µs.
//! With 64 KiB replies, one wake-up each, both took 24 µs.
//!
//! ```text
//! cargo bench --bench shards
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::shards::Shards;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const REPLY: usize = 1024 * 1024;

/// Answers every line-sized request on each connection with `REPLY` octets.
async fn serve(listener: TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    while let Ok((mut tcp, _)) = listener.accept().await {
        tcp.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let reply = vec![b'x'; REPLY];
            let mut request = [0u8; 64];
            while matches!(tcp.read(&mut request).await, Ok(n) if n > 0) {
                if tcp.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn round_trip(client: &mut TcpStream, reply: &mut [u8]) {
    client.write_all(b"RETR 1\r\n").unwrap();
    client.read_exact(reply).unwrap();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("runtime/request_and_1m_reply");
    group.throughput(Throughput::Bytes(REPLY as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut reply = vec![0u8; REPLY];

    let (shard_listener, shard_addr) = listener();
    let (finished_tx, finished_rx) = watch::channel(false);
    let starter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut shard_listener = Some(shard_listener);
    let running = starter
        .block_on(Shards::new(1).start(
            |_| {
                let listener = shard_listener.take().unwrap();
                move || {
                    tokio::spawn(serve(listener));
                }
            },
            &finished_rx,
        ))
        .unwrap();
    let mut client = TcpStream::connect(shard_addr).unwrap();
    client.set_nodelay(true).unwrap();
    group.bench_function("shard", |b| b.iter(|| round_trip(&mut client, &mut reply)));
    drop(client);
    finished_tx.send(true).unwrap();
    starter.block_on(running.join());

    let stealing = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stealing_listener, stealing_addr) = listener();
    stealing.spawn(async move { serve(stealing_listener).await });
    let mut client = TcpStream::connect(stealing_addr).unwrap();
    client.set_nodelay(true).unwrap();
    group.bench_function("work-stealing", |b| {
        b.iter(|| round_trip(&mut client, &mut reply))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
