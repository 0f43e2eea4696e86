//! `popgate generate`: the manual pages and shell completions.
//!
//! Nothing here is kept by hand: `popgate(1)` and one page per subcommand
//! (`popgate-serve(1)`, …) come from the clap definitions in [`crate::cli`]
//! through `clap_mangen`, the completions for bash, zsh and fish through
//! `clap_complete`, and `popgate.toml(5)` from the annotated configuration
//! `examples/popgate.toml` (built into the binary, see [`config_page`]).
//! `scripts/package` runs the binary it packages with `generate`, so what
//! the package ships describes exactly that binary.
//!
//! The subcommand is hidden: it is a packaging tool, not something an admin
//! needs, so it is in neither the man pages nor the completions.

pub mod config_page;

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, Generated};

/// The annotated configuration that `popgate.toml(5)` is made from.
pub const ANNOTATED_CONFIG: &str = include_str!("../../examples/popgate.toml");

/// Writes what `what` names into `dir`, creating it if missing.
pub fn write(what: Generated, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    match what {
        Generated::Man => man_pages(dir),
        Generated::Completions => completions(dir),
    }
}

/// The command line as clap sees it once built: subcommands know their
/// full names (`popgate serve`) and display names (`popgate-serve`).
fn command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// Every visible command, the root first, then depth-first.
fn visible_commands(command: &clap::Command) -> Vec<clap::Command> {
    let mut all = vec![command.clone()];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        all.extend(visible_commands(sub));
    }
    all
}

/// `popgate.1`, `popgate-SUBCOMMAND.1` for each visible subcommand, and
/// `popgate.toml.5`.
fn man_pages(dir: &Path) -> io::Result<()> {
    let root = command();
    let commands = visible_commands(&root);
    let page_names: Vec<String> = commands.iter().map(page_name).collect();
    for (command, name) in commands.iter().zip(&page_names) {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .manual("popgate manual")
            .source(concat!("popgate ", env!("CARGO_PKG_VERSION")))
            .render(&mut page)?;
        let see_also = page_names
            .iter()
            .filter(|other| *other != name)
            .map(|other| format!("{other}(1)"))
            .chain(["popgate.toml(5)".to_owned()]);
        page.extend_from_slice(see_also_section(see_also).as_bytes());
        fs::write(dir.join(format!("{name}.1")), page)?;
    }
    let config_page = config_page::render(ANNOTATED_CONFIG, command().get_version());
    let see_also = page_names.iter().map(|name| format!("{name}(1)"));
    fs::write(
        dir.join("popgate.toml.5"),
        config_page + &see_also_section(see_also),
    )
}

/// The page name of a built command: `popgate`, `popgate-serve`.
fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

/// A SEE ALSO section listing `pages` (`name(section)`).
fn see_also_section(pages: impl Iterator<Item = String>) -> String {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roff::roman(pages.collect::<Vec<_>>().join(", "))]);
    roff.to_roff()
}

/// The command line without its hidden subcommands, for completions.
///
/// `clap_complete` completes hidden subcommands too, and clap cannot take
/// one out of a command, so the root is made anew around the same
/// arguments and the visible subcommands.
fn visible_command_line() -> clap::Command {
    let full = Cli::command();
    let mut root = clap::Command::new("popgate").version(env!("CARGO_PKG_VERSION"));
    if let Some(about) = full.get_about() {
        root = root.about(about.clone());
    }
    root.args(full.get_arguments().cloned())
        .subcommands(
            full.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        )
        .disable_help_subcommand(true)
}

/// Completion scripts, named as each shell's vendor directory wants them.
fn completions(dir: &Path) -> io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = visible_command_line();
        clap_complete::generate_to(shell, &mut command, "popgate", dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(what: Generated) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        write(what, dir.path()).unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (dir, names)
    }

    /// Caught: a subcommand without a page, the hidden `generate` with one.
    #[test]
    fn there_is_a_page_per_visible_subcommand_and_one_for_the_configuration() {
        let (dir, names) = generated(Generated::Man);
        let expected: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| format!("popgate-{}.1", sub.get_name()))
            .chain(["popgate.1".into(), "popgate.toml.5".into()])
            .collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(names, expected);
        assert!(!names.iter().any(|name| name.contains("generate")));
        let serve = fs::read_to_string(dir.path().join("popgate-serve.1")).unwrap();
        assert!(serve.contains("popgate serve"), "{serve}");
        assert!(serve.contains("/etc/popgate/popgate.toml"), "{serve}");
        assert!(serve.contains("popgate.toml(5)"), "{serve}");
        let root = fs::read_to_string(dir.path().join("popgate.1")).unwrap();
        assert!(root.contains("popgate\\-check(1)"), "{root}");
    }

    /// Caught: a shell missing, or completions that offer `generate`.
    #[test]
    fn completions_cover_bash_zsh_and_fish_and_every_visible_subcommand() {
        let (dir, names) = generated(Generated::Completions);
        assert_eq!(names, ["_popgate", "popgate.bash", "popgate.fish"]);
        for name in &names {
            let script = fs::read_to_string(dir.path().join(name)).unwrap();
            for sub in Cli::command()
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
            {
                assert!(script.contains(sub.get_name()), "{name} lacks {sub}");
            }
            assert!(
                script.contains("round-trip"),
                "{name} lacks check's options"
            );
            assert!(!script.contains("generate"), "{name} offers generate");
        }
    }
}
