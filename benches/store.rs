//! Opening a Maildir: the snapshot STAT waits for after a login.
//!
//! * `open/100k/warm-cache`: 100,000 messages whose sizes come from the
//!   size cache (`popgate-sizes`), as on every login after the first;
//! * `open/100k/sizes-in-names`: the same messages named with `,W=`
//!   sizes, so no cache is read. The difference between the two is the cost
//!   of loading the size cache, which has no public API of its own;
//! * `open/100k/dovecot-uidlist`: the same messages with a Dovecot
//!   `dovecot-uidlist` (a migrated Maildir), which gives every UIDL and
//!   size;
//! * `uidls/100k/names` and `uidls/100k/dovecot-uidlist`: every UIDL of an
//!   open snapshot, as UIDL lists them, from the names and from Dovecot's
//!   list;
//! * `open/10k/cold`: 10,000 messages and no size cache, so every message
//!   is read once to compute its size (the files themselves are in the page
//!   cache: this is the first login, not a cold disk);
//! * `open/20/listed` and `open/20/reused`: a mailbox of 20 messages, as a
//!   client that leaves mail on the server polls, opened by listing it
//!   (`Mailbox::open`) and from the snapshot the last login kept
//!   (`Mailbox::open_nowait`); `open/100k/reused` is the latter on 100,000
//!   messages.
//!
//! The Maildirs are generated once per run in a temporary directory.
//!
//! ```text
//! cargo bench --bench store
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use popgate_store::{Mailbox, OpenOptions, SnapshotCache, SIZE_CACHE_FILE};

/// A small message with LF line ends (its wire size is 4 octets more).
const MESSAGE: &[u8] =
    b"From: a@example.com\nTo: b@example.com\nSubject: bench\n\nHello,\nworld.\n";

/// Creates a Maildir of `count` messages in `root`, with `,W=` sizes in
/// the names when `sizes_in_names`.
fn maildir(root: &Path, count: usize, sizes_in_names: bool) {
    for dir in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(dir)).expect("creating the Maildir");
    }
    let wire = MESSAGE.len() + 4;
    for i in 0..count {
        let sizes = if sizes_in_names {
            format!(",S={},W={wire}", MESSAGE.len())
        } else {
            String::new()
        };
        let name = format!("{}.M{i}P42.bench{sizes}:2,S", 1_700_000_000 + i);
        fs::write(root.join("cur").join(name), MESSAGE).expect("writing a message");
    }
}

/// Writes the `dovecot-uidlist` Dovecot would have left for the messages
/// of [`maildir`] (`count` of them, without sizes in the names).
fn dovecot_uidlist(root: &Path, count: usize) {
    let wire = MESSAGE.len() + 4;
    let mut text = format!("3 V1700000000 N{} G0123\n", count + 1);
    for i in 0..count {
        let name = format!("{}.M{i}P42.bench", 1_700_000_000 + i);
        text.push_str(&format!("{} W{wire} :{name}:2,S\n", i + 1));
    }
    fs::write(root.join("dovecot-uidlist"), text).expect("writing dovecot-uidlist");
}

fn open(root: &Path) -> Mailbox {
    let mailbox = Mailbox::open(root, &OpenOptions::default()).expect("opening the Maildir");
    assert!(!mailbox.is_empty());
    mailbox
}

/// Sets the times of the Maildir's directories an hour back, as on a
/// mailbox nothing happened to lately, so a login keeps its snapshot.
fn settle(root: &Path) {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for dir in [root.to_path_buf(), root.join("cur"), root.join("new")] {
        fs::File::open(dir)
            .and_then(|dir| dir.set_modified(an_hour_ago))
            .expect("setting a directory's time");
    }
}

/// Options that keep snapshots in `cache`.
fn caching(cache: &Arc<SnapshotCache>) -> OpenOptions {
    OpenOptions {
        snapshots: Some(Arc::clone(cache)),
        ..OpenOptions::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let warm = dir.path().join("warm");
    let named = dir.path().join("named");
    let cold = dir.path().join("cold");
    let migrated = dir.path().join("migrated");
    maildir(&warm, 100_000, false);
    maildir(&named, 100_000, true);
    maildir(&migrated, 100_000, false);
    dovecot_uidlist(&migrated, 100_000);
    maildir(&cold, 10_000, false);
    let polled = dir.path().join("polled");
    maildir(&polled, 20, false);
    // Sizes cached and the lock file made, then nothing changes.
    drop(open(&polled));
    drop(open(&warm));
    settle(&polled);
    settle(&warm);
    let cache = Arc::new(SnapshotCache::default());
    for root in [&polled, &warm] {
        drop(Mailbox::open(root, &caching(&cache)).expect("opening the Maildir"));
        assert!(Mailbox::open_nowait(root, &caching(&cache)).is_some());
    }
    // The first open computes the sizes and writes the cache.
    drop(open(&warm));
    assert!(warm.join(SIZE_CACHE_FILE).exists());
    assert_eq!(open(&named).size(0), Some(MESSAGE.len() as u64 + 4));
    assert_eq!(open(&migrated).uidl(0), Some(&b"000000016553f100"[..]));

    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("open/100k/warm-cache", |b| {
        b.iter(|| black_box(open(&warm)))
    });
    group.bench_function("open/100k/sizes-in-names", |b| {
        b.iter(|| black_box(open(&named)))
    });
    group.bench_function("open/100k/dovecot-uidlist", |b| {
        b.iter(|| black_box(open(&migrated)))
    });
    for (name, root) in [
        ("uidls/100k/names", &warm),
        ("uidls/100k/dovecot-uidlist", &migrated),
    ] {
        let mailbox = open(root);
        let mut out = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for uidl in (0..mailbox.len()).filter_map(|index| mailbox.uidl(index)) {
                    out.extend_from_slice(uidl);
                    out.push(b'\n');
                }
                out.len()
            })
        });
    }
    group.bench_function("open/10k/cold", |b| {
        b.iter_batched(
            || {
                let _ = fs::remove_file(cold.join(SIZE_CACHE_FILE));
            },
            |()| black_box(open(&cold)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("open/20/listed", |b| b.iter(|| black_box(open(&polled))));
    for (name, root) in [("open/20/reused", &polled), ("open/100k/reused", &warm)] {
        let options = caching(&cache);
        group.bench_function(name, |b| {
            b.iter(|| black_box(Mailbox::open_nowait(root, &options).expect("reused")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
