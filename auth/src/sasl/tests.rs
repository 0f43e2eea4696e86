//! The SASL exchange and its decoders, every mechanism, form and failure.

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

/// Runs an exchange of `mechanism` over `initial` and `lines`: the
/// challenges it sent and how it ended (`None` while still waiting).
fn exchange(
    mechanism: Mechanism,
    initial: Option<&str>,
    lines: &[&str],
) -> (Vec<&'static str>, Option<Result<Credentials, SaslError>>) {
    let mut challenges = Vec::new();
    let mut progress = SaslExchange::start(mechanism, initial.map(str::as_bytes));
    let mut lines = lines.iter();
    loop {
        match progress {
            Progress::Challenge(exchange) => {
                challenges.push(exchange.challenge());
                let Some(line) = lines.next() else {
                    return (challenges, None);
                };
                progress = exchange.respond(line.as_bytes());
            }
            Progress::Done(credentials) => return (challenges, Some(Ok(credentials))),
            Progress::Failed(error) => return (challenges, Some(Err(error))),
        }
    }
}

fn user_and_password(ended: Option<Result<Credentials, SaslError>>) -> (String, String) {
    let credentials = ended.expect("ended").expect("credentials");
    (credentials.user, credentials.password.expose().to_owned())
}

fn failure(ended: Option<Result<Credentials, SaslError>>) -> SaslError {
    ended.expect("ended").expect_err("a failure")
}

#[test]
fn every_mechanism_in_every_form_gives_the_credentials() {
    let plain = b64(b"\0alice\0s3cret");
    let alice = ("alice".to_owned(), "s3cret".to_owned());
    let (challenges, ended) = exchange(Mechanism::Plain, Some(&plain), &[]);
    assert!(challenges.is_empty());
    assert_eq!(user_and_password(ended), alice);
    let (challenges, ended) = exchange(Mechanism::Plain, None, &[&plain]);
    assert_eq!(challenges, [""]);
    assert_eq!(user_and_password(ended), alice);
    let (challenges, ended) = exchange(Mechanism::Login, None, &["YWxpY2U=", "czNjcmV0"]);
    assert_eq!(challenges, [LOGIN_USER_PROMPT, LOGIN_PASSWORD_PROMPT]);
    assert_eq!(user_and_password(ended), alice);
    let (challenges, ended) = exchange(Mechanism::Login, Some("YWxpY2U"), &["czNjcmV0"]);
    assert_eq!(challenges, [LOGIN_PASSWORD_PROMPT]);
    assert_eq!(user_and_password(ended), alice);
    // Surrounding white space (a CR left on the line) is no part of it.
    let (_, ended) = exchange(Mechanism::Login, None, &[" YWxpY2U=\r", "czNjcmV0\r"]);
    assert_eq!(user_and_password(ended), alice);
}

#[test]
fn an_empty_response_is_an_equals_sign() {
    // LOGIN: an empty password is a password like any other.
    let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &["="]);
    assert_eq!(user_and_password(ended), ("alice".into(), String::new()));
    // An empty user name is no login name; an empty PLAIN message has
    // no fields.
    let (challenges, ended) = exchange(Mechanism::Login, Some("="), &["cHc="]);
    assert!(challenges.is_empty());
    assert_eq!(failure(ended), SaslError::InvalidLoginName);
    let (_, ended) = exchange(Mechanism::Plain, Some("="), &[]);
    assert_eq!(failure(ended), SaslError::Malformed);
    let (_, ended) = exchange(Mechanism::Plain, None, &["="]);
    assert_eq!(failure(ended), SaslError::Malformed);
}

#[test]
fn a_star_cancels_at_every_step() {
    for (mechanism, initial, lines) in [
        (Mechanism::Plain, Some("*"), &[][..]),
        (Mechanism::Plain, None, &["*"][..]),
        (Mechanism::Login, Some("*"), &[][..]),
        (Mechanism::Login, None, &["*"][..]),
        (Mechanism::Login, None, &["YWxpY2U=", "*"][..]),
        (Mechanism::Login, Some("YWxpY2U="), &[" *\r"][..]),
    ] {
        let (_, ended) = exchange(mechanism, initial, lines);
        assert_eq!(
            failure(ended),
            SaslError::Cancelled,
            "{mechanism:?} {lines:?}"
        );
    }
}

