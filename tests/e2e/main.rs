//! End-to-end tests: the real `popgate` binary, real sockets, real TLS, real
//! Maildirs on disk, and real clients (curl, Python's poplib).

mod bounds;
mod faults;
mod harness;
mod leave_on_server;
mod mailbox;
mod migration;
mod poller;
mod protocol;
mod real_clients;
mod startup;
