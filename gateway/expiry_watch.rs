//! The log warning of a served certificate near its end.
//!
//! A renewal that failed (certbot's timer broken, a hook that never sent
//! SIGHUP) is found long before users' clients refuse the server: while
//! the certificate popgate serves is within [`WARN_DAYS`] of its end, or
//! past it, the server logs one warning at start, after each reload and
//! once every [`PERIOD`] (a day). Each check asks the
//! [`TlsProvider`] for the certificate it serves at that moment, so after a
//! reload the new certificate is what counts.
//!
//! [`watch()`] takes the period and hands each check's outcome to a callback:
//! the server logs the warnings; the tests drive it with a short period and
//! see every outcome, warnings and all-clears alike.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::certificate::{CertificateInfo, WARN_DAYS};
use crate::connection::stopped;
use crate::log_text::LogText;
use crate::tls::TlsProvider;

/// How often the certificate is checked again while the server runs.
pub const PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// The warning about the certificate `tls` serves at `now`, if it expires
/// within [`WARN_DAYS`] (or expired, or is not valid yet).
pub fn warning(tls: &TlsProvider, now: SystemTime) -> Option<String> {
    match CertificateInfo::parse(&tls.certificate()) {
        Ok(info) => info.expiry_problem(WARN_DAYS, now).map(|problem| {
            format!(
                "TLS certificate {subject} {problem}: renew it, then reload popgate (SIGHUP)",
                subject = LogText(&info.subject)
            )
        }),
        Err(error) => Some(format!(
            "TLS certificate: {error}; its expiry cannot be watched"
        )),
    }
}

/// Checks the served certificate at once and then every `period` until
/// `shutdown`, handing each check's [`warning`] (or `None`) to `report`.
pub async fn watch(
    tls: Arc<TlsProvider>,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut report: impl FnMut(Option<String>),
) {
    loop {
        report(warning(&tls, SystemTime::now()));
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::tests::certificate;
    use tokio::sync::mpsc;

    const DAY: u64 = 24 * 60 * 60;

    /// The outcome of the watch's next check.
    async fn next(outcomes: &mut mpsc::UnboundedReceiver<Option<String>>) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
            .await
            .expect("a check within 10 s")
            .expect("the watch is running")
    }

    /// The daily repeat, and a reload that ends it. Caught: a warning only
    /// at start, and a watch that keeps judging the certificate loaded at
    /// start after a renewal was reloaded.
    #[tokio::test]
    async fn the_warning_repeats_each_period_until_a_renewed_certificate_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let write = |expires_in: u64| {
            let (pem, key_pem, _) = certificate(&["mail.example.com"], |now| {
                now + Duration::from_secs(expires_in)
            });
            std::fs::write(&cert, pem).unwrap();
            std::fs::write(&key, key_pem).unwrap();
        };
        write(3 * DAY + 3600);
        let tls = Arc::new(TlsProvider::load(&cert, &key).unwrap());
        let (stop, shutdown) = watch::channel(false);
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        let task = tokio::spawn(watch(
            tls.clone(),
            Duration::from_millis(20),
            shutdown,
            move |outcome| {
                let _ = tx.send(outcome);
            },
        ));
        for _ in 0..2 {
            let warning = next(&mut outcomes).await.expect("a warning");
            assert!(
                warning.starts_with("TLS certificate CN=mail.example.com expires in 3 days"),
                "{warning}"
            );
        }
        write(90 * DAY);
        tls.reload().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while next(&mut outcomes).await.is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "still warning 10 s after the renewed certificate was reloaded"
            );
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the watch ends at shutdown")
            .unwrap();
    }
}
