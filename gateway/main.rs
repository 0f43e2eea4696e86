//! The `popgate` command: serve, demo, check, config, passwd.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use popgate::client_settings;
use popgate::config::{BackendKind, Settings};
use popgate::demo::{self, DemoOptions};
use popgate::server::Gateway;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A POP3 gateway for existing Maildir folders.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve POP3 (and submission, when configured) as the configuration file says.
    Serve {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
    },
    /// Set up a sandbox (certificate, user, Maildir) and serve it on loopback.
    Demo {
        /// Where to create the sandbox.
        #[arg(long, default_value = "popgate-demo")]
        dir: PathBuf,
        /// Plaintext POP3 port (STLS).
        #[arg(long, default_value_t = 2110)]
        pop3_port: u16,
        /// Implicit-TLS POP3 port.
        #[arg(long, default_value_t = 2995)]
        pop3s_port: u16,
        /// Submission port (STARTTLS).
        #[arg(long, default_value_t = 2587)]
        submission_port: u16,
        /// Implicit-TLS submission port.
        #[arg(long, default_value_t = 2465)]
        submissions_port: u16,
    },
    /// Send a message through our own submission listener and fetch it back
    /// over our own POP3, reporting each step; reads USER's password from
    /// standard input. Exits non-zero on any failure.
    Check {
        /// The configuration file of the running server.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
        /// The light check as USER: TLS, login, STAT, UIDL, TOP; changes nothing.
        #[arg(
            long,
            value_name = "USER",
            required_unless_present = "round_trip",
            conflicts_with = "round_trip"
        )]
        user: Option<String>,
        /// Send a message as USER through submission and fetch it back over POP3.
        #[arg(long, value_name = "USER")]
        round_trip: Option<String>,
        /// How long to wait for the message to arrive.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Print what users type into their mail client (server, ports, security).
    Settings {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
    },
    /// Print the effective configuration (file plus environment overrides).
    Config {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
    },
    /// Add or replace a user in an htpasswd file (bcrypt); reads the password
    /// from standard input.
    Passwd {
        /// The htpasswd file (created if missing).
        #[arg(short, long)]
        file: PathBuf,
        /// The login name.
        user: String,
        /// bcrypt cost.
        #[arg(long, default_value_t = 12)]
        cost: u32,
    },
}

fn main() -> Result<()> {
    return_big_blocks_to_the_kernel();
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { config } => serve(config, None),
        Command::Demo {
            dir,
            pop3_port,
            pop3s_port,
            submission_port,
            submissions_port,
        } => {
            let demo = demo::prepare(DemoOptions {
                dir,
                pop3_port,
                pop3s_port,
                submission_port,
                submissions_port,
            })
            .context("setting up the demo sandbox")?;
            let instructions = demo.instructions();
            serve(demo.config, Some(instructions))
        }
        Command::Check {
            config,
            user,
            round_trip,
            wait,
        } => check(&config, user, round_trip, wait),
        Command::Settings { config } => {
            print!("{}", client_settings::describe(&Settings::load(&config)?));
            Ok(())
        }
        Command::Config { config } => {
            let settings = Settings::load(&config)?;
            print!("{}", toml::to_string_pretty(&settings)?);
            Ok(())
        }
        Command::Passwd { file, user, cost } => passwd(&file, &user, cost),
    }
}

/// Blocks of at least this size are mapped for themselves and unmapped when
/// freed: above every per-connection buffer (the 128 KiB RETR chunk), below
/// the arrays a snapshot of a big Maildir keeps (a few MiB each).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: std::ffi::c_int = 256 * 1024;

