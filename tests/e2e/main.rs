//! End-to-end tests: the real `popgate` binary, real sockets, real TLS, real
//! Maildirs on disk, and real clients (curl, Python's poplib and smtplib)
//! and peers (an aiosmtpd upstream for the submission relay).

mod bounds;
mod connections;
mod demo;
mod example_poller;
mod faults;
mod harness;
mod identity;
mod leave_on_server;
mod local_delivery;
mod mailbox;
mod migration;
mod pam;
mod poller;
mod privileges;
mod protocol;
mod protocol_log;
mod proxy_protocol;
mod real_clients;
mod sendmail;
mod smtp_harness;
mod startup;
mod submission;
mod submission_limits;
mod throttle;
