//! A mailbox (`local-part@domain`) as RFC 5321 §4.1.2 writes it in MAIL
//! and RCPT, kept exactly as the client sent it.
//!
//! Neither crate at hand reads SMTP mailboxes whole: smtp-proto's MAIL/RCPT
//! parser drops the quotes of a quoted local part (`"john doe"@example.net`
//! comes out as `john doe@example.net`, a different and invalid address)
//! and refuses address literals; lettre's `Address` takes a bare IP address
//! as a domain, a literal without its `IPv6:` tag, and UTF-8. So popgate
//! reads them itself, by the RFC 5321 grammar:
//!
//! - the local part is a dot-string (`john.doe`) or a quoted string
//!   (`"john doe"`, with `\x` quoted pairs), at most 64 octets (§4.5.3.1.1);
//! - the domain is a host name (dot-separated labels of letters, digits and
//!   inner hyphens, at most 63 octets each, 255 in all, the last not all
//!   digits, so `alice@192.0.2.1` is no address) or an address
//!   literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]` (§4.1.3). A general
//!   literal (`[tag:…]`) names no standardised tag and is refused;
//! - the whole mailbox is at most 254 octets (a path of 256 with its angle
//!   brackets, §4.5.3.1.3);
//! - ASCII only: popgate does not offer SMTPUTF8 (see
//!   [`envelope`](super::envelope) for why), and a non-ASCII mailbox is its
//!   own error, [`AddressError::NonAscii`], so it can get `553 5.6.7`.
//!
//! A mailbox that parses holds no CR, LF or other control character, no
//! non-ASCII octet, and no space outside the quotes of a quoted local part:
//! relayed exactly as given, it cannot end the upstream's command line, nor
//! add a parameter to it for a server that reads quotes as RFC 5321
//! requires; on the sendmail command line it is one argument (never a
//! shell word) after `-f` or `--`.
//!
//! The sender policy compares [`Mailbox::canonical`] forms, without case:
//! the quotes of a quoted local part whose content is a plain dot-string
//! are dropped (`"alice"@example.com` is `alice@example.com`: RFC 5322
//! §3.2.4 makes a quoted string semantically identical to the atom it
//! spells, and a quoted pair to the character it escapes), any other is
//! quoted minimally, and address literals are written in one form
//! (`[IPv6:2001:DB8:0::1]` is `[IPv6:2001:db8::1]`). A quoted local part can
//! therefore neither pass for another address
//! (`"alice@example.com"@evil.example` stays what it is) nor make the
//! user's own address look foreign.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// The longest domain, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// The longest mailbox: a 256-octet path less its angle brackets
/// (RFC 5321 §4.5.3.1.3).
pub const MAX_MAILBOX: usize = 254;
/// The longest label of a host name (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Why a text is not a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// It holds non-ASCII characters, which need SMTPUTF8.
    #[error("non-ASCII characters need SMTPUTF8")]
    NonAscii,
    /// It does not follow the RFC 5321 grammar.
    #[error("not an RFC 5321 mailbox")]
    Syntax,
    /// A part of it is longer than RFC 5321 allows.
    #[error("longer than RFC 5321 allows")]
    TooLong,
}

/// An RFC 5321 mailbox, exactly as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    text: String,
    /// The index of the `@` that ends the local part.
    at: usize,
}

