//! End-to-end tests: the real `popgate` binary, real sockets, real TLS, real
//! Maildirs on disk, and real clients (curl, Python's poplib and smtplib)
//! and peers (an aiosmtpd upstream for the submission relay).

// Tests: every helper may unwrap, expect and panic, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod address_limits;
mod bounds;
mod control;
mod demo;
mod example_poller;
mod faults;
mod harness;
mod identity;
mod leave_on_server;
mod line_client;
mod local_delivery;
mod log_forging;
mod login_deadline;
mod login_names;
mod mailbox;
mod migration;
mod pam;
mod passwd;
mod poller;
mod privileges;
mod protocol;
mod protocol_log;
mod proxy_protocol;
mod real_clients;
mod request_deadlines;
mod sendmail;
mod smtp_harness;
mod startup;
mod submission;
mod submission_interop;
mod submission_limits;
mod submission_memory;
mod throttle;
mod update_order;
