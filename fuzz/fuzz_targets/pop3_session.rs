//! A `popgate::pop3::session::Session` driven by arbitrary lines, with the
//! driver's part (logins accepted or refused, STLS, listings) simulated.
//!
//! Invariants: every response is a run of well-formed CRLF lines of at
//! most 512 octets, status lines start `+OK`, `-ERR` or `+ `; before a
//! successful login every TRANSACTION command (STAT, LIST, UIDL, RETR, TOP,
//! DELE, RSET, NOOP) gets `-ERR` and nothing else; credentials reach the
//! driver from PASS only after a USER accepted since the last login
//! attempt or STLS (STLS forgets it); STAT, RSET and
//! LIST headers agree with a model of the deletion marks, and so do the
//! LIST/UIDL listings (a deleted message never appears, sizes add up to
//! STAT); RETR/TOP never reach a deleted or missing message; STLS is only
//! offered where it may be; QUIT hands back exactly the marked messages.
//!
//! Input: a flags byte, a byte for the mailbox and the listing budget, then
//! lines separated by LF. A login is accepted when the password has an odd
//! length, and refused (each way in turn, by the length) when it is even:
//! a refusal is one `-ERR [CODE]` line, and AUTHORIZATION starts over.

#![no_main]

use libfuzzer_sys::fuzz_target;
use popgate::login::LoginRefusal;
use popgate::pop3::command::{self, Command};
use popgate::pop3::maildrop::MessageInfo;
use popgate::pop3::reply::MAX_STATUS_LINE;
use popgate::pop3::session::{Listing, Next, Session, SessionOptions};

fuzz_target!(|data: &[u8]| {
    let [flags, shape, input @ ..] = data else {
        return;
    };
    let mut options = SessionOptions {
        stls_available: flags & 1 != 0,
        tls: flags & 2 != 0,
        plaintext_login: flags & 4 != 0,
        max_command_size: [512, 64, 16, 255 * 4][usize::from(flags >> 3) % 4],
    };
    let messages: Vec<MessageInfo> = (0..usize::from(shape % 6))
        .map(|i| MessageInfo {
            uidl: format!("uid{i}.{shape}"),
            size: (i as u64 + 1) * 1000 + u64::from(*shape),
        })
        .collect();
    let budget = usize::from(shape >> 3).max(1);

    let mut session: Session<Vec<MessageInfo>> = Session::new(options);
    // The model: deletion marks while logged in; a user name accepted.
    let mut marks: Option<Vec<bool>> = None;
    let mut user_given = false;
    for line in input.split(|&b| b == b'\n') {
        let sasl_response = session.in_sasl_exchange();
        let parsed = command::parse(line, options.max_command_size).ok();
        let mut out = Vec::new();
        let next = session.handle_line(line, &mut out);
        check_lines(&out);
        if marks.is_none() && !sasl_response {
            match &parsed {
                Some(command) if is_transaction_command(command) => assert!(
                    matches!(next, Next::Continue | Next::Close) && out.starts_with(b"-ERR"),
                    "{command:?} answered before login: {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Some(Command::User(_)) => user_given = out == b"+OK Send your password\r\n",
                Some(Command::Auth {
                    mechanism: Some(_), ..
                }) => user_given = false,
                _ => {}
            }
        }
        match next {
            Next::Continue => {
                if let (Some(marks), Some(command), false) = (&mut marks, &parsed, sasl_response) {
                    check_transaction(command, &out, marks, &messages);
                }
            }
            Next::Authenticate(credentials) => {
                assert!(marks.is_none(), "a login after login");
                assert!(
                    options.tls || options.plaintext_login,
                    "credentials without TLS"
                );
                assert!(out.is_empty());
                if let (Some(Command::Pass(_)), false) = (&parsed, sasl_response) {
                    assert!(user_given, "PASS without a USER accepted");
                }
                user_given = false;
                if credentials.password.expose().len() % 2 == 1 {
                    session.logged_in(messages.clone(), &mut out);
                    let (count, octets) = visible(&vec![false; messages.len()], &messages);
                    assert_eq!(
                        out,
                        format!("+OK Logged in, {count} messages ({octets} octets)\r\n").as_bytes()
                    );
                    marks = Some(vec![false; messages.len()]);
                } else {
                    // Any refusal: the session answers it and starts over.
                    let refusal = LoginRefusal::ALL
                        [credentials.password.expose().len() / 2 % LoginRefusal::ALL.len()];
                    session.login_refused(refusal, &mut out);
                    check_lines(&out);
                    assert!(out.starts_with(b"-ERR ["), "a refusal without its code");
                    assert!(!session.in_sasl_exchange() && !session.is_authenticated());
                }
            }
            Next::StartTls => {
                assert!(marks.is_none() && !sasl_response);
                assert!(
                    options.stls_available && !options.tls,
                    "STLS where not offered"
                );
                assert_eq!(out, b"+OK Begin TLS negotiation\r\n");
                session.tls_started();
                options.tls = true;
                user_given = false;
            }
            Next::Retrieve {
                index,
                number,
                size,
                body_lines,
            } => {
                let marks = marks.as_ref().expect("RETR before login");
                assert!(out.is_empty());
                assert_eq!(index + 1, number as usize);
                assert!(!marks[index], "RETR of a deleted message");
                assert_eq!(size, messages[index].size);
                match parsed {
                    Some(Command::Retr(n)) => assert!(n == number && body_lines.is_none()),
                    Some(Command::Top(n, lines)) => {
                        assert!(n == number && body_lines == Some(lines))
                    }
                    other => panic!("Retrieve for {other:?}"),
                }
            }
            Next::List(listing) => {
                let marks = marks.as_ref().expect("a listing before login");
                check_listing(&session, listing, &out, marks, &messages, budget);
            }
            Next::Update { mailbox, deleted } => {
                let marks = marks.expect("Update before login");
                assert_eq!(mailbox, messages);
                let marked: Vec<usize> = (0..marks.len()).filter(|&i| marks[i]).collect();
                assert_eq!(deleted, marked);
                return;
            }
            Next::Close => return,
        }
    }
});

/// A command of the TRANSACTION state only (RFC 1939 §5).
fn is_transaction_command(command: &Command) -> bool {
    matches!(
        command,
        Command::Stat
            | Command::List(_)
            | Command::Uidl(_)
            | Command::Retr(_)
            | Command::Top(..)
            | Command::Dele(_)
            | Command::Rset
            | Command::Noop
    )
}

/// The count and octets of the messages not marked deleted.
fn visible(marks: &[bool], messages: &[MessageInfo]) -> (usize, u64) {
    let kept = messages.iter().zip(marks).filter(|(_, &marked)| !marked);
    kept.fold((0, 0), |(count, octets), (m, _)| {
        (count + 1, octets + m.size)
    })
}

/// A response is whole CRLF lines; the first is a status line of at most
/// 512 octets; no line has a bare CR or LF.
fn check_lines(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert!(out.ends_with(b"\r\n"), "a response not ending in CRLF");
    let lines: Vec<&[u8]> = out[..out.len() - 2].split(|&b| b == b'\n').collect();
    for line in &lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!line.contains(&b'\r'), "a bare CR");
        assert!(line.len() + 2 <= MAX_STATUS_LINE, "a line over 512 octets");
    }
    let status = lines[0];
    assert!(
        status.starts_with(b"+OK") || status.starts_with(b"-ERR") || status.starts_with(b"+ "),
        "not a status line: {:?}",
        String::from_utf8_lossy(status)
    );
}

