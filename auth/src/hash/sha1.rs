//! `{SHA}`: the base64 of an unsalted SHA-1, as `htpasswd -s` writes it.
//!
//! One fast, unsalted hash: the weakest scheme supported, kept for old
//! files. Compared in constant time like the others.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// A parsed `{SHA}` hash.
#[derive(Clone)]
pub(crate) struct Sha1Hash {
    digest: [u8; 20],
}

impl Sha1Hash {
    /// Parses `{SHA}` followed by the base64 of 20 bytes.
    pub(crate) fn parse(text: &str) -> Option<Sha1Hash> {
        let encoded = text.strip_prefix("{SHA}")?;
        let decoded = STANDARD.decode(encoded).ok()?;
        Some(Sha1Hash {
            digest: decoded.try_into().ok()?,
        })
    }

    /// Whether `password` matches.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed: [u8; 20] = Sha1::digest(password).into();
        computed.ct_eq(&self.digest).into()
    }
}
