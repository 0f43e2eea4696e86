//! End-to-end tests: the real `popgate` binary, real sockets, real TLS, real
//! Maildirs on disk, and real clients (curl, Python's poplib and smtplib)
//! and peers (an aiosmtpd upstream for the submission relay).

// Tests: every helper may unwrap, expect and panic, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod address_limits;
mod autoconfig;
mod bounds;
mod certificates;
mod connections;
mod control;
mod demo;
mod faults;
mod guides;
mod harness;
mod hostile;
mod identity;
mod leave_on_server;
mod line_client;
mod local_delivery;
mod log_forging;
mod login_deadline;
mod login_names;
mod mailbox;
mod metrics;
mod migration;
mod package;
mod pam;
mod passwd;
mod per_mailbox;
mod poller;
mod privileges;
mod protocol;
mod protocol_log;
mod proxy_protocol;
mod real_clients;
mod reload;
/// The reply poller example's message reading, with its unit tests: cargo
/// builds an example either as the program (which `reply_poller` runs
/// against the server) or as a test harness, not both, so its tests run here.
#[path = "../../examples/reply_poller/reply.rs"]
mod reply;
mod reply_poller;
mod request_deadlines;
mod sendmail;
mod slow_clients;
mod smtp_harness;
mod startup;
mod submission;
mod submission_interop;
mod submission_limits;
mod submission_memory;
mod throttle;
mod update_order;
