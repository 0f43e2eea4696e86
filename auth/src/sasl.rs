//! Decoding SASL responses for `AUTH PLAIN` and `AUTH LOGIN`.
//!
//! POP3 (RFC 5034) and SMTP (RFC 4954) carry SASL exchanges the same way:
//! the server sends a base64 challenge after `+ ` (POP3) or `334 ` (SMTP),
//! the client answers with one base64 line. A lone `=` stands for an empty
//! response and a lone `*` cancels the exchange. This module turns those
//! lines into [`Credentials`]; the gateway keeps the conversation.
//!
//! * **PLAIN** (RFC 4616) sends everything at once, either as the initial
//!   response (`AUTH PLAIN AGFsaWNlAHMzY3JldA==`) or after an empty challenge:
//!   `[authzid] NUL authcid NUL passwd`. Acting for another user (an authzid
//!   different from the authcid) is refused, as an authentication failure
//!   rather than a malformed response ([`SaslError::is_refusal`]).
//! * **LOGIN** (no RFC; what Outlook and Thunderbird fall back to) asks for the
//!   user with [`LOGIN_USER_PROMPT`], then for the password with
//!   [`LOGIN_PASSWORD_PROMPT`]; each answer is decoded with
//!   [`decode_login_line`].
//!
//! ```
//! use popgate_auth::sasl::{self, SaslError};
//!
//! // "\0alice\0s3cret"
//! let credentials = sasl::decode_plain("AGFsaWNlAHMzY3JldA==").unwrap();
//! assert_eq!(credentials.user, "alice");
//! assert_eq!(credentials.password.expose(), "s3cret");
//!
//! assert_eq!(sasl::decode_login_line("YWxpY2U=").unwrap(), "alice");
//! assert_eq!(sasl::decode_login_line("*"), Err(SaslError::Cancelled));
//! ```
//!
//! Every input is bounded by [`MAX_RESPONSE_LEN`]; decoded bytes that held a
//! password are wiped when they are dropped.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::password::{Credentials, Password};

/// The mechanisms popgate offers, in order of preference.
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN"];

/// The base64 prompt `Username:` of the LOGIN mechanism.
pub const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";

/// The base64 prompt `Password:` of the LOGIN mechanism.
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// The longest base64 response accepted, in bytes (8 KiB).
pub const MAX_RESPONSE_LEN: usize = 8 * 1024;

/// Standard base64 that accepts the padding either present or left out.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A SASL mechanism popgate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (the de-facto `Username:`/`Password:` exchange).
    Login,
}

impl Mechanism {
    /// Looks a mechanism up by the name a client sent, ignoring ASCII case.
    /// Returns `None` for mechanisms popgate does not offer.
    ///
    /// ```
    /// use popgate_auth::sasl::Mechanism;
    /// assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
    /// assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The mechanism's name as it appears in [`MECHANISMS`].
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Why a SASL response could not be decoded. The messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*`: it cancels the exchange.
    #[error("the client cancelled the authentication")]
    Cancelled,
    /// The response is longer than [`MAX_RESPONSE_LEN`].
    #[error("the SASL response is too long")]
    TooLong,
    /// The response is not valid base64.
    #[error("the SASL response is not valid base64")]
    InvalidBase64,
    /// The decoded response is not UTF-8.
    #[error("the SASL response is not valid UTF-8")]
    InvalidUtf8,
    /// A PLAIN response without exactly two NUL separators.
    #[error("the PLAIN response is malformed")]
    Malformed,
    /// A PLAIN response with an empty user name.
    #[error("the PLAIN response has no user name")]
    EmptyUser,
    /// A PLAIN response asking to act as another user (proxy authorization).
    #[error("acting as another user is not supported")]
    ProxyAuthorization,
}

impl SaslError {
    /// True for a response that is well-formed but asks for something the
    /// server refuses without consulting any backend: acting as another
    /// user. The protocols answer it as a failed authentication (SMTP
    /// `535 5.7.8`, POP3 `-ERR [AUTH]`); every other error is a malformed
    /// response (`501`, a plain `-ERR`).
    ///
    /// ```
    /// use popgate_auth::sasl::SaslError;
    /// assert!(SaslError::ProxyAuthorization.is_refusal());
    /// assert!(!SaslError::InvalidBase64.is_refusal());
    /// ```
    pub fn is_refusal(self) -> bool {
        matches!(self, SaslError::ProxyAuthorization)
    }
}

/// Decodes a base64 SASL PLAIN response (RFC 4616: `[authzid] NUL authcid NUL
/// passwd`). `=` means an empty response (which is malformed for PLAIN). An
/// authzid that differs from the authcid is refused: no proxy authorization.
/// Input over [`MAX_RESPONSE_LEN`] is refused before decoding.
pub fn decode_plain(b64: &str) -> Result<Credentials, SaslError> {
    let bytes = decode(b64)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SaslError::InvalidUtf8)?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() {
        return Err(SaslError::EmptyUser);
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::ProxyAuthorization);
    }
    Ok(Credentials {
        user: authcid.to_owned(),
        password: Password::new(password),
    })
}

/// Decodes one base64 line of the LOGIN mechanism (the user name or the
/// password). `=` decodes to the empty string; UTF-8 is required.
///
/// The result may be a password: wrap it in a [`Password`] right away.
pub fn decode_login_line(b64: &str) -> Result<String, SaslError> {
    let bytes = decode(b64)?;
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| SaslError::InvalidUtf8)
}

