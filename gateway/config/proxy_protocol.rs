//! `[proxy_protocol]`: which load balancers may tell popgate who the client is.
//!
//! Behind HAProxy (`send-proxy-v2`) every connection comes from the proxy's
//! address, so per-address limits, the login throttle and the fail2ban line
//! would all see the proxy. The PROXY protocol puts the client's address in
//! a short header before the first byte of POP3 or SMTP. Anyone can write
//! such a header, so popgate believes it only from the addresses listed
//! here — and from them it requires one:
//!
//! ```toml
//! [proxy_protocol]
//! trusted = ["10.0.0.5", "10.1.0.0/16"]
//! timeout = "5s"
//! ```
//!
//! An entry is an address (`10.0.0.5`, `2001:db8::5`) or a network in CIDR
//! form (`10.1.0.0/16`); a network with host bits set (`10.1.2.3/16`) is an
//! error rather than a guess. An IPv4 entry also matches the same address
//! seen as IPv4-mapped IPv6 (`::ffff:10.0.0.5`) on a dual-stack listener.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::{HumanDuration, SettingError};

/// `[proxy_protocol]`: the trusted proxies and how long each has to speak.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocolSettings {
    /// Addresses and networks whose connections must start with a PROXY
    /// header (v1 or v2); empty (the default) turns the PROXY protocol off.
    pub trusted: Vec<IpNetwork>,
    /// How long a trusted proxy has to send the whole header.
    pub timeout: HumanDuration,
}

impl Default for ProxyProtocolSettings {
    fn default() -> Self {
        ProxyProtocolSettings {
            trusted: Vec::new(),
            timeout: HumanDuration::from_secs(5),
        }
    }
}

impl ProxyProtocolSettings {
    /// Checks what has the right type but cannot work; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.timeout.0.is_zero() {
            return Err(SettingError::new(
                "proxy_protocol.timeout",
                "must be longer than zero".into(),
            ));
        }
        Ok(())
    }
}

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// True when `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let host_bits = width - u32::from(prefix);
    a.checked_shr(host_bits).unwrap_or(0) == b.checked_shr(host_bits).unwrap_or(0)
}

fn width(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network like 10.1.0.0/16"))?;
        let prefix = match prefix {
            None => width(addr),
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width(addr))
                .ok_or_else(|| {
                    format!("`{text}`: the prefix length must be 0 to {}", width(addr))
                })?,
        };
        let network = IpNetwork { addr, prefix };
        let masked = match addr {
            IpAddr::V4(a) => u32::from(a).into(),
            IpAddr::V6(a) => u128::from(a),
        };
        let host_bits = u32::from(width(addr) - prefix);
        if host_bits > 0 && masked.checked_shl(128 - host_bits).unwrap_or(0) != 0 {
            return Err(format!(
                "`{text}` has host bits set; write the network address it starts with"
            ));
        }
        Ok(network)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == width(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_matches_itself_only() {
        let one = net("10.0.0.5");
        assert!(one.contains(ip("10.0.0.5")));
        assert!(!one.contains(ip("10.0.0.6")));
        assert!(one.contains(ip("::ffff:10.0.0.5")), "IPv4-mapped");
        assert!(!one.contains(ip("::1")));
        let six = net("2001:db8::5");
        assert!(six.contains(ip("2001:db8::5")));
        assert!(!six.contains(ip("2001:db8::6")));
        assert!(!six.contains(ip("10.0.0.5")));
    }

    #[test]
    fn a_network_matches_its_prefix() {
        let v4 = net("10.1.0.0/16");
        assert!(v4.contains(ip("10.1.0.0")));
        assert!(v4.contains(ip("10.1.255.255")));
        assert!(!v4.contains(ip("10.2.0.0")));
        assert!(!v4.contains(ip("10.0.255.255")));
        let v6 = net("2001:db8:1::/48");
        assert!(v6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.7")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("10.1.2.3/32").contains(ip("10.1.2.3")));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for (text, reason) in [
            ("10.1.2.3/16", "host bits"),
            ("10.0.0.0/33", "0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("10.0.0.0/x", "prefix"),
            ("proxy.example.com", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let error = text.parse::<IpNetwork>().unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn entries_print_as_they_are_written() {
        for text in ["10.0.0.5", "10.1.0.0/16", "2001:db8::/32", "::/0"] {
            assert_eq!(net(text).to_string(), text);
        }
        assert_eq!(net("10.0.0.5/32").to_string(), "10.0.0.5");
    }
}
