//! The login cache: what a client polling every minute pays per login.
//!
//! One htpasswd user with a bcrypt cost-12 hash (what `popgate passwd`
//! writes), verified over and over through the real [`Authenticator`]: once
//! with the cache on (`cache_ttl = 60s`: after the first login, a salted
//! SHA-256 fingerprint is compared instead of running bcrypt) and once with
//! it off (`cache_ttl = 0s`: bcrypt every time). Run:
//!
//! ```text
//! cargo bench --bench auth_cache
//! ```
//!
//! and divide the two times: the issue asks for at least 20×.

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use popgate_auth::{
    hash_password_bcrypt, AuthConfig, Authenticator, BackendConfig, Credentials, Verdict,
};

const COST: u32 = 12;

fn authenticator(dir: &tempfile::TempDir, cache_ttl: Duration) -> Authenticator {
    let path = dir.path().join("users.htpasswd");
    if !path.exists() {
        let hash = hash_password_bcrypt("poll every minute", COST).expect("bcrypt hash");
        std::fs::write(&path, format!("poller@example.com:{hash}\n")).expect("htpasswd written");
    }
    let mut config = AuthConfig::new(BackendConfig::Htpasswd { path });
    config.cache_ttl = cache_ttl;
    Authenticator::new(config).expect("authenticator")
}

fn repeated_logins(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = Credentials::new("poller@example.com", "poll every minute");
    let mut group = c.benchmark_group("login of one bcrypt cost-12 user");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let cached = authenticator(&dir, Duration::from_secs(60));
    group.bench_function("cache_ttl 60s", |b| {
        b.iter(|| {
            assert!(matches!(
                cached.verify(black_box(&credentials)),
                Verdict::Accepted(_)
            ))
        })
    });
    assert_eq!(cached.hash_verifications(), 1, "the cache must hold");

    let uncached = authenticator(&dir, Duration::ZERO);
    group.bench_function("cache_ttl 0s", |b| {
        b.iter(|| {
            assert!(matches!(
                uncached.verify(black_box(&credentials)),
                Verdict::Accepted(_)
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, repeated_logins);
criterion_main!(benches);
