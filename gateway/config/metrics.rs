//! `[metrics]`: the HTTP listener for Prometheus and Thunderbird's autoconfig.
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9187"
//! ```
//!
//! Without the section nothing is counted and no port is bound. The
//! endpoint has no authentication, and what it shows (how many logins fail,
//! how busy the server is) is for the admin, so it is refused on any address
//! but loopback (`127.0.0.0/8`, `::1`) unless `allow_public = true` says the
//! admin means it (a Prometheus on another host, behind a firewall). The
//! address is read at start only: a reload does not move the listener.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SettingError;

/// `[metrics]`: where `/metrics` and the autoconfig file are served.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// The HTTP listener's address.
    pub listen: SocketAddr,
    /// Serve on an address other than loopback.
    #[serde(default)]
    pub allow_public: bool,
}

impl MetricsSettings {
    /// Checks what has the right type but cannot be meant; the error names
    /// the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !self.listen.ip().to_canonical().is_loopback() && !self.allow_public {
            return Err(SettingError::new(
                "metrics.listen",
                format!(
                    "{} is not a loopback address, and the endpoint has no authentication: \
                     set `metrics.allow_public = true` to serve it there (behind a firewall)",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: &str, allow_public: bool) -> MetricsSettings {
        MetricsSettings {
            listen: listen.parse().unwrap(),
            allow_public,
        }
    }

    #[test]
    fn loopback_is_allowed_and_anything_else_needs_the_opt_in() {
        for loopback in [
            "127.0.0.1:9187",
            "127.1.2.3:0",
            "[::1]:9187",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(settings(loopback, false).validate(), Ok(()), "{loopback}");
        }
        for public in [
            "0.0.0.0:9187",
            "[::]:9187",
            "192.0.2.7:9187",
            "10.0.0.1:9187",
        ] {
            let error = settings(public, false).validate().unwrap_err();
            assert_eq!(error.key, "metrics.listen");
            assert!(error.message.contains("allow_public"), "{error}");
            assert_eq!(settings(public, true).validate(), Ok(()), "{public}");
        }
    }
}