/// Checks the answer to a transaction command against the model, and
/// applies DELE and RSET to it.
fn check_transaction(command: &Command, out: &[u8], marks: &mut [bool], messages: &[MessageInfo]) {
    let text = String::from_utf8_lossy(out);
    let exists = |n: u32| {
        let index = (n as usize).checked_sub(1)?;
        (index < marks.len() && !marks[index]).then_some(index)
    };
    match *command {
        Command::Stat => {
            let (count, octets) = visible(marks, messages);
            assert_eq!(text, format!("+OK {count} {octets}\r\n"));
        }
        Command::Dele(n) => match exists(n) {
            Some(index) => {
                assert_eq!(text, format!("+OK Message {n} deleted\r\n"));
                marks[index] = true;
            }
            None => assert!(text.starts_with("-ERR"), "{text}"),
        },
        Command::Rset => {
            marks.iter_mut().for_each(|mark| *mark = false);
            let (count, octets) = visible(marks, messages);
            assert_eq!(text, format!("+OK {count} messages ({octets} octets)\r\n"));
        }
        Command::List(Some(n)) => match exists(n) {
            Some(index) => assert_eq!(text, format!("+OK {n} {}\r\n", messages[index].size)),
            None => assert!(text.starts_with("-ERR"), "{text}"),
        },
        Command::Uidl(Some(n)) => match exists(n) {
            Some(index) => assert_eq!(text, format!("+OK {n} {}\r\n", messages[index].uidl)),
            None => assert!(text.starts_with("-ERR"), "{text}"),
        },
        Command::Retr(n) | Command::Top(n, _) => {
            assert!(exists(n).is_none(), "no Retrieve for message {n}");
            assert!(text.starts_with("-ERR"), "{text}");
        }
        _ => {}
    }
}

/// Streams a listing in pieces of about `budget` octets and checks it
/// line by line against the model and the `+OK` line before it.
fn check_listing(
    session: &Session<Vec<MessageInfo>>,
    listing: Listing,
    status: &[u8],
    marks: &[bool],
    messages: &[MessageInfo],
    budget: usize,
) {
    let (count, octets) = visible(marks, messages);
    let status = String::from_utf8_lossy(status);
    match listing {
        Listing::Sizes => assert_eq!(
            status,
            format!("+OK {count} messages ({octets} octets)\r\n")
        ),
        Listing::Uidls => assert_eq!(status, "+OK Unique-ID listing follows\r\n"),
    }
    let mut body = Vec::new();
    let mut from = 0;
    let mut rounds = 0;
    loop {
        let limit = body.len() + budget;
        let Some(next) = session.write_listing(listing, from, &mut body, limit) else {
            break;
        };
        assert!(next > from, "a listing that does not progress");
        from = next;
        rounds += 1;
        assert!(rounds <= messages.len(), "a listing that does not end");
    }
    let mut expected = String::new();
    let mut listed_octets = 0;
    for (index, message) in messages.iter().enumerate().filter(|&(i, _)| !marks[i]) {
        let value = match listing {
            Listing::Sizes => message.size.to_string(),
            Listing::Uidls => message.uidl.clone(),
        };
        listed_octets += message.size;
        expected.push_str(&format!("{} {value}\r\n", index + 1));
    }
    expected.push_str(".\r\n");
    assert_eq!(String::from_utf8_lossy(&body), expected);
    assert_eq!(listed_octets, octets, "STAT is not the sum of the listing");
}
