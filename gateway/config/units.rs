//! The two value types the configuration writes as text: durations ("60s",
//! "10m", "1h 30m") and sizes ("35M", "512K", or a plain number of octets).
//!
//! Both deserialize from a string, and sizes also from a bare integer, so a
//! key reads naturally in TOML and can still be overridden from the
//! environment, where every value arrives as text.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written the human way: `"60s"`, `"10m"`, `"2h"`, `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "`{text}` is not a duration like \"60s\" or \"10m\": {e}"
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

/// A size in octets, written as a number or with a binary suffix:
/// `"35M"` is 35 × 1024 × 1024 octets, `"512K"`, `"1G"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"35M"`, `"512k"`, `"1G"`, `"4096"` (case-insensitive, an
    /// optional trailing `B`, as in `"35MB"`).
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let upper = text.to_ascii_uppercase();
        let upper = upper.strip_suffix('B').unwrap_or(&upper);
        let (digits, multiplier) = match upper.char_indices().last() {
            Some((i, 'K')) => (&upper[..i], 1u64 << 10),
            Some((i, 'M')) => (&upper[..i], 1 << 20),
            Some((i, 'G')) => (&upper[..i], 1 << 30),
            _ => (upper, 1),
        };
        let number: u64 = digits.trim().parse().ok()?;
        number.checked_mul(multiplier).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n != 0 && n % (1 << 30) == 0 => write!(f, "{}G", n >> 30),
            n if n != 0 && n % (1 << 20) == 0 => write!(f, "{}M", n >> 20),
            n if n != 0 && n % (1 << 10) == 0 => write!(f, "{}K", n >> 10),
            n => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 35M, 512K or a number of octets")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "`{v}` is not a size like 35M, 512K or a number of octets"
                    ))
                })
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_suffix() {
        assert_eq!(ByteSize::parse("35M"), Some(ByteSize(35 << 20)));
        assert_eq!(ByteSize::parse("35MB"), Some(ByteSize(35 << 20)));
        assert_eq!(ByteSize::parse("512k"), Some(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("1G"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("4096"), Some(ByteSize(4096)));
        assert_eq!(ByteSize::parse("M"), None);
        assert_eq!(ByteSize::parse("-1"), None);
        assert_eq!(ByteSize::parse("99999999999999G"), None);
    }

    #[test]
    fn sizes_print_back_as_written() {
        for text in ["35M", "512K", "1G", "1000"] {
            assert_eq!(ByteSize::parse(text).unwrap().to_string(), text);
        }
    }
}
