//! The local MTA's `sendmail` command as the relay (`relay = "sendmail"`).
//!
//! popgate runs `sendmail -i [-f sender] -- recipient…`, the interface every
//! MTA's sendmail offers (Postfix, Exim, OpenSMTPD, msmtp), writes the
//! message to its standard input, closes it, and waits for the command to
//! exit. Exit status 0 is the only acceptance: the client hears `250` then,
//! and never otherwise.
//!
//! Any other status is read by sysexits.h, the way sendmail itself reads the
//! exit status of its delivery agents (sendmail's `deliver.c`, `markfailure`:
//! EX_TEMPFAIL, EX_IOERR and EX_OSERR queue the message for a later try,
//! every other status bounces it). So the client hears:
//!
//! | exit status | reply |
//! | --- | --- |
//! | 71 EX_OSERR, 74 EX_IOERR, 75 EX_TEMPFAIL | `451 4.0.0`: try again later |
//! | 67 EX_NOUSER, 68 EX_NOHOST | `550 5.1.1`, `550 5.1.2` |
//! | 66 EX_NOINPUT, 73 EX_CANTCREAT, 77 EX_NOPERM | `550 5.3.0`, `550 5.0.0`, `550 5.0.0` |
//! | 64 EX_USAGE, 65 EX_DATAERR, 69 EX_UNAVAILABLE, 70 EX_SOFTWARE | `554 5.0.0`, `554 5.6.0`, `554 5.0.0`, `554 5.3.0` |
//! | 72 EX_OSFILE, 76 EX_PROTOCOL, 78 EX_CONFIG | `554 5.3.5`, `554 5.5.0`, `554 5.3.5` |
//! | any other status | `554 5.3.0` (sendmail's "unknown mailer error") |
//! | killed by a signal | `451 4.3.0` (sendmail's `endmailer` treats it as EX_TEMPFAIL) |
//!
//! The enhanced status codes are those of sendmail's sysexits table
//! (`SysExMsg` in sendmail's `sysexits.c`); its 500 and 501 for EX_USAGE
//! and EX_DATAERR become 554 here, because they would tell the client that
//! its DATA command was malformed. Postfix's pipe(8) reads the statuses the
//! same way (`global/sys_exits.c`) except that it bounces EX_IOERR; popgate
//! follows sendmail there, since an I/O error (a failed write, a full disk)
//! is usually a passing condition. The first line the command wrote to
//! standard error is passed on to the client after the status text.
//!
//! lettre's `AsyncSendmailTransport` is not used: it reports a failure as
//! the command's standard error text only, so the exit status, and with it
//! the difference between "try later" and "never", is lost.

use std::path::PathBuf;
use std::process::Stdio;

use lettre::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::outcome::RelayOutcome;
use crate::log_text::LogText;

/// The most octets of the command's standard error kept (the rest is
/// read and dropped, so the command never blocks on a full pipe).
const MAX_STDERR: u64 = 4096;
/// The most characters of the command's standard error passed to the client.
const MAX_REASON: usize = 200;

/// The sendmail command of the local MTA.
#[derive(Debug)]
pub struct Sendmail {
    command: PathBuf,
}

impl Sendmail {
    /// Runs `command` (a path, or a name looked up in PATH) for each message.
    pub fn new(command: PathBuf) -> Sendmail {
        Sendmail { command }
    }

    /// Hands `data` from `from` (`None`: the null sender, left to the MTA)
    /// to `to`, and says how it went. Dropping the future (a timeout) kills
    /// the command.
    pub async fn send(&self, from: Option<&Address>, to: &[Address], data: &[u8]) -> RelayOutcome {
        let mut child = match self.command(from, to).spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::warn!(target: "popgate::relay", command = %LogText(self.command.display()), error = %LogText(&error), "sendmail cannot be started");
                return RelayOutcome::Temporary(
                    "4.3.0 Local MTA cannot be started, try again later".into(),
                );
            }
        };
        let (written, said) = exchange(&mut child, data).await;
        let status = child.wait().await;
        let said = String::from_utf8_lossy(&said);
        let outcome = match (&status, &written) {
            (Ok(status), Ok(())) => exit_outcome(status.code(), first_line(&said)),
            // It ended before taking the whole message: whatever it
            // accepted is not what the client sent.
            (Ok(status), Err(_)) if status.success() => RelayOutcome::Temporary(
                "4.3.0 Local MTA did not read the whole message, try again later".into(),
            ),
            (Ok(status), Err(_)) => exit_outcome(status.code(), first_line(&said)),
            (Err(_), _) => {
                RelayOutcome::Temporary("4.3.0 Local MTA failed, try again later".into())
            }
        };
        if outcome != RelayOutcome::Accepted {
            tracing::warn!(
                target: "popgate::relay",
                command = %LogText(self.command.display()),
                status = ?status.as_ref().ok(),
                write_error = ?written.as_ref().err(),
                stderr = %LogText(said.trim_end()),
                "sendmail did not accept the message",
            );
        }
        outcome
    }

    /// `sendmail -i [-f from] -- to…`, as lettre's transport ran it; the
    /// recipients after `--` can never be taken for options.
    fn command(&self, from: Option<&Address>, to: &[Address]) -> Command {
        let mut command = Command::new(&self.command);
        command.arg("-i");
        if let Some(from) = from {
            command.arg("-f").arg(from);
        }
        command
            .arg("--")
            .args(to)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// Writes `data` to the child's standard input (then closes it) while
/// reading its standard error, so a command that complains before reading
/// all its input cannot leave both sides waiting. Returns how the write
/// went and the first [`MAX_STDERR`] octets of standard error.
async fn exchange(child: &mut Child, data: &[u8]) -> (std::io::Result<()>, Vec<u8>) {
    let (stdin, stderr) = (child.stdin.take(), child.stderr.take());
    let write = async move {
        let mut stdin = stdin.ok_or_else(|| std::io::Error::other("no stdin"))?;
        stdin.write_all(data).await?;
        stdin.shutdown().await
    };
    let read = async move {
        let mut said = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut said).await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        }
        said
    };
    tokio::join!(write, read)
}

