//! The `popgate` command: serve, demo, check, config, passwd, and who,
//! kick and reload, which ask the running server over its control socket.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use popgate::client_settings;
use popgate::config::{BackendKind, Settings};
use popgate::control::client::{self, who_table};
use popgate::control::protocol::{Request, Response};
use popgate::control::{ControlSocket, Reload, ReloadOutcome};
use popgate::demo::{self, DemoOptions};
use popgate::server::{Gateway, Reloader};
use popgate_auth::LoginNameCase;
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
    /// from standard input. The name is stored in lower case, as servers
    /// with the default `[auth] login_name_case = "lower"` look it up; the
    /// file keeps its mode, owner and group (a new one is created 0640).
    Passwd {
        /// The htpasswd file (created if missing).
        #[arg(short, long)]
        file: PathBuf,
        /// The login name.
        user: String,
        /// bcrypt cost.
        #[arg(long, default_value_t = 12)]
        cost: u32,
        /// Store the name's local part as given, for servers with
        /// `[auth] login_name_case = "exact"` (the domain is still lowercased).
        #[arg(long)]
        keep_case: bool,
    },
    /// List the sessions of the running server, one a line: service, user,
    /// client address, TLS version, since when (UTC), state. Asks the
    /// control socket; run as root or as the user popgate runs as.
    Who {
        #[command(flatten)]
        control: ControlArgs,
        /// Print the sessions as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// End every session of USER on the running server, without applying
    /// their deletions (the client hears that the administrator
    /// disconnected it). Waits a few seconds for them to end, so their
    /// mailbox is free when it returns; exits non-zero when USER had none.
    Kick {
        #[command(flatten)]
        control: ControlArgs,
        /// The login name.
        user: String,
    },
    /// Reload the running server as SIGHUP does, and print what was
    /// reloaded; exits non-zero when something could not be.
    Reload {
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Where the running server's control socket is.
#[derive(Debug, Args)]
struct ControlArgs {
    /// The configuration file of the running server, for `[control] socket`.
    #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
    config: PathBuf,
    /// The control socket itself (then the configuration is not read).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
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
        Command::Passwd {
            file,
            user,
            cost,
            keep_case,
        } => passwd(&file, &user, cost, keep_case),
        Command::Who { control, json } => who(&control, json),
        Command::Kick { control, user } => kick(&control, user),
        Command::Reload { control } => reload_server(&control),
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
#[allow(unsafe_code)]
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
    // Every message and field goes through the escaping of log_text, so no
    // text from outside can start a line of its own.
    tracing_subscriber::fmt()
        .fmt_fields(popgate::log_text::EscapedFields::new())
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config: PathBuf, banner: Option<String>) -> Result<()> {
    let settings = Settings::load(&config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let gateway = Gateway::bind(&settings)
            .await
            .with_context(|| format!("starting with {}", config.display()))?;
        // Made as root, before popgate becomes the mail user, and given to it.
        let control = ControlSocket::open(&settings)
            .with_context(|| format!("starting with {}", config.display()))?;
        match &settings.store.mail_user {
            Some(user) => {
                popgate::privileges::become_user(user)
                    .with_context(|| format!("key `store.mail_user` in {}", config.display()))?;
                tracing::info!("running as mail user {user}");
                let unreadable = popgate::privileges::unreadable_reloadable_files(&settings);
                for (key, path, error) in unreadable {
                    tracing::warn!(
                        "{} (`{key}`) is not readable by mail user {user} ({error}): it was read \
                         at start as root; reloads will keep those contents until popgate restarts",
                        path.display()
                    );
                }
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
        let reload_now: Reload = Arc::new(move || reload(&reloader));
        let control = control.map(|control| {
            let answers = Arc::new(gateway.control(reload_now.clone()));
            tokio::spawn(control.serve(answers, stop_rx.clone()))
        });
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hangup.recv() => {
                        reload_now();
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
        // It stops at the same signal, and removes its socket.
        if let Some(control) = control {
            let _ = control.await;
        }
        Ok(())
    })
}

/// The reload SIGHUP and `popgate reload` run: systemd hears RELOADING
/// and READY around it, and the report is what `popgate reload` prints.
fn reload(reloader: &Reloader) -> ReloadOutcome {
    // systemd 253+ wants the reload's start time with RELOADING=1.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        notify_service_manager(&[NotifyState::Reloading, now]);
    }
    let report = reloader.reload();
    notify_service_manager(&[NotifyState::Ready]);
    ReloadOutcome {
        complete: report.complete,
        report: report.to_string(),
    }
}

/// Asks the running server `request` over its control socket.
fn ask(control: &ControlArgs, request: &Request) -> Result<Response> {
    let socket = match &control.socket {
        Some(socket) => socket.clone(),
        None => Settings::load(&control.config)?.control_socket(),
    };
    match client::ask(&socket, request)? {
        Response::Error(why) => bail!("popgate answered: {why}"),
        answer => Ok(answer),
    }
}

fn who(control: &ControlArgs, json: bool) -> Result<()> {
    let Response::Sessions(sessions) = ask(control, &Request::Who)? else {
        bail!("popgate answered something else than sessions");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
    } else {
        print!("{}", who_table(&sessions));
    }
    Ok(())
}

fn kick(control: &ControlArgs, user: String) -> Result<()> {
    let Response::Kicked {
        user,
        sessions,
        still_open,
    } = ask(control, &Request::Kick(user))?
    else {
        bail!("popgate answered something else than a kick");
    };
    if sessions == 0 {
        bail!("{user} has no session");
    }
    println!("kicked {sessions} session(s) of {user}");
    if still_open > 0 {
        println!("{still_open} still ending (busy in a step, e.g. a relay or an UPDATE under way)");
    }
    Ok(())
}

fn reload_server(control: &ControlArgs) -> Result<()> {
    let Response::Reloaded { complete, report } = ask(control, &Request::Reload)? else {
        bail!("popgate answered something else than a reload");
    };
    println!("{report}");
    if !complete {
        bail!("the reload was not complete: what could not be reloaded keeps its old contents");
    }
    Ok(())
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

fn passwd(file: &std::path::Path, user: &str, cost: u32, keep_case: bool) -> Result<()> {
    if popgate_auth::validate_login_name(user).is_err() {
        bail!("`{user}` is not a valid login name (letters, digits, . _ - + @; at most 64)");
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    let case = if keep_case {
        LoginNameCase::Exact
    } else {
        LoginNameCase::Lower
    };
    let hash = popgate_auth::hash_password_bcrypt(password, cost)?;
    let set = popgate_auth::set_htpasswd_entry(file, user, &hash, case)?;
    if set.user != user {
        let why = if keep_case {
            "the domain of a login name is case-insensitive"
        } else {
            "login names are compared in lower case (--keep-case keeps the local part as given)"
        };
        eprintln!("{user} stored as {}: {why}", set.user);
    }
    for line in &set.removed {
        eprintln!("line {line} removed: another entry for {}", set.user);
    }
    let done = match set.replaced {
        Some(line) => format!("replaced on line {line}"),
        None => "added".to_owned(),
    };
    eprintln!("{} {done} in {}", set.user, set.path.display());
    if set.created {
        eprintln!(
            "{} created with mode {:o}: give its group to the mail user if popgate drops to one",
            set.path.display(),
            popgate_auth::NEW_FILE_MODE
        );
    }
    Ok(())
}