impl Mailbox {
    /// Reads `text` as an RFC 5321 `Mailbox` (no angle brackets).
    ///
    /// ```
    /// use popgate::submission::address::{AddressError, Mailbox};
    /// let quoted = Mailbox::parse("\"john doe\"@example.net").unwrap();
    /// assert_eq!(quoted.as_str(), "\"john doe\"@example.net");
    /// assert!(Mailbox::parse("alice@[IPv6:2001:db8::1]").is_ok());
    /// assert_eq!(Mailbox::parse("alice@192.0.2.1"), Err(AddressError::Syntax));
    /// assert_eq!(Mailbox::parse("josé@example.com"), Err(AddressError::NonAscii));
    /// ```
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        if !text.is_ascii() {
            return Err(AddressError::NonAscii);
        }
        let bytes = text.as_bytes();
        let at = match bytes.first() {
            Some(b'"') => quoted_string_end(bytes)?,
            _ => bytes
                .iter()
                .position(|&b| !is_atext(b) && b != b'.')
                .unwrap_or(bytes.len()),
        };
        if bytes.get(at) != Some(&b'@') {
            return Err(AddressError::Syntax);
        }
        let (local, domain) = (&text[..at], &text[at + 1..]);
        if !local.starts_with('"') && !is_dot_string(local) {
            return Err(AddressError::Syntax);
        }
        if local.len() > MAX_LOCAL_PART || domain.len() > MAX_DOMAIN || text.len() > MAX_MAILBOX {
            return Err(AddressError::TooLong);
        }
        if address_literal(domain).is_none() && !is_host_name(domain) {
            return Err(AddressError::Syntax);
        }
        Ok(Mailbox {
            text: text.to_owned(),
            at,
        })
    }

    /// The mailbox as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The local part as the client wrote it, quotes included.
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain (or address literal) as the client wrote it.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The local part without quotes it does not need: the content of a
    /// quoted local part that is a plain dot-string (`"alice"` is `alice`),
    /// any other quoted content re-quoted minimally (`"john\ doe"` is
    /// `"john doe"`), a dot-string as it is.
    pub fn plain_local_part(&self) -> Cow<'_, str> {
        let local = self.local_part();
        let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
            return Cow::Borrowed(local);
        };
        let mut content = String::with_capacity(quoted.len());
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            content.extend(if c == '\\' { chars.next() } else { Some(c) });
        }
        if is_dot_string(&content) {
            return Cow::Owned(content);
        }
        let mut requoted = String::with_capacity(content.len() + 2);
        requoted.push('"');
        for c in content.chars() {
            if c == '"' || c == '\\' {
                requoted.push('\\');
            }
            requoted.push(c);
        }
        requoted.push('"');
        Cow::Owned(requoted)
    }

    /// The form the sender policy compares (without case): the
    /// [plain local part](Mailbox::plain_local_part), `@`, and the domain in
    /// lower case or the address literal in one standard form.
    ///
    /// ```
    /// use popgate::submission::address::Mailbox;
    /// let canonical = |text| Mailbox::parse(text).unwrap().canonical();
    /// assert_eq!(canonical("\"alice\"@Example.COM"), "alice@example.com");
    /// assert_eq!(canonical("\"alice@example.com\"@evil.example"), "\"alice@example.com\"@evil.example");
    /// assert_eq!(canonical("bob@[IPv6:2001:DB8:0::1]"), "bob@[IPv6:2001:db8::1]");
    /// ```
    pub fn canonical(&self) -> String {
        let domain = match address_literal(self.domain()) {
            Some(Literal::V4(ip)) => format!("[{ip}]"),
            Some(Literal::V6(ip)) => format!("[IPv6:{ip}]"),
            None => self.domain().to_ascii_lowercase(),
        };
        format!("{}@{domain}", self.plain_local_part())
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// RFC 5321 `atext` (as RFC 5322 §3.2.3 defines it).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// RFC 5321 `Dot-string`: atoms of `atext` joined by single dots.
fn is_dot_string(text: &str) -> bool {
    text.split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// The index just past the closing quote of the `Quoted-string` that
/// starts `bytes`: `qtextSMTP` (printable ASCII and space, less `"` and
/// `\`) or `quoted-pairSMTP` (`\` and any printable ASCII or space).
fn quoted_string_end(bytes: &[u8]) -> Result<usize, AddressError> {
    let mut i = 1;
    loop {
        match bytes.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') if bytes.get(i + 1).is_some_and(|b| (b' '..=b'~').contains(b)) => i += 2,
            Some(b' '..=b'~') if bytes[i] != b'\\' => i += 1,
            _ => return Err(AddressError::Syntax),
        }
    }
}

/// RFC 5321 `Domain`: labels of letters, digits and inner hyphens; the
/// last one not all digits (no top-level domain is, RFC 3696 §2), so an IP
/// address cannot pass for a host name: it must be written as a literal.
fn is_host_name(domain: &str) -> bool {
    let top_level = domain.rsplit('.').next().unwrap_or_default();
    if top_level.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    domain.split('.').all(|label| {
        let bytes = label.as_bytes();
        (1..=MAX_LABEL).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    })
}

/// The IP address of an address literal.
enum Literal {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// RFC 5321 §4.1.3: `[` IPv4 `]` or `[IPv6:` IPv6 `]` (the tag without
/// case, as ABNF strings are).
fn address_literal(domain: &str) -> Option<Literal> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse().ok().map(Literal::V6),
        _ => ipv4_literal(inner).map(Literal::V4),
    }
}

