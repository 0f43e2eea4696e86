//! Setting a user's entry in an htpasswd file (`popgate passwd`).
//!
//! Two halves: [`upsert_entry`] is the pure edit — replace the user's line
//! or add one, every other line and comment kept byte for byte — and
//! [`set_htpasswd_entry`] does the file's I/O around it:
//!
//! 1. the file is read (bounded by [`MAX_HTPASSWD_SIZE`]); a symbolic link
//!    is followed to the file it names, which is the one replaced;
//! 2. the new contents go to a temporary file in the same directory, created
//!    with a unique name and `O_EXCL` (the `tempfile` crate), so nobody can
//!    have prepared it;
//! 3. that file gets the old file's mode, owner and group (`fchmod` and
//!    `fchown` on its descriptor): a `0640 root:vmail` file stays so, and
//!    the mail user can still read it. A new file gets mode
//!    [`NEW_FILE_MODE`] (0640: the owner writes, the group — chgrp it to the
//!    mail user's — reads, nobody else);
//! 4. it is synced, renamed over the old file, and the directory synced, so
//!    a crash leaves the old file or the new one, never a mix, and the
//!    running server (which reloads on change) never sees half a file.
//!
//! Names are folded by [`LoginNameCase::fold`] before they are written, and
//! the line replaced is the one whose name folds to the same name: under
//! `"lower"`, setting `Alice` replaces an old `alice` or `ALICE` line and
//! writes `alice`. Later lines of the same user (which the loader would
//! skip, or refuse as a case clash) are removed, and reported.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::login_name::{validate_login_name, LoginNameCase};
use crate::{AuthError, MAX_HTPASSWD_SIZE};

/// The mode of an htpasswd file that `popgate passwd` creates.
pub const NEW_FILE_MODE: u32 = 0o640;

/// What [`upsert_entry`] did to the file's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    /// The new contents of the file.
    pub contents: Vec<u8>,
    /// The line (from 1) of the old entry that was replaced, or `None` when
    /// the entry was added at the end.
    pub replaced: Option<usize>,
    /// Lines (from 1, in the old file) of further entries of the same user
    /// that were removed.
    pub removed: Vec<usize>,
}

/// Sets `user`'s entry (a name already folded by the caller) to `hash` in
/// the htpasswd `contents`: replaces the first line whose name folds, by
/// `case`, to `user`, removes any later ones, or adds a line at the end.
/// Every other line is kept byte for byte, line ends included.
///
/// ```
/// use popgate_auth::{upsert_entry, LoginNameCase};
///
/// let file = b"# users\nAlice:$2y$old\r\nbob:$2y$bob\n";
/// let edit = upsert_entry(file, "alice", "$2y$new", LoginNameCase::Lower);
/// assert_eq!(edit.contents, b"# users\nalice:$2y$new\r\nbob:$2y$bob\n");
/// assert_eq!(edit.replaced, Some(2));
/// let edit = upsert_entry(b"bob:$2y$bob", "carol", "$2y$c", LoginNameCase::Lower);
/// assert_eq!(edit.contents, b"bob:$2y$bob\ncarol:$2y$c\n");
/// ```
pub fn upsert_entry(contents: &[u8], user: &str, hash: &str, case: LoginNameCase) -> Upsert {
    let mut out = Vec::with_capacity(contents.len() + user.len() + hash.len() + 2);
    let mut replaced = None;
    let mut removed = Vec::new();
    for (index, line) in contents.split_inclusive(|&b| b == b'\n').enumerate() {
        if !names(line, user, case) {
            out.extend_from_slice(line);
            continue;
        }
        if replaced.is_some() {
            removed.push(index + 1);
            continue;
        }
        replaced = Some(index + 1);
        let ending: &[u8] = if line.ends_with(b"\r\n") {
            b"\r\n"
        } else if line.ends_with(b"\n") {
            b"\n"
        } else {
            b""
        };
        write_entry(&mut out, user, hash, ending);
    }
    if replaced.is_none() {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        write_entry(&mut out, user, hash, b"\n");
    }
    Upsert {
        contents: out,
        replaced,
        removed,
    }
}

fn write_entry(out: &mut Vec<u8>, user: &str, hash: &str, ending: &[u8]) {
    out.extend_from_slice(user.as_bytes());
    out.push(b':');
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(ending);
}

