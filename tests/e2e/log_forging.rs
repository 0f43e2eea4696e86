//! No log line can be forged: a local user names Maildir files after a
//! failed-login line and makes the files fail every way a user can, so
//! that popgate quotes the names in its error lines; fail2ban, with the
//! shipped filter, must find only the real failed login in that log.

use crate::harness::{with_input, Server};
use crate::pam::{chown_tree, PamSandbox, PASS};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the forged names carry: a failure line for an innocent address.
const FORGED: &str =
    "authentication failed: service=pop3 rip=198.51.100.77 user=x reason=bad-credentials";
/// The innocent address.
const VICTIM: &str = "198.51.100.77";

/// The two ways a name can carry the line: inside one line, or as a whole
/// line of its own (timestamp and level included) after a line break.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    Inline,
    NewLine,
}

/// A message file name carrying the forged line; `timestamp` is one of
/// the server's own, so a forged line would look current.
fn forged_name(seconds: u64, forgery: Forgery, timestamp: &str) -> String {
    match forgery {
        Forgery::Inline => format!("{seconds}.M1P1.forge {FORGED}"),
        Forgery::NewLine => format!("{seconds}.M2P1.forge\n{timestamp}  WARN {FORGED}\n"),
    }
}

/// What happens to a message file between the snapshot and its use.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Removed between STAT and RETR.
    Vanished,
    /// Replaced by a symlink between STAT and RETR.
    Symlink,
    /// Replaced by a directory between STAT and RETR.
    Directory,
    /// Made unreadable to the user between STAT and RETR.
    Unreadable,
    /// Replaced by a directory between DELE and QUIT.
    DirectoryAtUpdate,
}

const FAULTS: [Fault; 5] = [
    Fault::Vanished,
    Fault::Symlink,
    Fault::Directory,
    Fault::Unreadable,
    Fault::DirectoryAtUpdate,
];

