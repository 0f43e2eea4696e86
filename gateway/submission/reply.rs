//! Writing SMTP replies.
//!
//! A reply is a three-digit code, an enhanced status code (RFC 2034/3463)
//! and a text: `250 2.1.0 Sender OK`. RFC 2034 leaves the enhanced code out
//! of three kinds of reply, and so does popgate: the 220 greeting, the
//! lines of the EHLO/HELO answer, and the intermediate 334 (a base64 SASL
//! challenge) and 354 replies. Every other reply carries one.
//!
//! Texts are made printable and cut to [`MAX_TEXT`] octets, so an upstream's
//! error message passed on to the client can neither break the reply line
//! nor inject a second one.

/// The longest reply text, in octets (RFC 5321 allows 512 per line).
pub const MAX_TEXT: usize = 400;

/// Appends `code status text\r\n` to `out`.
pub fn reply(out: &mut Vec<u8>, code: u16, status: &str, text: &str) {
    out.extend_from_slice(format!("{code} {status} ").as_bytes());
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends a reply without an enhanced status code (greeting, 334, 354).
pub fn bare(out: &mut Vec<u8>, code: u16, text: &str) {
    out.extend_from_slice(format!("{code} ").as_bytes());
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends a multi-line reply: every line but the last with `code-`.
pub fn multiline(out: &mut Vec<u8>, code: u16, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let separator = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{separator}").as_bytes());
        push_text(out, line);
        out.extend_from_slice(b"\r\n");
    }
}

/// Printable ASCII only, at most [`MAX_TEXT`] octets; anything else becomes `?`.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .take(MAX_TEXT)
            .map(|b| if (0x20..0x7f).contains(&b) { b } else { b'?' }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_single_printable_lines() {
        let mut out = Vec::new();
        reply(&mut out, 550, "5.7.1", "no\r\n250 2.0.0 injected");
        assert_eq!(out, b"550 5.7.1 no??250 2.0.0 injected\r\n");
        let mut out = Vec::new();
        multiline(&mut out, 250, &["host", "PIPELINING", "8BITMIME"]);
        assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        let mut out = Vec::new();
        reply(&mut out, 451, "4.4.1", &"x".repeat(1000));
        assert_eq!(out.len(), "451 4.4.1 ".len() + MAX_TEXT + 2);
    }
}