/// Whether `line` is an entry whose name folds to `user`.
fn names(line: &[u8], user: &str, case: LoginNameCase) -> bool {
    let line = line.trim_ascii();
    if line.starts_with(b"#") {
        return false;
    }
    let Some(name) = line.split(|&b| b == b':').next() else {
        return false;
    };
    name.len() < line.len() && std::str::from_utf8(name).is_ok_and(|name| case.fold(name) == user)
}

/// What [`set_htpasswd_entry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySet {
    /// The name written: the name given, folded.
    pub user: String,
    /// The file written (a symbolic link given as the path is followed).
    pub path: PathBuf,
    /// Whether the file was created.
    pub created: bool,
    /// The line replaced, or `None` when the entry was added.
    pub replaced: Option<usize>,
    /// Lines of further entries of the same user that were removed.
    pub removed: Vec<usize>,
}

/// Sets the entry of `name` (folded by `case`) to `hash` in the htpasswd
/// file at `path`, creating the file if it is missing; see the module
/// documentation for how the file is replaced.
pub fn set_htpasswd_entry(
    path: &Path,
    name: &str,
    hash: &str,
    case: LoginNameCase,
) -> Result<EntrySet, AuthError> {
    validate_login_name(name).map_err(AuthError::LoginName)?;
    if hash.is_empty() || hash.contains([':', '\n', '\r']) {
        return Err(AuthError::InvalidHash);
    }
    let user = case.fold(name);
    let (path, old) = read_existing(path)?;
    let edit = upsert_entry(
        old.as_ref().map_or(&[][..], |(contents, _)| contents),
        &user,
        hash,
        case,
    );
    let metadata = old.map(|(_, metadata)| metadata);
    replace_file(&path, &edit.contents, metadata.as_ref()).map_err(|source| {
        AuthError::HtpasswdWrite {
            path: path.clone(),
            source,
        }
    })?;
    Ok(EntrySet {
        user,
        created: metadata.is_none(),
        path,
        replaced: edit.replaced,
        removed: edit.removed,
    })
}

/// The file's real path and, if it exists, its contents and metadata.
type Existing = (PathBuf, Option<(Vec<u8>, std::fs::Metadata)>);

fn read_existing(path: &Path) -> Result<Existing, AuthError> {
    let unreadable = |source| AuthError::HtpasswdUnreadable {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((path.to_owned(), None));
        }
        Err(error) => return Err(unreadable(error)),
    };
    let real = std::fs::canonicalize(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(unreadable(std::io::Error::other("not a regular file")));
    }
    let mut contents = Vec::new();
    file.take(MAX_HTPASSWD_SIZE + 1)
        .read_to_end(&mut contents)
        .map_err(unreadable)?;
    if u64::try_from(contents.len()).map_or(true, |len| len > MAX_HTPASSWD_SIZE) {
        return Err(AuthError::HtpasswdTooLarge {
            path: path.to_owned(),
            limit: MAX_HTPASSWD_SIZE,
        });
    }
    Ok((real, Some((contents, metadata))))
}

