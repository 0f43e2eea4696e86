//! The `popgate` command: serve, demo, check, settings, config, mailbox,
//! passwd, and who, kick and reload, which ask the running server over its
//! control socket.
//!
//! The thin edge of the binary: the command line is defined in
//! [`popgate::cli`] (so man pages and completions come from it); this file
//! parses it, dispatches, and owns the process-wide setup (allocator,
//! logging, signals, systemd notification).

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use popgate::cli::{Cli, Command, ControlArgs};
use popgate::client_settings;
use popgate::config::{BackendKind, Settings};
use popgate::control::client::{self, who_table};
use popgate::control::protocol::{Request, Response};
use popgate::control::{ControlSocket, Reload, ReloadOutcome};
use popgate::demo::{self, DemoOptions};
use popgate::reload::Reloader;
use popgate::server::Gateway;
use popgate_auth::LoginNameCase;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

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
            warn_days,
        } => check(&config, user, round_trip, wait, warn_days),
        Command::Settings { config, autoconfig } => {
            let settings = Settings::load(&config)?;
            if autoconfig {
                print!("{}", client_settings::autoconfig_xml(&settings)?);
                for caveat in client_settings::autoconfig_caveats(&settings) {
                    eprintln!("popgate: {caveat}");
                }
            } else {
                print!("{}", client_settings::describe(&settings));
            }
            Ok(())
        }
        Command::Config { config } => {
            let settings = Settings::load(&config)?;
            print!("{}", toml::to_string_pretty(&settings)?);
            Ok(())
        }
        Command::Mailbox { config, user } => {
            let settings = Settings::load(&config)?;
            print!("{}", popgate::mailbox_settings::report(&settings, &user)?);
            Ok(())
        }
        Command::Passwd {
            file,
            user,
            cost,
            keep_case,
        } => passwd(&file, &user, cost, keep_case),
        Command::Generate { what, dir } => popgate::generate::write(what, &dir)
            .with_context(|| format!("writing into {}", dir.display())),
        Command::Who { control, json } => who(&control, json),
        Command::Kick { control, user } => kick(&control, user),
        Command::Reload { control } => reload_server(&control),
    }
}

/// Blocks of at least this size are mapped for themselves and unmapped when
/// freed: above every per-connection buffer (a RETR's 32 KiB piece), below
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
    raise_descriptor_limit(settings.pop3.max_connections);
    // This thread runs the signals, the control socket and the metrics
    // listener; connections are served on the gateway's shards.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
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
                let unreadable =
                    popgate::privileges::unreadable_reloadable_files(&config, &settings);
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
        let reloader = gateway.reloader(&config);
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
                        // The reload reads files: off the async threads.
                        let reloading = reload_now.clone();
                        let _ = tokio::task::spawn_blocking(move || reloading()).await;
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
        gateway.run(stop_rx).await.context("serving")?;
        // It stops at the same signal, and removes its socket.
        if let Some(control) = control {
            let _ = control.await;
        }
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

/// The reload SIGHUP and `popgate reload` run (on a blocking thread: it
/// reads files): systemd hears RELOADING and READY around it, and the
/// report is what `popgate reload` prints.
fn reload(reloader: &Reloader) -> ReloadOutcome {
    // systemd 253+ wants the reload's start time with RELOADING=1.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        notify_service_manager(&[NotifyState::Reloading, now]);
    }
    let report = reloader.reload();
    notify_service_manager(&[NotifyState::Ready]);
    ReloadOutcome {
        complete: report.is_complete(),
        report: report.lines().join("\n"),
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

/// `popgate check`: the certificates served, then the steps of the user
/// named, if any; prints one line per step and fails if any step failed.
fn check(
    config: &std::path::Path,
    light_user: Option<String>,
    round_trip_user: Option<String>,
    wait: std::time::Duration,
    warn_days: u32,
) -> Result<()> {
    let settings = Settings::load(config)?;
    let user = round_trip_user.clone().or_else(|| light_user.clone());
    let password = match &user {
        Some(_) => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            password
        }
        None => String::new(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut reports = runtime.block_on(popgate::check::certificates(&settings, warn_days));
    if reports.iter().all(|report| report.outcome.is_ok()) {
        let more = match (light_user, round_trip_user) {
            (_, Some(user)) => runtime.block_on(popgate::check::round_trip(
                &settings, &user, &password, wait,
            )),
            (Some(user), None) => {
                runtime.block_on(popgate::check::light(&settings, &user, &password))
            }
            (None, None) => Vec::new(),
        };
        reports.extend(more);
    }
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
    match (failed, user) {
        (true, Some(user)) => bail!("check for {user} failed"),
        (true, None) => bail!("check failed"),
        (false, _) => Ok(()),
    }
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
