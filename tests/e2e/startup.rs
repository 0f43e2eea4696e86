//! Start-up: a configuration that cannot work stops popgate with a message
//! naming what to fix; SIGTERM ends it cleanly; the demo works as printed.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::harness::{popgate_bin, serve_refused, Server};

fn serve_fails_with(config: &str, dir: &std::path::Path) -> String {
    let path = dir.join("popgate.toml");
    fs::write(&path, config).unwrap();
    serve_refused(&path)
}

#[test]
fn unusable_configurations_are_refused_with_the_key_and_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let error = serve_fails_with("[pop3]\nlistn = [\"127.0.0.1:0\"]\n", dir.path());
    assert!(
        error.contains("listn") && error.contains("popgate.toml"),
        "{error}"
    );
    let error = serve_fails_with("[pop3]\nlisten_tls = []\nlogin = \"maybe\"\n", dir.path());
    assert!(error.contains("maybe"), "{error}");
    let error = serve_fails_with(
        &format!("[tls]\ncert = \"{d}/missing.pem\"\nkey = \"{d}/missing.key\"\n[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n"),
        dir.path(),
    );
    assert!(error.contains("missing.pem"), "{error}");
    let error = serve_fails_with(
        &format!("[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n[auth]\nhtpasswd = \"{d}/nope.htpasswd\"\n"),
        dir.path(),
    );
    assert!(error.contains("nope.htpasswd"), "{error}");
    assert!(!error.contains("panicked"), "{error}");
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("popgate.toml");
    fs::write(&path, "[pop3]\nlisten_tls = []\nlogin = \"secure\"\n").unwrap();
    let output = Command::new(popgate_bin())
        .args(["config", "-c"])
        .arg(&path)
        .env("POPGATE_POP3__LOGIN", "plaintext")
        .env("POPGATE_POP3__MAX_COMMAND_SIZE", "1024")
        .env("POPGATE_BIN", "ignored: not a configuration key")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("login = \"plaintext\""), "{printed}");
    assert!(printed.contains("max_command_size = 1024"), "{printed}");
    let output = Command::new(popgate_bin())
        .args(["config", "-c"])
        .arg(&path)
        .env("POPGATE_POP3__LGIN", "plaintext")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lgin"));
}

#[test]
fn sigterm_closes_idle_sessions_without_applying_their_deletions() {
    let mut server = Server::start();
    crate::harness::deliver(
        &server.maildir("alice"),
        1_700_000_000,
        b"Subject: x\n\nx\n",
    );
    let mut client = server.login("alice");
    client.ok("DELE 1");
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        client.try_line().as_deref(),
        Some("-ERR [SYS/TEMP] Server shutting down, try again later")
    );
    let exit = server
        .wait_exit(Duration::from_secs(10))
        .expect("popgate did not exit");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        crate::harness::message_files(&server.maildir("alice")).len(),
        1
    );
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let socket_dir = tempfile::tempdir().unwrap();
    let socket_path = socket_dir.path().join("notify");
    let manager = UnixDatagram::bind(&socket_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut server = Server::with(crate::harness::Options {
        env: vec![("NOTIFY_SOCKET".into(), socket_path.display().to_string())],
        ..crate::harness::Options::default()
    });
    let next = || {
        let mut buffer = [0u8; 512];
        let n = manager
            .recv(&mut buffer)
            .expect("no notification from popgate");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1\n");
    signal("-TERM");
    assert_eq!(next(), "STOPPING=1\n");
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}