/// Writes `contents` to a new file beside `path` with the old file's mode,
/// owner and group (or [`NEW_FILE_MODE`]), syncs it, renames it over
/// `path` and syncs the directory.
fn replace_file(
    path: &Path,
    contents: &[u8],
    old: Option<&std::fs::Metadata>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let file = temp.as_file_mut();
    file.write_all(contents)?;
    match old {
        Some(old) => {
            let own = file.metadata()?;
            if (own.uid(), own.gid()) != (old.uid(), old.gid()) {
                std::os::unix::fs::fchown(&*file, Some(old.uid()), Some(old.gid()))?;
            }
            // After fchown, which may clear set-id bits.
            file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
        }
        None => file.set_permissions(std::fs::Permissions::from_mode(NEW_FILE_MODE))?,
    }
    file.sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::htpasswd::Table;

    const FILE: &[u8] = b"# popgate users\n\
        alice:$2y$05$alice\n\
        \n\
        Bob:$apr1$bob:comment field\r\n\
        # carol left\n\
        carol@Example.com:{SHA}carol\n\
        bob:$2y$05$second-bob\n\
        dave:{SHA}dave";

    #[test]
    fn replaces_in_place_and_keeps_every_other_byte() {
        let edit = upsert_entry(FILE, "bob", "$2y$12$new", LoginNameCase::Lower);
        assert_eq!(edit.replaced, Some(4));
        assert_eq!(edit.removed, [7]);
        assert_eq!(
            edit.contents,
            b"# popgate users\n\
              alice:$2y$05$alice\n\
              \n\
              bob:$2y$12$new\r\n\
              # carol left\n\
              carol@Example.com:{SHA}carol\n\
              dave:{SHA}dave"
        );
    }

    #[test]
    fn exact_case_replaces_only_the_same_spelling() {
        let edit = upsert_entry(FILE, "bob", "$2y$12$new", LoginNameCase::Exact);
        assert_eq!(edit.replaced, Some(7));
        assert!(edit.removed.is_empty());
        let text = String::from_utf8(edit.contents).unwrap();
        assert!(text.contains("Bob:$apr1$bob:comment field\r\n"), "{text}");
        assert!(text.contains("bob:$2y$12$new\ndave"), "{text}");
        // The domain is folded in both.
        let edit = upsert_entry(FILE, "carol@example.com", "h", LoginNameCase::Exact);
        assert_eq!(edit.replaced, Some(6));
    }

    #[test]
    fn adds_at_the_end_with_a_line_break_first_if_needed() {
        let edit = upsert_entry(FILE, "erin", "h", LoginNameCase::Lower);
        assert_eq!(edit.replaced, None);
        assert!(edit.contents.ends_with(b"dave:{SHA}dave\nerin:h\n"));
        assert_eq!(&edit.contents[..FILE.len()], FILE);
        let edit = upsert_entry(b"", "erin", "h", LoginNameCase::Lower);
        assert_eq!(edit.contents, b"erin:h\n");
        let edit = upsert_entry(b"a:x\n", "erin", "h", LoginNameCase::Lower);
        assert_eq!(edit.contents, b"a:x\nerin:h\n");
    }

    #[test]
    fn comments_and_malformed_lines_are_never_taken_for_the_user() {
        let file = b"#bob:commented out\nbob\n  bob:indented\n";
        let edit = upsert_entry(file, "bob", "h", LoginNameCase::Lower);
        assert_eq!(edit.replaced, Some(3));
        assert_eq!(edit.contents, b"#bob:commented out\nbob\nbob:h\n");
    }

    #[test]
    fn the_result_loads_without_a_case_clash() {
        let edit = upsert_entry(FILE, "bob", "{SHA}x", LoginNameCase::Lower);
        let (_, report) = Table::parse(&edit.contents, LoginNameCase::Lower);
        assert!(report.case_clashes.is_empty(), "{report:?}");
    }

    #[test]
    fn the_file_keeps_its_mode_and_a_new_one_is_0640() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.htpasswd");
        let set = set_htpasswd_entry(&path, "Alice", "{SHA}a", LoginNameCase::Lower).unwrap();
        assert!(set.created);
        assert_eq!(set.user, "alice");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o7777;
        assert_eq!(mode(&path), NEW_FILE_MODE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        let set = set_htpasswd_entry(&path, "bob", "{SHA}b", LoginNameCase::Lower).unwrap();
        assert!(!set.created && set.replaced.is_none());
        let set = set_htpasswd_entry(&path, "ALICE", "{SHA}c", LoginNameCase::Lower).unwrap();
        assert_eq!(set.replaced, Some(1));
        assert_eq!(std::fs::read(&path).unwrap(), b"alice:{SHA}c\nbob:{SHA}b\n");
        assert_eq!(mode(&path), 0o604);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_symbolic_link_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.htpasswd");
        std::fs::write(&real, "alice:{SHA}a\n").unwrap();
        let link = dir.path().join("users.htpasswd");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let set = set_htpasswd_entry(&link, "bob", "{SHA}b", LoginNameCase::Lower).unwrap();
        assert_eq!(set.path, std::fs::canonicalize(&real).unwrap());
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"alice:{SHA}a\nbob:{SHA}b\n");
    }

    #[test]
    fn bad_names_and_hashes_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.htpasswd");
        for (name, hash) in [("../x", "h"), ("a b", "h"), ("alice", "h:x"), ("alice", "")] {
            assert!(set_htpasswd_entry(&path, name, hash, LoginNameCase::Lower).is_err());
        }
        assert!(!path.exists());
        assert!(set_htpasswd_entry(dir.path(), "alice", "h", LoginNameCase::Lower).is_err());
    }
}