/// The first non-empty line of `text`, cut to [`MAX_REASON`] characters.
fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| line.chars().take(MAX_REASON).collect())
}

/// What an exit status (`None`: killed by a signal) means for the client;
/// `said` is the command's first line of standard error.
fn exit_outcome(code: Option<i32>, said: Option<String>) -> RelayOutcome {
    let reason = |text: String| match &said {
        Some(said) => format!("{text}: {said}"),
        None => text,
    };
    let Some(code) = code else {
        return RelayOutcome::Temporary(reason(
            "4.3.0 Local MTA was killed, try again later".into(),
        ));
    };
    let (reply, status, text) = match code {
        0 => return RelayOutcome::Accepted,
        71 => (451, "4.0.0", "operating system error"),
        74 => (451, "4.0.0", "I/O error"),
        75 => (451, "4.0.0", "temporary failure"),
        64 => (554, "5.0.0", "bad usage"),
        65 => (554, "5.6.0", "data format error"),
        66 => (550, "5.3.0", "cannot open input"),
        67 => (550, "5.1.1", "user unknown"),
        68 => (550, "5.1.2", "host unknown"),
        69 => (554, "5.0.0", "service unavailable"),
        70 => (554, "5.3.0", "internal error"),
        72 => (554, "5.3.5", "system file missing"),
        73 => (550, "5.0.0", "cannot create output"),
        76 => (554, "5.5.0", "remote protocol error"),
        77 => (550, "5.0.0", "insufficient permission"),
        78 => (554, "5.3.5", "local configuration error"),
        _ => (554, "5.3.0", "unknown mailer error"),
    };
    if reply < 500 {
        RelayOutcome::Temporary(reason(format!(
            "{status} Try again later: {text} (sendmail exit {code})"
        )))
    } else {
        RelayOutcome::Permanent(
            reply,
            reason(format!("{status} {text} (sendmail exit {code})")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exit_zero_is_an_acceptance() {
        assert_eq!(exit_outcome(Some(0), None), RelayOutcome::Accepted);
        assert_eq!(
            exit_outcome(Some(0), Some("warning: something".into())),
            RelayOutcome::Accepted
        );
    }

    #[test]
    fn sendmails_retry_statuses_are_temporary() {
        for code in [71, 74, 75] {
            match exit_outcome(Some(code), None) {
                RelayOutcome::Temporary(text) => {
                    assert!(text.starts_with("4.0.0 Try again later: "), "{text}");
                    assert!(text.ends_with(&format!("(sendmail exit {code})")), "{text}");
                }
                other => panic!("exit {code}: {other:?}"),
            }
        }
        assert_eq!(
            exit_outcome(None, Some("core dumped".into())),
            RelayOutcome::Temporary(
                "4.3.0 Local MTA was killed, try again later: core dumped".into()
            )
        );
    }

    #[test]
    fn every_other_status_is_permanent_with_its_enhanced_code() {
        let expected = [
            (64, 554, "5.0.0"),
            (65, 554, "5.6.0"),
            (66, 550, "5.3.0"),
            (67, 550, "5.1.1"),
            (68, 550, "5.1.2"),
            (69, 554, "5.0.0"),
            (70, 554, "5.3.0"),
            (72, 554, "5.3.5"),
            (73, 550, "5.0.0"),
            (76, 554, "5.5.0"),
            (77, 550, "5.0.0"),
            (78, 554, "5.3.5"),
            (1, 554, "5.3.0"),
            (255, 554, "5.3.0"),
        ];
        for (code, reply, status) in expected {
            match exit_outcome(Some(code), None) {
                RelayOutcome::Permanent(got, text) => {
                    assert_eq!(got, reply, "exit {code}");
                    assert!(text.starts_with(&format!("{status} ")), "{code}: {text}");
                }
                other => panic!("exit {code}: {other:?}"),
            }
        }
        assert_eq!(
            exit_outcome(Some(67), first_line("\n  bob: no such user \nmore\n")),
            RelayOutcome::Permanent(
                550,
                "5.1.1 user unknown (sendmail exit 67): bob: no such user".into()
            )
        );
    }

    #[test]
    fn the_reason_is_one_bounded_line() {
        assert_eq!(first_line(""), None);
        assert_eq!(first_line("\n\n"), None);
        assert_eq!(
            first_line(&"é".repeat(500)).unwrap().chars().count(),
            MAX_REASON
        );
    }
}