/// Base64-decodes one response line into memory that is wiped on drop.
fn decode(b64: &str) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    if b64.len() > MAX_RESPONSE_LEN {
        return Err(SaslError::TooLong);
    }
    let b64 = b64.trim_matches(|c: char| c.is_ascii_whitespace());
    match b64 {
        "*" => Err(SaslError::Cancelled),
        "=" => Ok(Zeroizing::new(Vec::new())),
        _ => BASE64
            .decode(b64)
            .map(Zeroizing::new)
            .map_err(|_| SaslError::InvalidBase64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn plain_without_authzid() {
        let credentials = decode_plain(&b64(b"\0alice\0s3cret")).unwrap();
        assert_eq!(credentials.user, "alice");
        assert_eq!(credentials.password.expose(), "s3cret");
    }

    #[test]
    fn plain_with_matching_authzid() {
        let credentials = decode_plain(&b64(b"bob@example.com\0bob@example.com\0pw")).unwrap();
        assert_eq!(credentials.user, "bob@example.com");
        assert_eq!(credentials.password.expose(), "pw");
    }

    #[test]
    fn plain_refuses_proxy_authorization() {
        assert_eq!(
            decode_plain(&b64(b"admin\0alice\0pw")).unwrap_err(),
            SaslError::ProxyAuthorization
        );
    }

    #[test]
    fn plain_keeps_utf8_and_spaces_in_password() {
        let credentials = decode_plain(&b64("\0alice\0pässwörd with spaces".as_bytes())).unwrap();
        assert_eq!(credentials.password.expose(), "pässwörd with spaces");
        let credentials = decode_plain(&b64(b"\0alice\0")).unwrap();
        assert!(credentials.password.is_empty());
    }

    #[test]
    fn plain_malformed_inputs() {
        assert_eq!(decode_plain("=").unwrap_err(), SaslError::Malformed);
        assert_eq!(
            decode_plain(&b64(b"alice")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"alice\0pw")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"\0alice\0pw\0x")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"\0\0pw")).unwrap_err(),
            SaslError::EmptyUser
        );
        assert_eq!(
            decode_plain(&b64(b"\0al\xffice\0pw")).unwrap_err(),
            SaslError::InvalidUtf8
        );
    }

    #[test]
    fn bad_base64() {
        assert_eq!(
            decode_plain("not base64!").unwrap_err(),
            SaslError::InvalidBase64
        );
        assert_eq!(
            decode_plain("AGFsaWNl=AHB3").unwrap_err(),
            SaslError::InvalidBase64
        );
        assert_eq!(decode_plain("A").unwrap_err(), SaslError::InvalidBase64);
        assert_eq!(decode_login_line("%%%%"), Err(SaslError::InvalidBase64));
        assert_eq!(decode_login_line(""), Ok(String::new()));
    }

    #[test]
    fn padding_is_optional_and_whitespace_trimmed() {
        assert_eq!(decode_login_line("YWxpY2U").unwrap(), "alice");
        assert_eq!(decode_login_line(" YWxpY2U= \r\n").unwrap(), "alice");
    }

    #[test]
    fn cancel() {
        assert_eq!(decode_plain("*").unwrap_err(), SaslError::Cancelled);
        assert_eq!(decode_login_line("*"), Err(SaslError::Cancelled));
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        let just_fits = b64(&[b'a'; 6 * 1024]);
        assert_eq!(just_fits.len(), MAX_RESPONSE_LEN);
        assert_eq!(decode_login_line(&just_fits).unwrap().len(), 6 * 1024);
        let too_long = "A".repeat(MAX_RESPONSE_LEN + 4);
        assert_eq!(decode_plain(&too_long).unwrap_err(), SaslError::TooLong);
        assert_eq!(decode_login_line(&too_long), Err(SaslError::TooLong));
    }

    #[test]
    fn login_lines_and_prompts() {
        assert_eq!(decode_login_line(LOGIN_USER_PROMPT).unwrap(), "Username:");
        assert_eq!(
            decode_login_line(LOGIN_PASSWORD_PROMPT).unwrap(),
            "Password:"
        );
        assert_eq!(decode_login_line("=").unwrap(), "");
        assert_eq!(
            decode_login_line(&b64(b"\xff\xfe")),
            Err(SaslError::InvalidUtf8)
        );
    }

    #[test]
    fn mechanisms() {
        assert_eq!(MECHANISMS, ["PLAIN", "LOGIN"]);
        for name in MECHANISMS {
            let mechanism = Mechanism::from_name(&name.to_ascii_lowercase()).unwrap();
            assert_eq!(mechanism.name(), *name);
        }
        assert_eq!(Mechanism::from_name("XOAUTH2"), None);
    }

    #[test]
    fn errors_do_not_echo_input() {
        let error = decode_plain(&b64(b"admin\0alice\0hunter2")).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(input in "\\PC{0,200}") {
            let _ = decode_plain(&input);
            let _ = decode_login_line(&input);
        }

        #[test]
        fn plain_round_trips(user in "[a-z]{1,20}", password in "[^\0]{0,40}") {
            let raw = format!("\0{user}\0{password}");
            let credentials = decode_plain(&b64(raw.as_bytes())).unwrap();
            prop_assert_eq!(credentials.user, user);
            prop_assert_eq!(credentials.password.expose(), password);
        }
    }
}
