//! UIDLs: the names clients remember messages by.
//!
//! A client that leaves mail on the server (Thunderbird, Outlook) downloads
//! every message whose UIDL it has not seen before, so a UIDL must never
//! change while the message stays. RFC 1939 §7 also wants 1–70 characters in
//! 0x21–0x7E, and Thunderbird splits UIDL lines on spaces.
//!
//! The rule here: the Maildir *unique name* (the file name before its first
//! `:`, which never changes when flags do) is the UIDL when it already fits
//! RFC 1939; otherwise the UIDL is a stable hash of it, the lowercase hex of
//! the first 16 bytes of its SHA-256 (32 characters).
//!
//! ```
//! use popgate_store::uidl;
//!
//! assert_eq!(uidl::from_unique_name(b"1700000000.M1P2.host"), "1700000000.M1P2.host");
//! // A space is not allowed in a UIDL: the name is hashed.
//! assert_eq!(
//!     uidl::from_unique_name(b"1700000000.M1P2.host name"),
//!     "1156f5720496c1d0c31dfe609d198de6"
//! );
//! ```
//!
//! A migration overrides this rule per message: UIDLs found in a Dovecot
//! `dovecot-uidlist` or a Courier `courierpop3dsizelist` (see
//! [`migrate`](crate::migrate)) win over [`from_unique_name`], so no client
//! downloads anything twice.

use sha2::{Digest, Sha256};

/// The longest UIDL RFC 1939 allows.
pub const MAX_LEN: usize = 70;

/// How many bytes of the SHA-256 a hashed UIDL keeps.
const HASH_BYTES: usize = 16;

/// `true` when `uidl` is a valid RFC 1939 UIDL: 1 to 70 octets, each in
/// 0x21–0x7E.
pub fn is_valid(uidl: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&uidl.len()) && uidl.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The UIDL of a message with the given Maildir unique name: the name
/// itself when [valid](is_valid), else the 32-character hex hash.
pub fn from_unique_name(unique: &[u8]) -> String {
    match std::str::from_utf8(unique) {
        // Valid UIDLs are ASCII, so valid UTF-8.
        Ok(text) if is_valid(unique) => text.to_owned(),
        _ => hashed(unique),
    }
}

/// Lowercase hex of the first 16 bytes of SHA-256 of `unique`.
fn hashed(unique: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(unique);
    let mut out = String::with_capacity(HASH_BYTES * 2);
    for &byte in digest.iter().take(HASH_BYTES) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_unique_names_are_used_as_they_are() {
        assert_eq!(
            from_unique_name(b"1035478339.27041_118.foo.org,S=1000,W=1030"),
            "1035478339.27041_118.foo.org,S=1000,W=1030"
        );
        assert_eq!(from_unique_name(b"!"), "!");
        assert_eq!(from_unique_name(b"~"), "~");
        let seventy = vec![b'x'; 70];
        assert_eq!(from_unique_name(&seventy), "x".repeat(70));
    }

    #[test]
    fn other_names_are_hashed() {
        assert_eq!(from_unique_name(b""), "e3b0c44298fc1c149afbf4c8996fb924");
        assert_eq!(
            from_unique_name(&[b'x'; 71]),
            "87a1e4c1c92b7b7a7c46433d780de6cc"
        );
        assert_eq!(
            from_unique_name(b"1700000000.M1P2.host name"),
            "1156f5720496c1d0c31dfe609d198de6"
        );
        for bad in [&b"a\x7f"[..], b"caf\xc3\xa9", b"tab\there", b"nul\0"] {
            let uidl = from_unique_name(bad);
            assert_eq!(uidl.len(), 32, "{bad:?}");
            assert!(is_valid(uidl.as_bytes()));
        }
    }

    #[test]
    fn hashing_is_stable_and_distinguishes_names() {
        assert_eq!(from_unique_name(b"a b"), from_unique_name(b"a b"));
        assert_ne!(from_unique_name(b"a b"), from_unique_name(b"a  b"));
    }

    #[test]
    fn validity() {
        assert!(is_valid(b"abc"));
        assert!(!is_valid(b""));
        assert!(!is_valid(b"a b"));
        assert!(!is_valid(&[b'a'; 71]));
    }
}
