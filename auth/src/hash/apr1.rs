//! Apache MD5 (`$apr1$`) and MD5-crypt (`$1$`), written here on `md-5`.
//!
//! Both are Poul-Henning Kamp's MD5-crypt; they differ only in the "magic"
//! string mixed into the first digest. The format is `$apr1$salt$hash`, with
//! at most 8 salt characters and a 22-character digest in the crypt base64
//! dialect. The algorithm:
//!
//! 1. `alternate = MD5(password + salt + password)`;
//! 2. start `MD5(password + magic + salt)`, add `alternate` repeated to the
//!    password's length, then one byte per bit of the length (from the lowest
//!    bit up): a NUL for a set bit, the password's first byte for a clear one;
//! 3. 1000 rounds that each hash the previous digest with the password and
//!    salt in an order set by the round number;
//! 4. encode the final 16 bytes in a fixed order.
//!
//! MD5 is fast, so these hashes resist guessing poorly: `popgate passwd`
//! writes bcrypt instead. They are supported because existing files hold them.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::crypt64;

/// The most salt characters that count.
const MAX_SALT_LEN: usize = 8;

/// A parsed MD5-crypt hash.
#[derive(Clone)]
pub(crate) struct Md5CryptHash {
    magic: &'static str,
    salt: Vec<u8>,
    hash: String,
}

impl Md5CryptHash {
    /// Parses `$apr1$salt$hash` or `$1$salt$hash`.
    pub(crate) fn parse(text: &str) -> Option<Md5CryptHash> {
        let (magic, rest) = ["$apr1$", "$1$"]
            .into_iter()
            .find_map(|magic| text.strip_prefix(magic).map(|rest| (magic, rest)))?;
        let (salt, hash) = rest.split_once('$')?;
        if !crypt64::is_encoded(hash, 22) {
            return None;
        }
        let salt = salt.as_bytes();
        Some(Md5CryptHash {
            magic,
            salt: salt.get(..MAX_SALT_LEN).unwrap_or(salt).to_vec(),
            hash: hash.to_owned(),
        })
    }

    /// Whether `password` matches.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed = md5_crypt(password, &self.salt, self.magic.as_bytes());
        computed.as_bytes().ct_eq(self.hash.as_bytes()).into()
    }
}

/// Computes the 22-character MD5-crypt digest of `password`.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    let alternate: [u8; 16] = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();

    let mut context = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        context.update(alternate.get(..chunk.len()).unwrap_or(&alternate));
    }
    let first = password.first().copied().unwrap_or(0);
    let mut length = password.len();
    while length != 0 {
        context.update([if length & 1 == 1 { 0 } else { first }]);
        length >>= 1;
    }
    let mut digest: [u8; 16] = context.finalize().into();

    for round in 0..1000 {
        let mut context = Md5::new();
        if round % 2 == 1 {
            context.update(password);
        } else {
            context.update(digest);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round % 2 == 1 {
            context.update(digest);
        } else {
            context.update(password);
        }
        digest = context.finalize().into();
    }

    let d = digest;
    let mut out = String::with_capacity(22);
    crypt64::push_group(&mut out, d[0], d[6], d[12], 4);
    crypt64::push_group(&mut out, d[1], d[7], d[13], 4);
    crypt64::push_group(&mut out, d[2], d[8], d[14], 4);
    crypt64::push_group(&mut out, d[3], d[9], d[15], 4);
    crypt64::push_group(&mut out, d[4], d[10], d[5], 4);
    crypt64::push_group(&mut out, 0, 0, d[11], 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_count_for_8_characters() {
        // openssl passwd -apr1 -salt r31LLsM8 'apache md5', with extra salt.
        let hash = Md5CryptHash::parse("$apr1$r31LLsM8XYZ$/7MTMsB2tDroVeGVvBXr5.").unwrap();
        assert!(hash.verify(b"apache md5"));
    }

    #[test]
    fn the_magic_matters() {
        let apr1 = Md5CryptHash::parse("$apr1$saltstr$s4jDadMsrn/T9cb8o86Rm1").unwrap();
        let md5 = Md5CryptHash::parse("$1$saltstr$s4jDadMsrn/T9cb8o86Rm1").unwrap();
        assert!(md5.verify(b"md5 crypt"));
        assert!(!apr1.verify(b"md5 crypt"));
    }
}
