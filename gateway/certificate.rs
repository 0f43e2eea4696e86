//! What a TLS certificate says about itself, and what is wrong with it.
//!
//! Certificates expire, and a renewal that silently failed is found by the
//! users, whose clients stop fetching mail. `popgate check` reports the
//! certificate each listener serves, and the server warns in its log, at
//! start, after a reload and daily, while the certificate is within
//! [`WARN_DAYS`] of its end ([`crate::expiry_watch`]). Both read it here:
//!
//! - [`CertificateInfo::parse`] reads the subject, issuer, names (the
//!   subjectAltName's DNS names and IP addresses) and validity of a DER
//!   certificate, with `x509-parser`;
//! - [`CertificateInfo::expiry_problem`] says whether it expired, is not
//!   valid yet, or ends within a number of days; whole days are counted
//!   down, so "3 days left" means at least 3 × 24 hours;
//! - [`CertificateInfo::name_problem`] says whether it fails to name a
//!   host; the match is rustls' own (RFC 6125: subjectAltName only, a `*`
//!   only as the whole leftmost label, matching one label), the one
//!   clients apply.
//!
//! Subjects and names come from the certificate file, so whoever shows them
//! escapes them ([`crate::log_text::LogText`]).

use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, ServerName};
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

/// Within this many days of its end a certificate is reported: the default
/// of `popgate check --warn-days`, and the window of the server's warning.
pub const WARN_DAYS: u32 = 14;

const DAY: i64 = 24 * 60 * 60;

/// A certificate that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a readable X.509 certificate: {0}")]
pub struct CertificateError(String);

/// The facts of one certificate that an admin needs.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// The subject's distinguished name, as `CN=mail.example.com`.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The DNS names and IP addresses of the subjectAltName, in its order.
    pub names: Vec<String>,
    not_before: Moment,
    not_after: Moment,
    der: CertificateDer<'static>,
}

/// A point in time of the certificate: seconds since the epoch, and how
/// people read it.
#[derive(Debug, Clone)]
struct Moment {
    unix: i64,
    text: String,
}

impl Moment {
    fn of(time: &ASN1Time) -> Moment {
        let at = time.to_datetime();
        Moment {
            unix: time.timestamp(),
            text: format!("{} {:02}:{:02} UTC", at.date(), at.hour(), at.minute()),
        }
    }
}