/// Makes freed big blocks go back to the kernel for good.
///
/// A session on a 100,000-message Maildir holds a few blocks of several MiB
/// (its snapshot) and frees them when it ends. glibc maps such blocks for
/// themselves, but only until the first one is freed: it then raises its
/// threshold to that size and serves later ones from its heaps, whose freed
/// memory stays with the process and, spread over the per-thread heaps of
/// the blocking pool, adds up session after session (a peak of 21 to 28 MiB
/// after three logins on such a Maildir instead of 18). Setting the
/// threshold turns that adjustment off.
fn return_big_blocks_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; it
    // is called first thing in main, before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config: PathBuf, banner: Option<String>) -> Result<()> {
    let settings = Settings::load(&config)?;
    raise_descriptor_limit(settings.pop3.max_connections);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let gateway = Gateway::bind(&settings)
            .await
            .with_context(|| format!("starting with {}", config.display()))?;
        match &settings.store.mail_user {
            Some(user) => {
                popgate::privileges::become_user(user)
                    .with_context(|| format!("key `store.mail_user` in {}", config.display()))?;
                tracing::info!("running as mail user {user}");
            }
            None if settings.auth.backend == BackendKind::Htpasswd
                && nix::unistd::geteuid().is_root() =>
            {
                tracing::warn!(
                    "serving virtual users as root: set [store] mail_user to the owner of their Maildirs"
                );
            }
            None => {}
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let reloader = gateway.reloader();
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hangup.recv() => {
                        // systemd 253+ wants the reload's start time with RELOADING=1.
                        if let Ok(now) = NotifyState::monotonic_usec_now() {
                            notify_service_manager(&[NotifyState::Reloading, now]);
                        }
                        reloader.reload();
                        notify_service_manager(&[NotifyState::Ready]);
                    }
                    _ = terminate.recv() => break,
                    _ = interrupt.recv() => break,
                }
            }
            notify_service_manager(&[NotifyState::Stopping]);
            let _ = stop_tx.send(true);
        });
        if let Some(text) = banner {
            println!("{text}");
        }
        // Listeners are bound: connections wait in their backlog from now on.
        notify_service_manager(&[NotifyState::Ready]);
        gateway.run(stop_rx).await;
        Ok(())
    })
}

/// Raises the soft descriptor limit to what `max_connections` needs (up to
/// the hard limit, which stays the administrator's: see
/// [`popgate::descriptors`]), and warns once when the hard limit is short.
fn raise_descriptor_limit(max_connections: usize) {
    use popgate::descriptors::{self, Limit};
    match descriptors::raise_soft_limit(max_connections) {
        Ok(Limit::Enough { soft, needed }) => tracing::info!(
            "descriptor limit: {soft} (max_connections = {max_connections} needs {needed})"
        ),
        Ok(Limit::Raised { from, to }) => tracing::info!(
            "descriptor limit raised from {from} to {to} for max_connections = {max_connections}"
        ),
        Ok(Limit::Short { from, hard, needed }) => {
            let soft = if from < hard {
                format!("soft limit raised from {from} to {hard}")
            } else {
                format!("soft limit {from}")
            };
            tracing::warn!(
                "descriptor limit too low: max_connections = {max_connections} needs {needed} \
                 descriptors ({} per connection, {} for the process) but the hard limit is \
                 {hard} ({soft}); beyond it new connections wait until sessions end. Set \
                 LimitNOFILE={needed} in the systemd unit, or `ulimit -n {needed}` in the shell \
                 that starts popgate, or lower max_connections",
                descriptors::PER_CONNECTION,
                descriptors::RESERVE,
            )
        }
        Err(error) => tracing::warn!("cannot raise the descriptor limit: {error}"),
    }
}

/// Tells systemd (`Type=notify`) how the service is doing; a no-op when
/// popgate was not started by a service manager.
fn notify_service_manager(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {error}");
    }
}

fn check(
    config: &std::path::Path,
    light_user: Option<String>,
    round_trip_user: Option<String>,
    wait: std::time::Duration,
) -> Result<()> {
    let settings = Settings::load(config)?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (user, reports) = match (light_user, round_trip_user) {
        (_, Some(user)) => {
            let reports = popgate::check::round_trip(&settings, &user, password, wait);
            (user.clone(), runtime.block_on(reports))
        }
        (Some(user), None) => {
            let reports = popgate::check::light(&settings, &user, password);
            (user.clone(), runtime.block_on(reports))
        }
        (None, None) => bail!("name a user: --user USER or --round-trip USER"),
    };
    let mut failed = false;
    for report in &reports {
        let (status, text) = match &report.outcome {
            Ok(text) => ("ok  ", text),
            Err(text) => {
                failed = true;
                ("FAIL", text)
            }
        };
        println!(
            "{status} {:<6} {:>6} ms  {text}",
            report.step,
            report.elapsed.as_millis()
        );
    }
    if failed {
        bail!("check for {user} failed");
    }
    Ok(())
}

fn passwd(file: &std::path::Path, user: &str, cost: u32) -> Result<()> {
    if popgate_auth::validate_login_name(user).is_err() {
        bail!("`{user}` is not a valid login name (letters, digits, . _ - + @; at most 64)");
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    let hash = popgate_auth::hash_password_bcrypt(password, cost)?;
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let prefix = format!("{user}:");
    let mut lines: Vec<&str> = existing
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .collect();
    let entry = format!("{user}:{hash}");
    lines.push(&entry);
    let tmp = file.with_extension("tmp");
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    eprintln!("{user} written to {}", file.display());
    Ok(())
}