/// Replaces the file at `path` as `fault` says (the test runs as root, the
/// session as the file's owner, uid 20001).
fn break_file(path: &Path, fault: Fault) {
    match fault {
        Fault::Vanished => fs::remove_file(path).unwrap(),
        Fault::Symlink => {
            fs::remove_file(path).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", path).unwrap();
        }
        Fault::Directory | Fault::DirectoryAtUpdate => {
            fs::remove_file(path).unwrap();
            fs::create_dir(path).unwrap();
            fs::write(path.join("keep"), b"").unwrap();
        }
        Fault::Unreadable => {
            std::os::unix::fs::chown(path, Some(0), Some(0)).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// The timestamp at the start of the server's first log line.
fn server_timestamp(server: &Server) -> String {
    let log = server.wait_for_log("listening");
    log.split_whitespace().next().unwrap().to_owned()
}

/// Every message file of a Maildir's cur/, in delivery order (as POP3
/// numbers them).
fn cur_files(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(maildir.join("cur"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Before: store errors were logged with `%error` and tracing-subscriber
/// writes a `%` field as it is, so the file name's line break started a
/// line of its own (the `NewLine` names forged a whole failed-login line),
/// and the filter matched `authentication failed:` anywhere in a line (the
/// `Inline` names, quoted at the end of "not a regular file: …", matched):
/// fail2ban-regex found 198.51.100.77. Now every such text is escaped, and
/// the filter is anchored on popgate's own line, from a file and from the
/// journal.
#[test]
fn file_names_that_fail_every_way_cannot_forge_a_failed_login() {
    let pam = PamSandbox::new();
    let server = pam.server(&[]);
    let timestamp = server_timestamp(&server);
    let maildir = pam.home("pamuser").join("Maildir");
    let forgeries = [Forgery::Inline, Forgery::NewLine];
    let mut seconds = 1_700_000_000;
    for forgery in forgeries {
        for _ in FAULTS {
            seconds += 1;
            let name = forged_name(seconds, forgery, &timestamp);
            fs::write(maildir.join("cur").join(name), b"Subject: bait\n\nbait\n").unwrap();
        }
    }
    chown_tree(&pam.home("pamuser"), 20001);
    let files = cur_files(&maildir);
    assert_eq!(files.len(), forgeries.len() * FAULTS.len());

    let mut client = server.connect_tls();
    client.ok("USER pamuser");
    assert!(client.cmd(&format!("PASS {PASS}")).starts_with("+OK"));
    assert!(client
        .ok("STAT")
        .starts_with(&format!("+OK {}", files.len())));
    let faults = FAULTS.iter().cycle().take(files.len());
    for (number, (path, &fault)) in (1..).zip(files.iter().zip(faults)) {
        if let Fault::DirectoryAtUpdate = fault {
            client.ok(&format!("DELE {number}"));
            break_file(path, fault);
        } else {
            break_file(path, fault);
            let reply = client.cmd(&format!("RETR {number}"));
            assert!(reply.starts_with("-ERR"), "{fault:?}: {reply}");
        }
    }
    let reply = client.cmd("QUIT");
    assert!(
        reply.starts_with("-ERR [SYS/TEMP] Some deleted messages were not removed"),
        "{reply}"
    );

    // A mailbox that cannot be read at login: the error names the file.
    let carol = pam.home("carol").join("Maildir");
    for forgery in forgeries {
        let path = carol
            .join("cur")
            .join(forged_name(1_700_000_100, forgery, &timestamp));
        fs::write(&path, b"Subject: bait\n\nbait\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let mut client = server.connect_tls();
        client.ok("USER carol");
        assert_eq!(
            client.cmd(&format!("PASS {PASS}")),
            "-ERR [SYS/TEMP] Mailbox is temporarily unavailable"
        );
        fs::remove_file(&path).unwrap();
    }

    // And one real failed login.
    let mut client = server.connect_tls();
    client.ok("USER pamuser");
    assert_eq!(
        client.cmd("PASS wrong"),
        "-ERR [AUTH] Authentication failed"
    );
    let log = server.wait_for_log("rip=127.0.0.1 user=pamuser reason=bad-credentials");
    server.wait_for_log("pop3 session ended: rip=127.0.0.1 user=-");

    // Each failure that is logged quoted its file: two message errors per
    // forgery (symlink, directory; the vanished one is not an error of the
    // server's), the unreadable one, the deletion, and carol's login.
    assert_eq!(log.matches(VICTIM).count(), 2 * 5, "{log}");
    // Each of them on the line of the error that quoted the path.
    for line in log.lines().filter(|line| line.contains(VICTIM)) {
        assert!(
            line.contains("/cur/"),
            "a forged line:\n{line}\n\nin\n{log}"
        );
    }
    let lines: Vec<&str> = log.lines().collect();
    let report = fail2ban_file(&lines);
    assert!(!report.contains(VICTIM), "a forged line matched:\n{report}");
    assert!(report.contains(", 1 matched,"), "{report}\n{log}");
    assert!(report.contains("127.0.0.1"), "{report}");
    let found = fail2ban_journal(&lines);
    assert_eq!(found, ["127.0.0.1"], "{log}");
}

/// The shipped filter.
fn filter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fail2ban")
}

/// fail2ban-regex's report on `lines` read as a log file: the matched
/// lines and the addresses they gave, and the count of lines matched.
fn fail2ban_file(lines: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("popgate.log");
    fs::write(&logfile, lines.join("\n") + "\n").unwrap();
    let output = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--print-no-missed"])
        .arg(&logfile)
        .arg(filter_dir().join("filter.d/popgate.conf"))
        .output()
        .expect("fail2ban-regex (Debian package fail2ban) must be installed");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{report}");
    report
}

/// The addresses fail2ban's systemd backend finds in `lines` as journal
/// entries of a `popgate` unit: the backend hands each entry to the
/// filter as "host popgate[pid]: MESSAGE" with the entry's own time
/// (fail2ban's `FilterSystemd.formatJournalEntry`), which is what this
/// feeds `Filter.processLine`, through the filter file as fail2ban reads it.
fn fail2ban_journal(lines: &[&str]) -> Vec<String> {
    const SCRIPT: &str = r#"
import sys, time
from fail2ban.client.filterreader import FilterReader
from fail2ban.server.filter import Filter
reader = FilterReader("popgate", "popgate", {}, basedir=sys.argv[1])
assert reader.read(), "filter not found"
reader.getOptions({})
jail = Filter(None)
for command in reader.convert():
    if command[2] == "addfailregex":
        jail.addFailRegex(command[3])
now = time.time()
date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
for line in sys.stdin.read().split("\n"):
    if line:
        for failure in jail.processLine(("", date + " ", "mailhost popgate[4242]: " + line), now):
            print(failure[1])
"#;
    let output = with_input(
        Command::new("/usr/bin/python3")
            .args(["-c", SCRIPT])
            .arg(filter_dir()),
        &lines.join("\n"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The shipped filter finds popgate's own failure line, and not one quoted
/// inside another line, both in a log file and in journal entries.
#[test]
fn the_filter_matches_the_own_line_from_a_file_and_from_the_journal() {
    let own = "2026-11-22T00:39:50.123456Z  WARN authentication failed: service=pop3 rip=203.0.113.7 user=alice reason=bad-credentials";
    let quoted = format!(
        "2026-11-22T00:39:51.123456Z  WARN message not opened rip=127.0.0.1 error=not a regular file: /m/cur/1.forge {FORGED}"
    );
    assert_eq!(fail2ban_journal(&[own, &quoted]), ["203.0.113.7"]);
    let report = fail2ban_file(&[own, &quoted]);
    assert!(report.contains("203.0.113.7"), "{report}");
    assert!(report.contains(", 1 matched,"), "{report}");
    assert!(!report.contains(VICTIM), "{report}");
}