#[test]
fn responses_are_bounded_at_every_step() {
    let just_fits = b64(&[b'a'; 6 * 1024]);
    assert_eq!(just_fits.len(), MAX_RESPONSE_LEN);
    let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &[&just_fits]);
    assert_eq!(user_and_password(ended).1.len(), 6 * 1024);
    let too_long = "A".repeat(MAX_RESPONSE_LEN + 4);
    for (mechanism, initial, lines) in [
        (Mechanism::Plain, Some(too_long.as_str()), &[][..]),
        (Mechanism::Plain, None, &[too_long.as_str()][..]),
        (Mechanism::Login, None, &[too_long.as_str()][..]),
        (Mechanism::Login, None, &["YWxpY2U=", too_long.as_str()][..]),
    ] {
        let (_, ended) = exchange(mechanism, initial, lines);
        assert_eq!(failure(ended), SaslError::TooLong, "{mechanism:?}");
    }
}

/// The login-name rule is checked inside the exchange, for PLAIN and
/// for LOGIN's user line alike, before any password is asked for.
/// Caught: only POP3 checked names, each of its copies of the exchange
/// on its own, and submission sent malformed names to the backend.
#[test]
fn a_malformed_name_is_refused_before_the_password() {
    for name in [
        "../etc",
        "a b",
        ".hidden",
        "x rip=192.0.2.9",
        &"a".repeat(65),
    ] {
        let plain = b64(format!("\0{name}\0pw").as_bytes());
        let (_, ended) = exchange(Mechanism::Plain, Some(&plain), &[]);
        assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
        let (_, ended) = exchange(Mechanism::Plain, None, &[&plain]);
        assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
        let user = b64(name.as_bytes());
        let (challenges, ended) = exchange(Mechanism::Login, None, &[&user, "cHc="]);
        assert_eq!(challenges, [LOGIN_USER_PROMPT], "{name}");
        assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
        let (challenges, ended) = exchange(Mechanism::Login, Some(&user), &["cHc="]);
        assert!(challenges.is_empty(), "{name}");
        assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
    }
    // The rule is the name's, not the password's.
    let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &[&b64(b"../a b")]);
    assert_eq!(user_and_password(ended).1, "../a b");
}

/// Which failures are refusals (answered as a failed login) and which
/// are malformed responses, each as an exchange produces it.
#[test]
fn failures_fall_into_their_classes() {
    let cases = [
        (Some("*"), SaslError::Cancelled, false),
        (Some("%%%%"), SaslError::InvalidBase64, false),
        (Some("/w=="), SaslError::InvalidUtf8, false),
        (Some("YWxpY2U="), SaslError::Malformed, false),
        (Some("AABwdw=="), SaslError::EmptyUser, false),
        (
            Some("Ym9iAGFsaWNlAHB3"),
            SaslError::ProxyAuthorization,
            true,
        ),
        (Some("AC4uAHB3"), SaslError::InvalidLoginName, true),
    ];
    for (initial, error, refusal) in cases {
        let (_, ended) = exchange(Mechanism::Plain, initial, &[]);
        assert_eq!(failure(ended), error, "{initial:?}");
        assert_eq!(error.is_refusal(), refusal, "{error:?}");
    }
    let Progress::Challenge(exchange) = SaslExchange::start(Mechanism::Plain, None) else {
        panic!("no challenge");
    };
    assert!(matches!(
        exchange.respond(b"\xff\xfe"),
        Progress::Failed(SaslError::InvalidBase64)
    ));
}

proptest! {
    #[test]
    fn decoding_never_panics(input in "\\PC{0,200}") {
        let _ = decode_plain(&input);
        let _ = decode_login_line(&input);
    }

    /// Any valid name and any password come through each mechanism
    /// and each place the response may go (initial or after the
    /// challenge) the same.
    #[test]
    fn every_form_of_the_exchange_agrees(
        user in "[a-z][a-z0-9._+-]{0,20}(@[a-z]{1,10}\\.[a-z]{2,3})?",
        password in "[^\0]{0,40}",
    ) {
        let plain = b64(format!("\0{user}\0{password}").as_bytes());
        let login_user = b64(user.as_bytes());
        let login_password = if password.is_empty() { "=".to_owned() } else { b64(password.as_bytes()) };
        let expected = (user.clone(), password.clone());
        for (mechanism, initial, lines) in [
            (Mechanism::Plain, Some(plain.as_str()), vec![]),
            (Mechanism::Plain, None, vec![plain.as_str()]),
            (Mechanism::Login, Some(login_user.as_str()), vec![login_password.as_str()]),
            (Mechanism::Login, None, vec![login_user.as_str(), login_password.as_str()]),
        ] {
            let (_, ended) = exchange(mechanism, initial, &lines);
            prop_assert_eq!(user_and_password(ended), expected.clone());
        }
    }

    #[test]
    fn plain_round_trips(user in "[a-z]{1,20}", password in "[^\0]{0,40}") {
        let raw = format!("\0{user}\0{password}");
        let credentials = decode_plain(&b64(raw.as_bytes())).unwrap();
        prop_assert_eq!(credentials.user, user);
        prop_assert_eq!(credentials.password.expose(), password);
    }
}
