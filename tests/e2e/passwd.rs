//! `popgate passwd`, the real binary on real files: the file keeps its
//! mode, owner and group and every other line; names are stored folded.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{popgate_bin, with_input};

fn passwd(file: &Path, args: &[&str], password: &str) -> Output {
    let output = with_input(
        Command::new(popgate_bin())
            .args(["passwd", "--cost", "4", "-f"])
            .arg(file)
            .args(args),
        &format!("{password}\n"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Issue 10 item 7 and issue 16 item 6: a `0640 root:<group>` file stays
/// `0640 root:<group>` after `popgate passwd` (written to a temporary file
/// with the same metadata, synced, renamed); other lines and comments stay
/// byte for byte; `Alice` is stored as `alice`, and the command says so; a
/// second run replaces her line in place. Before, the file was recreated
/// with the umask's mode and root's group, so the mail user could no longer
/// read it, and names were stored as typed.
#[test]
fn the_file_keeps_mode_owner_and_group_and_names_are_stored_folded() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: giving the file another group needs root (CI runs as root)");
        return;
    }
    let group = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.htpasswd");
    let before =
        "# popgate users\r\nbob:$2y$04$bobbobbobbobbobbobbobuJ8Gv3dmcCm8qk8pm7OUh1E5X0mmTqK\n\n";
    fs::write(&file, before).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&file, Some(0), Some(group)).unwrap();

    let output = passwd(&file, &["Alice"], "first password");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("Alice stored as alice"), "{said}");
    let metadata = fs::metadata(&file).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o640);
    assert_eq!((metadata.uid(), metadata.gid()), (0, group));
    let after = fs::read_to_string(&file).unwrap();
    let (kept, added) = after.split_at(before.len());
    assert_eq!(kept, before);
    assert!(
        added.starts_with("alice:$2") && added.ends_with('\n'),
        "{after}"
    );

    passwd(&file, &["alice"], "second password");
    let again = fs::read_to_string(&file).unwrap();
    assert_eq!(again.lines().count(), 4, "{again}");
    assert!(again.starts_with(before), "{again}");
    assert_ne!(again, after, "the hash changed");
    let metadata = fs::metadata(&file).unwrap();
    assert_eq!(
        (metadata.mode() & 0o7777, metadata.uid(), metadata.gid()),
        (0o640, 0, group)
    );
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left behind");
}

/// A new file is created 0640 (the group — the mail user's, once chgrp'd —
/// may read it, nobody else), whatever the umask; `--keep-case` stores the
/// local part as given for `login_name_case = "exact"` servers.
#[test]
fn a_new_file_is_0640_and_keep_case_keeps_the_local_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.htpasswd");
    let output = passwd(&file, &["--keep-case", "Carol@Example.COM"], "pw");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("created with mode 640"), "{said}");
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o640);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("Carol@example.com:$2"), "{text}");
}
