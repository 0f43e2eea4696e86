//! bcrypt (`$2y$`, `$2b$`, `$2a$`), through the `bcrypt` crate.
//!
//! The three prefixes name the same computation for every password shorter
//! than 255 bytes; the crate verifies all of them alike and compares in
//! constant time. Like every bcrypt, only the first 72 bytes of a password
//! count. `$2x$` (the broken pre-2011 PHP variant) is not supported.

use std::str::FromStr;

use ::bcrypt::{HashParts, Version};

use crate::AuthError;

/// The costs bcrypt accepts.
const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// A parsed bcrypt hash.
#[derive(Clone)]
pub(crate) struct BcryptHash {
    text: String,
    cost: u32,
}

impl BcryptHash {
    /// Parses a 60-character bcrypt hash with a supported prefix and cost.
    pub(crate) fn parse(text: &str) -> Option<BcryptHash> {
        if !["$2y$", "$2b$", "$2a$"].iter().any(|p| text.starts_with(p)) {
            return None;
        }
        let cost = HashParts::from_str(text).ok()?.get_cost();
        COSTS.contains(&cost).then(|| BcryptHash {
            text: text.to_owned(),
            cost,
        })
    }

    /// Whether `password` matches.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        ::bcrypt::verify(password, &self.text).unwrap_or(false)
    }

    /// The cost factor (log2 of the rounds).
    pub(crate) fn cost(&self) -> u32 {
        self.cost
    }
}

/// Hashes `password` with bcrypt at `cost` (4..=31; 12 is a sound default),
/// for `popgate passwd`. The result starts with `$2y$`, like Apache's
/// `htpasswd -B`.
///
/// Passwords of 72 bytes or more are refused rather than silently cut.
///
/// ```
/// let hash = popgate_auth::hash_password_bcrypt("s3cret", 4).unwrap();
/// assert!(hash.starts_with("$2y$04$"));
/// assert_eq!(hash.len(), 60);
/// ```
pub fn hash_password_bcrypt(password: &str, cost: u32) -> Result<String, AuthError> {
    if !COSTS.contains(&cost) {
        return Err(AuthError::InvalidBcryptCost(cost));
    }
    if password.len() >= 72 {
        return Err(AuthError::PasswordTooLong);
    }
    // With cost and length checked, only drawing the random salt can fail.
    ::bcrypt::non_truncating_hash_with_result(password, cost)
        .map(|parts| parts.format_for_version(Version::TwoY))
        .map_err(|e| AuthError::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let first = hash_password_bcrypt("pässword", 4).unwrap();
        let second = hash_password_bcrypt("pässword", 4).unwrap();
        assert_ne!(first, second);
        let parsed = BcryptHash::parse(&first).unwrap();
        assert_eq!(parsed.cost(), 4);
        assert!(parsed.verify("pässword".as_bytes()));
        assert!(!parsed.verify(b"password"));
    }

    #[test]
    fn bad_cost_and_long_passwords_are_refused() {
        assert!(matches!(
            hash_password_bcrypt("x", 3),
            Err(AuthError::InvalidBcryptCost(3))
        ));
        assert!(matches!(
            hash_password_bcrypt("x", 32),
            Err(AuthError::InvalidBcryptCost(32))
        ));
        assert!(matches!(
            hash_password_bcrypt(&"x".repeat(72), 4),
            Err(AuthError::PasswordTooLong)
        ));
        assert!(hash_password_bcrypt(&"x".repeat(71), 4).is_ok());
    }
}