/// RFC 5321 `IPv4-address-literal`: four `Snum`s of one to three digits
/// each, at most 255 (leading zeros allowed, as the grammar allows them).
fn ipv4_literal(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if !(1..=3).contains(&part.len()) || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_mailboxes_parse_and_keep_their_text() {
        for text in [
            "alice@example.com",
            "alice@localhost",
            "john.q.public+tag@mail-1.example.net",
            "!#$%&'*+-/=?^_`{|}~@x.y",
            "\"john doe\"@example.net",
            "\"\"@example.net",
            "\"a\\\"b\\\\c\"@example.net",
            "\"<x> y@z\"@example.net",
            "alice@[192.0.2.1]",
            "alice@[192.000.002.001]",
            "alice@[IPv6:2001:db8::1]",
            "alice@[ipv6:::ffff:192.0.2.1]",
            "a@1.2.3.4.example",
        ] {
            let mailbox = Mailbox::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(mailbox.as_str(), text);
            assert_eq!(mailbox.to_string(), text);
            assert_eq!(
                format!("{}@{}", mailbox.local_part(), mailbox.domain()),
                text
            );
        }
    }

    #[test]
    fn illegal_mailboxes_are_refused() {
        for text in [
            "",
            "alice",
            "@example.com",
            "alice@",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "al ice@example.com",
            "alice@example..com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            "alice@example.com.",
            "alice@192.0.2.1",
            "alice@example.123",
            "alice@example.com ",
            "alice@192.0.2.1 x",
            "alice@[192.0.2.256]",
            "alice@[192.0.2]",
            "alice@[1234.0.2.1]",
            "alice@[2001:db8::1]",
            "alice@[IPv6:2001:db8::g]",
            "alice@[tag:anything]",
            "alice@[192.0.2.1",
            "\"unterminated@example.com",
            "\"a\"b@example.com",
            "\"a\rb\"@example.com",
            "\"a\nb\"@example.com",
            "\"a\tb\"@example.com",
            "\"a\\\u{7f}\"@example.com",
            "a\r\n@example.com",
            "alice@example.com\r\nRCPT TO:<x@y.z>",
            "alice@exa mple.com",
            "alice@@example.com",
            "a@b@example.com",
        ] {
            assert_eq!(
                Mailbox::parse(text),
                Err(AddressError::Syntax),
                "{text:?} parsed"
            );
        }
        assert_eq!(
            Mailbox::parse("josé@example.com"),
            Err(AddressError::NonAscii)
        );
        assert_eq!(
            Mailbox::parse("jose@exämple.com"),
            Err(AddressError::NonAscii)
        );
    }

    #[test]
    fn lengths_are_bounded() {
        let local = "a".repeat(MAX_LOCAL_PART);
        assert!(Mailbox::parse(&format!("{local}@x.y")).is_ok());
        assert_eq!(
            Mailbox::parse(&format!("{local}a@x.y")),
            Err(AddressError::TooLong)
        );
        let label = "b".repeat(MAX_LABEL);
        assert!(Mailbox::parse(&format!("a@{label}.y")).is_ok());
        assert_eq!(
            Mailbox::parse(&format!("a@{label}b.y")),
            Err(AddressError::Syntax)
        );
        let long_domain = [label.as_str(); 4].join(".");
        assert_eq!(long_domain.len(), MAX_DOMAIN);
        assert_eq!(
            Mailbox::parse(&format!("a@{long_domain}")),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn canonical_forms_compare_what_is_the_same_mailbox() {
        let canonical = |text: &str| Mailbox::parse(text).unwrap().canonical();
        assert_eq!(canonical("alice@Example.COM"), "alice@example.com");
        assert_eq!(canonical("Alice@example.com"), "Alice@example.com");
        assert_eq!(canonical("\"alice\"@example.com"), "alice@example.com");
        assert_eq!(canonical("\"al\\ice\"@example.com"), "alice@example.com");
        assert_eq!(
            canonical("\"john.doe\"@example.com"),
            "john.doe@example.com"
        );
        assert_eq!(
            canonical("\"john\\ doe\"@example.com"),
            "\"john doe\"@example.com"
        );
        assert_eq!(canonical("\"a\\\"b\"@x.y"), "\"a\\\"b\"@x.y");
        assert_eq!(canonical("\".alice\"@x.y"), "\".alice\"@x.y");
        assert_eq!(canonical("\"\"@x.y"), "\"\"@x.y");
        assert_eq!(
            canonical("\"alice@example.com\"@evil.example"),
            "\"alice@example.com\"@evil.example"
        );
        assert_eq!(canonical("a@[192.000.002.001]"), "a@[192.0.2.1]");
        assert_eq!(
            canonical("a@[ipv6:2001:DB8:0:0::1]"),
            "a@[IPv6:2001:db8::1]"
        );
    }

    proptest::proptest! {
        #[test]
        fn what_parses_can_never_break_a_command_line(text in "\\PC{0,80}|[ -~\\r\\n\\t]{0,80}") {
            if let Ok(mailbox) = Mailbox::parse(&text) {
                let bytes = mailbox.as_str().as_bytes();
                proptest::prop_assert!(bytes.iter().all(|b| (b' '..=b'~').contains(b)));
                // A space only ever sits inside the quoted local part.
                let local = mailbox.local_part();
                proptest::prop_assert!(!mailbox.domain().contains(' '));
                proptest::prop_assert!(!local.contains(' ') || local.starts_with('"'));
                let canonical = Mailbox::parse(&mailbox.canonical()).unwrap();
                proptest::prop_assert_eq!(canonical.canonical(), mailbox.canonical());
            }
        }
    }
}