/// `n days`, `1 day`, or `less than a day` for a count of seconds.
fn days(seconds: i64) -> String {
    match seconds / DAY {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl CertificateInfo {
    /// Reads a DER certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<CertificateInfo, CertificateError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CertificateError(e.to_string()))?;
        let alternative_names = certificate
            .subject_alternative_name()
            .map_err(|e| CertificateError(e.to_string()))?;
        let names = alternative_names
            .map(|extension| {
                extension
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(name) => Some((*name).to_owned()),
                        GeneralName::IPAddress(octets) => ip_address(octets),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = certificate.validity();
        Ok(CertificateInfo {
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            names,
            not_before: Moment::of(&validity.not_before),
            not_after: Moment::of(&validity.not_after),
            der: der.clone().into_owned(),
        })
    }

    /// Seconds from `now` to the end of the validity (negative: expired).
    fn seconds_left(&self, now: SystemTime) -> i64 {
        self.not_after.unix.saturating_sub(unix_seconds(now))
    }

    /// Whole days from `now` to the end of the validity (negative: expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        self.seconds_left(now).div_euclid(DAY)
    }

    /// What is wrong with the validity at `now`, counting a certificate that
    /// ends within `warn_days` as wrong: expired, not valid yet, or
    /// expiring soon. `None` when none of these.
    pub fn expiry_problem(&self, warn_days: u32, now: SystemTime) -> Option<String> {
        let left = self.seconds_left(now);
        let until = &self.not_after.text;
        if left <= 0 {
            Some(format!("expired {} ago ({until})", days(-left)))
        } else if self.not_before.unix > unix_seconds(now) {
            Some(format!("not valid before {}", self.not_before.text))
        } else if left < i64::from(warn_days) * DAY {
            Some(format!(
                "expires in {} ({until}), within {warn_days} days",
                days(left)
            ))
        } else {
            None
        }
    }

    /// Why clients connecting to `hostname` would refuse the certificate
    /// for its names; `None` when it names the host.
    pub fn name_problem(&self, hostname: &str) -> Option<String> {
        let names = if self.names.is_empty() {
            "no DNS names".to_owned()
        } else {
            self.names.join(", ")
        };
        let problem = || {
            Some(format!(
                "does not name hostname `{hostname}` (it names {names})"
            ))
        };
        let Ok(server_name) = ServerName::try_from(hostname) else {
            return problem();
        };
        let Ok(parsed) = rustls::server::ParsedCertificate::try_from(&self.der) else {
            return problem();
        };
        match rustls::client::verify_server_name(&parsed, &server_name) {
            Ok(()) => None,
            Err(_) => problem(),
        }
    }

    /// One line for people: subject, issuer, names, days left at `now`.
    pub fn describe(&self, now: SystemTime) -> String {
        let left = self.seconds_left(now);
        let validity = if left > 0 {
            format!("{} left (until {})", days(left), self.not_after.text)
        } else {
            format!("expired {}", self.not_after.text)
        };
        format!(
            "{subject}, issued by {issuer}, names {names}; {validity}",
            subject = self.subject,
            issuer = self.issuer,
            names = if self.names.is_empty() {
                "none".to_owned()
            } else {
                self.names.join(" ")
            },
        )
    }
}

/// An IP address of a subjectAltName, as text; `None` for a malformed one.
fn ip_address(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets)
            .ok()
            .map(|v4| std::net::Ipv4Addr::from(v4).to_string()),
        16 => <[u8; 16]>::try_from(octets)
            .ok()
            .map(|v6| std::net::Ipv6Addr::from(v6).to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A self-signed certificate for `names` (the first is also the CN):
    /// its PEM, its key's PEM and its DER. Valid from two days ago until
    /// `expires` gives for the present moment.
    pub(crate) fn certificate(
        names: &[&str],
        expires: impl FnOnce(SystemTime) -> SystemTime,
    ) -> (String, String, CertificateDer<'static>) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(2 * DAY as u64)).into();
        params.not_after = expires(now).into();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn in_days(days: u64, hours: u64) -> impl FnOnce(SystemTime) -> SystemTime {
        move |now| now + Duration::from_secs(days * DAY as u64 + hours * 3600)
    }

    /// Caught: days counted from the wrong end, a window that lets a
    /// certificate ending in 3 days pass, and an expired one shown as valid.
    #[test]
    fn the_days_left_decide_against_the_window() {
        let now = SystemTime::now();
        let (_, _, der) = certificate(&["mail.example.com"], in_days(3, 6));
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.days_left(now), 3);
        let problem = info.expiry_problem(WARN_DAYS, now).unwrap();
        assert!(
            problem.starts_with("expires in 3 days (") && problem.ends_with("within 14 days"),
            "{problem}"
        );
        assert_eq!(info.expiry_problem(3, now), None);
        assert_eq!(info.expiry_problem(0, now), None);

        let (_, _, der) = certificate(&["mail.example.com"], in_days(80, 6));
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.expiry_problem(WARN_DAYS, now), None);
        let line = info.describe(now);
        assert!(
            line.starts_with("CN=mail.example.com, issued by CN=mail.example.com, names mail.example.com; 80 days left (until "),
            "{line}"
        );

        let (_, _, der) = certificate(&["mail.example.com"], |now| {
            now - Duration::from_secs(DAY as u64 + 60)
        });
        let info = CertificateInfo::parse(&der).unwrap();
        let problem = info.expiry_problem(0, now).unwrap();
        assert!(problem.starts_with("expired 1 day ago ("), "{problem}");
        assert!(
            info.describe(now).contains("; expired "),
            "{}",
            info.describe(now)
        );
    }

    /// RFC 6125 as clients apply it. Caught: a plain string comparison
    /// (no wildcards) or a suffix match (`*` over several labels).
    #[test]
    fn names_match_as_clients_match_them() {
        let (_, _, der) = certificate(&["*.example.com", "127.0.0.1"], in_days(80, 0));
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.names, ["*.example.com", "127.0.0.1"]);
        assert_eq!(info.name_problem("mail.example.com"), None);
        assert_eq!(info.name_problem("MAIL.Example.com"), None);
        assert_eq!(info.name_problem("127.0.0.1"), None);
        for other in [
            "example.com",
            "a.mail.example.com",
            "mail.example.org",
            "x y",
        ] {
            let problem = info.name_problem(other).unwrap();
            assert!(
                problem.contains(&format!("hostname `{other}`"))
                    && problem.contains("*.example.com, 127.0.0.1"),
                "{problem}"
            );
        }
    }
}
