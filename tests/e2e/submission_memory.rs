//! What an idle submission connection that has not logged in costs the
//! server: measured as the growth of the process's resident memory
//! (`VmRSS` in /proc/PID/status) over hundreds of such connections.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Options, Server};
use crate::smtp_harness::{submission_addr, Smtp};

/// How many idle connections are measured.
const CONNECTIONS: usize = 500;

/// The server's resident memory, in KiB.
fn resident_kib(server: &Server) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A plaintext submission connection that read the greeting and sent
/// EHLO, as a client does before STARTTLS and AUTH, and then waits.
fn idle_client(server: &Server) -> Smtp {
    let mut smtp = Smtp::connect(submission_addr(server), None);
    let ehlo = smtp.cmd("EHLO client.test");
    assert!(ehlo.lines().all(|line| line.starts_with("250")), "{ehlo}");
    smtp
}

/// Resident memory per idle connection before login: 7.7–8.5 KiB
/// measured here (the task, a read buffer of at most 2 KiB, the session,
/// the output buffer), bounded at 16 KiB; docs/performance.md has the
/// figures.
///
/// Before: each connection held a 64 KiB input buffer from accept and read
/// through a 64 KiB array kept in its task while it waited: 73–75 KiB a
/// connection measured the same way, 36 MB for 500 connections before
/// anyone logged in.
#[test]
fn an_idle_submission_connection_before_login_holds_little_memory() {
    let server = Server::with(Options {
        pop3: vec!["max_connections_per_ip = 5000".into()],
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    // Warm up: the runtime's threads and the allocator's first arenas.
    let warm: Vec<_> = (0..50).map(|_| idle_client(&server)).collect();
    drop(warm);
    thread::sleep(Duration::from_millis(300));
    let before = resident_kib(&server);
    let clients: Vec<_> = (0..CONNECTIONS).map(|_| idle_client(&server)).collect();
    // Let every connection's task settle in its wait for input.
    let settle = Instant::now() + Duration::from_secs(1);
    let mut after = resident_kib(&server);
    while Instant::now() < settle {
        thread::sleep(Duration::from_millis(100));
        after = after.max(resident_kib(&server));
    }
    let per_connection = after.saturating_sub(before) as f64 / CONNECTIONS as f64;
    eprintln!(
        "{CONNECTIONS} idle submission connections before login: {before} KiB -> {after} KiB, \
         {per_connection:.1} KiB each"
    );
    assert!(
        per_connection < 16.0,
        "{per_connection:.1} KiB per idle connection"
    );
    drop(clients);
}
