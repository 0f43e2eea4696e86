//! The base64 dialect of `crypt(3)`.
//!
//! MD5-crypt and SHA-crypt write their digests with the alphabet
//! `./0-9A-Za-z`, taking 24 bits at a time, least significant six bits first.
//! Each scheme feeds the digest bytes in its own order; the callers list it.

const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Appends `chars` characters encoding the 24-bit group `high, middle, low`.
pub(super) fn push_group(out: &mut String, high: u8, middle: u8, low: u8, chars: usize) {
    let mut bits = (u32::from(high) << 16) | (u32::from(middle) << 8) | u32::from(low);
    for _ in 0..chars {
        out.push(char::from(ALPHABET[(bits & 0x3f) as usize]));
        bits >>= 6;
    }
}

/// Whether `text` is `len` characters of the crypt alphabet.
pub(super) fn is_encoded(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_little_endian() {
        let mut out = String::new();
        push_group(&mut out, 0, 0, 0, 4);
        push_group(&mut out, 0, 0, 1, 1);
        push_group(&mut out, 0xff, 0xff, 0xff, 4);
        push_group(&mut out, 0, 0, 0x40, 2);
        assert_eq!(out, "..../zzzz./");
        assert!(is_encoded(&out, 11));
        assert!(!is_encoded(&out, 10));
        assert!(!is_encoded("ab=", 3));
    }
}
