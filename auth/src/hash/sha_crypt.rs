//! SHA-256-crypt (`$5$`) and SHA-512-crypt (`$6$`), on the `sha-crypt` crate.
//!
//! The format is `$6$[rounds=N$]salt$hash`: at most 16 salt characters,
//! 5000 rounds unless `rounds=` says otherwise (clamped to 1000..=999999999,
//! as glibc does), and the digest in the crypt base64 dialect with the
//! byte order of Ulrich Drepper's specification. The crate computes the raw
//! digest; this module parses, encodes and compares (in constant time), so
//! any salt glibc accepts works here too.

use sha_crypt::Params;
use subtle::ConstantTimeEq;

use super::{crypt64, Work};

/// The rounds used when the hash does not say.
const DEFAULT_ROUNDS: u32 = 5_000;

/// The most salt characters that count.
const MAX_SALT_LEN: usize = 16;

/// A parsed SHA-crypt hash.
#[derive(Clone)]
pub(crate) struct ShaCryptHash {
    sha512: bool,
    rounds: u32,
    params: Params,
    salt: Vec<u8>,
    hash: String,
}

impl ShaCryptHash {
    /// Parses `$5$…` or `$6$…`.
    pub(crate) fn parse(text: &str) -> Option<ShaCryptHash> {
        let (sha512, rest) = match text.strip_prefix("$6$") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("$5$")?),
        };
        let (rounds, rest) = match rest.strip_prefix("rounds=") {
            Some(rest) => {
                let (digits, rest) = rest.split_once('$')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let rounds = digits
                    .parse::<u64>()
                    .ok()?
                    .clamp(u64::from(Params::ROUNDS_MIN), u64::from(Params::ROUNDS_MAX));
                (u32::try_from(rounds).ok()?, rest)
            }
            None => (DEFAULT_ROUNDS, rest),
        };
        let (salt, hash) = rest.split_once('$')?;
        let hash_len = if sha512 { 86 } else { 43 };
        if !crypt64::is_encoded(hash, hash_len) {
            return None;
        }
        let salt = salt.as_bytes();
        Some(ShaCryptHash {
            sha512,
            rounds,
            params: Params::new(rounds).ok()?,
            salt: salt.get(..MAX_SALT_LEN).unwrap_or(salt).to_vec(),
            hash: hash.to_owned(),
        })
    }

    /// Whether `password` matches.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed = if self.sha512 {
            encode_sha512(&sha_crypt::sha512_crypt(password, &self.salt, self.params))
        } else {
            encode_sha256(&sha_crypt::sha256_crypt(password, &self.salt, self.params))
        };
        computed.as_bytes().ct_eq(self.hash.as_bytes()).into()
    }

    /// The work a verification takes.
    pub(crate) fn work(&self) -> Work {
        Work::ShaCrypt {
            sha512: self.sha512,
            rounds: self.rounds,
        }
    }
}

/// Encodes a SHA-512-crypt digest: 21 groups of three bytes taken 21 apart,
/// each group rotated by one more place, then the last byte alone.
fn encode_sha512(digest: &[u8; 64]) -> String {
    let mut out = String::with_capacity(86);
    for k in 0..21 {
        let (high, middle, low) = match k % 3 {
            0 => (k, k + 21, k + 42),
            1 => (k + 21, k + 42, k),
            _ => (k + 42, k, k + 21),
        };
        crypt64::push_group(&mut out, digest[high], digest[middle], digest[low], 4);
    }
    crypt64::push_group(&mut out, 0, 0, digest[63], 2);
    out
}

/// Encodes a SHA-256-crypt digest: 10 groups of three bytes taken 10 apart,
/// each group rotated by one more place, then the last two bytes.
fn encode_sha256(digest: &[u8; 32]) -> String {
    let mut out = String::with_capacity(43);
    for k in 0..10 {
        let (high, middle, low) = match k % 3 {
            0 => (k, k + 10, k + 20),
            1 => (k + 20, k, k + 10),
            _ => (k + 10, k + 20, k),
        };
        crypt64::push_group(&mut out, digest[high], digest[middle], digest[low], 4);
    }
    crypt64::push_group(&mut out, 0, digest[31], digest[30], 3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_parsed_and_clamped() {
        let tail = "3qyhtgJizdkm18uo0MDmCLaRKQHaqsRY5cSiLnEc2P1";
        let rounds =
            |prefix: &str| ShaCryptHash::parse(&format!("{prefix}{tail}")).map(|h| h.rounds);
        assert_eq!(rounds("$5$salt$"), Some(5000));
        assert_eq!(rounds("$5$rounds=2000$salt$"), Some(2000));
        assert_eq!(rounds("$5$rounds=10$salt$"), Some(1000));
        assert_eq!(rounds("$5$rounds=99999999999999$salt$"), Some(999_999_999));
        assert_eq!(rounds("$5$rounds=+5$salt$"), None);
        assert_eq!(rounds("$5$rounds=$salt$"), None);
        assert_eq!(rounds("$5$rounds=99999999999999999999999$salt$"), None);
        assert_eq!(rounds("$5$$"), Some(5000));
    }

    #[test]
    fn long_salts_count_for_16_characters() {
        let hash = ShaCryptHash::parse(
            "$5$0123456789abcdefXYZ$3qyhtgJizdkm18uo0MDmCLaRKQHaqsRY5cSiLnEc2P1",
        )
        .unwrap();
        assert_eq!(hash.salt, b"0123456789abcdef");
    }
}
