//! `popgate demo` works as printed: the commands it shows, run by a shell,
//! send a message from demo to friend through submission (curl, STARTTLS,
//! the maildir relay) and fetch it back as friend over POP3S (curl).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::popgate_bin;

/// Ports that were free a moment ago (bound to port 0, then released).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a shell snippet exactly as a person would paste it.
fn shell(snippet: &str) -> Vec<u8> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(snippet)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{snippet}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Starts `popgate demo` on free ports and reads its instructions; `None`
/// if it exited before printing them (a port was taken meanwhile).
fn start_demo(dir: &std::path::Path) -> Option<(Demo, Vec<String>, Vec<u16>)> {
    let ports = free_ports(4);
    let mut child = Command::new(popgate_bin())
        .arg("demo")
        .arg("--dir")
        .arg(dir.join("sandbox"))
        .args(["--pop3-port", &ports[0].to_string()])
        .args(["--pop3s-port", &ports[1].to_string()])
        .args(["--submission-port", &ports[2].to_string()])
        .args(["--submissions-port", &ports[3].to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|e| match e {
                mpsc::RecvTimeoutError::Disconnected => e,
                mpsc::RecvTimeoutError::Timeout => panic!("demo did not start: {printed:?}"),
            })
            .ok()?;
        let done = line.starts_with("Stop with Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    Some((_demo, printed, ports))
}

#[test]
fn the_printed_commands_send_from_demo_to_friend_and_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    // Ports freed a moment ago can be taken by a parallel test before the
    // demo binds them; then the demo exits, and we try again on others.
    let (_demo, printed, ports) = (0..3)
        .find_map(|_| start_demo(dir.path()))
        .expect("demo did not start on three sets of free ports");
    let section = |start: &str, end: &str| -> String {
        let from = printed.iter().position(|l| l.starts_with(start)).unwrap() + 1;
        let to = from
            + printed[from..]
                .iter()
                .position(|l| l.starts_with(end))
                .unwrap();
        printed[from..to].join("\n")
    };
    let send = section(
        "Send a message from demo to friend",
        "and fetch it as friend",
    );
    assert!(
        send.contains(&format!("smtp://127.0.0.1:{}", ports[2])),
        "{send}"
    );
    shell(&send);
    let fetch = section("and fetch it as friend over POP3S", "Thunderbird");
    let fetched = shell(fetch.trim());
    let expected =
        b"From: demo@localhost\r\nTo: friend@localhost\r\nSubject: Hello\r\n\r\nHi friend!\r\n";
    assert!(
        fetched.ends_with(expected),
        "{}",
        String::from_utf8_lossy(&fetched)
    );
    let text = String::from_utf8_lossy(&fetched);
    assert!(
        text.starts_with("Received: from ") && text.contains("(authenticated user demo)"),
        "{text}"
    );
}
