//! End-to-end tests of the authenticator on real htpasswd files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::htpasswd::{SkipReason, SkippedLine};

// Hashes made on Debian 12 with htpasswd (apache2-utils), openssl passwd and mkpasswd.
const ALICE: &str =
    "alice@example.com:$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi";
const ALICE_PASSWORD: &str = "correct horse";
// htpasswd -nbB -C 12 carol 'battery staple'
const CAROL: &str = "carol:$2y$12$TEkGfbSNp81BTFY0DlEBIesnooSoRR5SyAeixA1dNIfp2NVgt7cyO";
const CAROL_PASSWORD: &str = "battery staple";
const DAVE: &str = "dave:$apr1$/KfR4zs7$4iSVkQRphlwzs2xYFcvSv/";
const ERIN: &str = "erin:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=";
const SAM: &str = "sam@example.org:$6$saltsalt$Ezsw5vbDx/tfkEXZE/Ygh13DDyQ8uW7Ec4770li08YuebeUyuhmmpfWzVZG3tGrT5SgDth0BVdgvrMFpG9K630";
const PAT: &str = "pat:$5$pepper$3ZuLJVgWhOdg4oEDMrX6B8cNxWpuIWRlnybf8cWiANA";
// DES crypt, from htpasswd -nbd frank despw: unsupported.
const FRANK: &str = "frank:Bqj8Vw14x2dO6";
// root and mallory have alice's hash and password.
const ROOT: &str = "root:$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi";
const MALLORY: &str = "mallory:$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi";
// mkpasswd -m bcrypt -R 5 'b-variant pw'
const ALICE_NEW: &str =
    "alice@example.com:$2b$05$78PWPI/CjSv3SGoc4DvG6eVeS9HG8rZkP2A2/eYD78hcD/DSuhm7S";
const ALICE_NEW_PASSWORD: &str = "b-variant pw";

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new(lines: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.htpasswd");
        let fixture = Fixture { _dir: dir, path };
        fixture.write_in_place(lines);
        fixture
    }

    fn config(&self) -> AuthConfig {
        let mut config = AuthConfig::new(BackendConfig::Htpasswd {
            path: self.path.clone(),
        });
        config.disabled_users = vec!["MALLORY".to_owned()];
        config
    }

    fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.config())
            .unwrap()
            .check_changes_every_time()
    }

    /// Rewrites the file in place, as `htpasswd` does.
    fn write_in_place(&self, lines: &[&str]) {
        std::fs::write(&self.path, lines.join("\n") + "\n").unwrap();
    }

    /// Replaces the file by renaming a new one over it, as editors and
    /// configuration management do.
    fn replace(&self, lines: &[&str]) {
        let new = self.path.with_extension("new");
        std::fs::write(&new, lines.join("\n") + "\n").unwrap();
        std::fs::rename(&new, &self.path).unwrap();
    }
}

fn all_users() -> Vec<&'static str> {
    vec![ALICE, DAVE, ERIN, SAM, PAT, FRANK, ROOT, MALLORY]
}

fn verify(auth: &Authenticator, user: &str, password: &str) -> Verdict {
    auth.verify(&Credentials::new(user, password))
}

fn accepted(maildir: &str, user: &str) -> Verdict {
    Verdict::Accepted(Account::new(user, maildir))
}

#[test]
fn every_scheme_logs_in_with_the_right_password_only() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    let cases = [
        (
            "alice@example.com",
            ALICE_PASSWORD,
            "/var/vmail/example.com/alice/Maildir",
        ),
        ("dave", "pässwörd-ünïcode", "/var/vmail/dave/Maildir"),
        ("erin", "sha1 pass", "/var/vmail/erin/Maildir"),
        (
            "sam@example.org",
            "sha512 secret",
            "/var/vmail/example.org/sam/Maildir",
        ),
        ("pat", "sha256 secret", "/var/vmail/pat/Maildir"),
    ];
    for (user, password, maildir) in cases {
        assert_eq!(
            verify(&auth, user, password),
            accepted(maildir, user),
            "{user}"
        );
        assert_eq!(verify(&auth, user, "wrong"), Verdict::Rejected, "{user}");
        assert_eq!(verify(&auth, user, ""), Verdict::Rejected, "{user}");
    }
}

#[test]
fn login_names_are_folded_to_lower_case_by_default() {
    let fixture = Fixture::new(&all_users());
    let auth = Authenticator::new(fixture.config()).unwrap();
    assert_eq!(auth.login_name("ALICE@Example.COM"), "alice@example.com");
    assert_eq!(
        verify(&auth, "Dave", "pässwörd-ünïcode"),
        accepted("/var/vmail/dave/Maildir", "dave")
    );
    let hashes = auth.hash_verifications();
    assert_eq!(
        auth.verify_cached(&Credentials::new("DAVE", "pässwörd-ünïcode")),
        Some(accepted("/var/vmail/dave/Maildir", "dave")),
        "one cache entry, whatever the spelling"
    );
    assert_eq!(auth.hash_verifications(), hashes);
    assert_eq!(
        verify(&auth, "Alice@EXAMPLE.com", ALICE_PASSWORD),
        accepted("/var/vmail/example.com/alice/Maildir", "alice@example.com")
    );
    // The policy lists see the folded name too.
    assert_eq!(verify(&auth, "Mallory", ALICE_PASSWORD), Verdict::Disabled);
    assert_eq!(verify(&auth, "RooT", ALICE_PASSWORD), Verdict::Rejected);
}

#[test]
fn exact_case_keeps_the_local_part_and_folds_the_domain() {
    let fixture = Fixture::new(&[ALICE, DAVE, "Zed:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o="]);
    let mut config = fixture.config();
    config.login_name_case = LoginNameCase::Exact;
    let auth = Authenticator::new(config).unwrap();
    assert_eq!(verify(&auth, "Dave", "pässwörd-ünïcode"), Verdict::Rejected);
    assert_eq!(verify(&auth, "zed", "sha1 pass"), Verdict::Rejected);
    assert_eq!(
        verify(&auth, "Zed", "sha1 pass"),
        accepted("/var/vmail/Zed/Maildir", "Zed")
    );
    assert_eq!(
        verify(&auth, "alice@EXAMPLE.com", ALICE_PASSWORD),
        accepted("/var/vmail/example.com/alice/Maildir", "alice@example.com")
    );
    assert_eq!(
        verify(&auth, "Alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
}

#[test]
fn entries_that_differ_only_by_case_are_refused() {
    let fixture = Fixture::new(&[ALICE, "Bob:{SHA}x", "bob:{SHA}y"]);
    let error = Authenticator::new(fixture.config()).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, AuthError::HtpasswdCaseClash { .. }),
        "{text}"
    );
    assert!(
        text.contains("\"Bob\" (line 2) and \"bob\" (line 3) differ only by case"),
        "{text}"
    );
    assert!(text.contains("users.htpasswd"), "{text}");

    let mut config = fixture.config();
    config.login_name_case = LoginNameCase::Exact;
    assert!(
        Authenticator::new(config).is_ok(),
        "Bob and bob are two users"
    );

    // Appearing later, a clash keeps the users loaded before.
    fixture.write_in_place(&[ALICE]);
    let auth = fixture.authenticator();
    fixture.replace(&[ALICE_NEW, "Alice@example.com:{SHA}x"]);
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
    assert!(matches!(
        auth.reload(),
        Err(AuthError::HtpasswdCaseClash { .. })
    ));
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
}

#[test]
fn unsupported_hashes_never_log_in() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    assert_eq!(verify(&auth, "frank", "despw"), Verdict::Rejected);
    assert_eq!(verify(&auth, "frank", "Bqj8Vw14x2dO6"), Verdict::Rejected);
}

#[test]
fn every_refusal_costs_one_hash() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    let attempts = [
        ("alice@example.com", "wrong password"),
        ("nobody-here", "whatever"),
        ("root", ALICE_PASSWORD),
        ("ROOT", "x"),
        ("frank", "despw"),
        ("../etc/passwd", "x"),
        ("bad name", "x"),
        ("", "x"),
    ];
    for (user, password) in attempts {
        let before = auth.hash_verifications();
        assert_eq!(verify(&auth, user, password), Verdict::Rejected, "{user:?}");
        assert_eq!(auth.hash_verifications(), before + 1, "{user:?}");
    }
}

#[test]
fn denied_users_are_rejected_even_with_the_right_password() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    assert_eq!(verify(&auth, "root", ALICE_PASSWORD), Verdict::Rejected);
    let mut config = fixture.config();
    config.deny_users = vec!["Alice@Example.COM".to_owned()];
    let auth = Authenticator::new(config).unwrap();
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
    // root is no longer on the list.
    assert_eq!(
        verify(&auth, "root", ALICE_PASSWORD),
        accepted("/var/vmail/root/Maildir", "root")
    );
}

#[test]
fn disabled_users_learn_it_only_with_the_right_password() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    assert_eq!(verify(&auth, "mallory", ALICE_PASSWORD), Verdict::Disabled);
    assert_eq!(verify(&auth, "mallory", "wrong"), Verdict::Rejected);
    // Never cached as accepted.
    assert_eq!(verify(&auth, "mallory", ALICE_PASSWORD), Verdict::Disabled);
}

#[test]
fn maildir_template_is_applied() {
    let fixture = Fixture::new(&all_users());
    let mut config = fixture.config();
    config.maildir_template = "/srv/mail/%d/%u/%n".to_owned();
    let auth = Authenticator::new(config).unwrap();
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        accepted(
            "/srv/mail/example.com/alice@example.com/alice",
            "alice@example.com"
        )
    );
    assert_eq!(
        verify(&auth, "dave", "pässwörd-ünïcode"),
        accepted("/srv/mail/dave/dave", "dave")
    );
}

#[test]
fn bad_configuration_is_refused_at_construction() {
    let fixture = Fixture::new(&all_users());

    let mut config = fixture.config();
    config.maildir_template = "~/Maildir".to_owned();
    let error = Authenticator::new(config).unwrap_err();
    assert!(matches!(error, AuthError::HomeNotAvailable(_)), "{error}");

    let mut config = fixture.config();
    config.maildir_template = "Maildir/%x".to_owned();
    let error = Authenticator::new(config).unwrap_err();
    assert!(
        matches!(error, AuthError::MaildirTemplate { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("Maildir/%x"), "{error}");

    let missing = fixture.path.with_file_name("missing.htpasswd");
    let error = Authenticator::new(AuthConfig::new(BackendConfig::Htpasswd {
        path: missing.clone(),
    }))
    .unwrap_err();
    assert!(
        matches!(error, AuthError::HtpasswdUnreadable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&*missing.to_string_lossy()),
        "{error}"
    );

    let directory = fixture.path.parent().unwrap().to_owned();
    let error = Authenticator::new(AuthConfig::new(BackendConfig::Htpasswd { path: directory }))
        .unwrap_err();
    assert!(
        matches!(error, AuthError::HtpasswdUnreadable { .. }),
        "{error}"
    );
}

#[test]
fn a_changed_file_is_reloaded() {
    let fixture = Fixture::new(&[ALICE, DAVE]);
    let auth = fixture.authenticator();
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
    assert_eq!(verify(&auth, "erin", "sha1 pass"), Verdict::Rejected);

    // In place, as htpasswd(1) does.
    fixture.write_in_place(&[ALICE_NEW, DAVE, ERIN]);
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_NEW_PASSWORD),
        Verdict::Accepted(_)
    ));
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
    assert!(matches!(
        verify(&auth, "erin", "sha1 pass"),
        Verdict::Accepted(_)
    ));

    // By rename, as editors do; dave is removed.
    fixture.replace(&[ALICE]);
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
    assert_eq!(verify(&auth, "dave", "pässwörd-ünïcode"), Verdict::Rejected);
}

#[test]
fn changes_are_noticed_within_a_second_by_default() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = Authenticator::new(fixture.config()).unwrap();
    fixture.replace(&[ALICE, ERIN]);
    std::thread::sleep(Duration::from_millis(1100));
    assert!(matches!(
        verify(&auth, "erin", "sha1 pass"),
        Verdict::Accepted(_)
    ));
}

#[test]
fn explicit_reload() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = Authenticator::new(fixture.config()).unwrap();
    fixture.replace(&[ALICE, ERIN, FRANK, "garbage line"]);
    auth.reload().unwrap();
    assert!(matches!(
        verify(&auth, "erin", "sha1 pass"),
        Verdict::Accepted(_)
    ));
    let report = auth.report().unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.unsupported, [3]);
    assert_eq!(
        report.skipped,
        [SkippedLine {
            line: 4,
            reason: SkipReason::NoSeparator
        }]
    );
}

#[test]
fn a_file_that_cannot_be_read_again_leaves_the_old_users_in_force() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = fixture.authenticator();
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));

    std::fs::remove_file(&fixture.path).unwrap();
    for _ in 0..3 {
        assert!(
            matches!(
                verify(&auth, "alice@example.com", ALICE_PASSWORD),
                Verdict::Accepted(_)
            ),
            "a vanished file keeps the users loaded before"
        );
        assert_eq!(
            verify(&auth, "alice@example.com", "wrong"),
            Verdict::Rejected
        );
    }
    let error = auth.reload().unwrap_err();
    assert!(error.to_string().contains("users.htpasswd"), "{error}");
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
    assert_eq!(auth.report().unwrap().entries, 1);

    fixture.replace(&[ALICE_NEW, ERIN]);
    assert!(matches!(
        verify(&auth, "erin", "sha1 pass"),
        Verdict::Accepted(_)
    ));
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
}

#[test]
fn cache_spares_bcrypt_on_repeated_logins() {
    let fixture = Fixture::new(&[CAROL, ALICE]);
    let auth = fixture.authenticator();
    let carol = || verify(&auth, "carol", CAROL_PASSWORD);

    assert!(matches!(carol(), Verdict::Accepted(_)));
    let after_first = auth.hash_verifications();
    assert_eq!(after_first, 1);
    assert!(matches!(carol(), Verdict::Accepted(_)));
    assert!(matches!(carol(), Verdict::Accepted(_)));
    assert_eq!(
        auth.hash_verifications(),
        after_first,
        "cache hits compute no hash"
    );

    // A wrong password never hits the cache, and does not evict the entry.
    assert_eq!(verify(&auth, "carol", "battery stapler"), Verdict::Rejected);
    assert_eq!(auth.hash_verifications(), after_first + 1);
    assert!(matches!(carol(), Verdict::Accepted(_)));
    assert_eq!(auth.hash_verifications(), after_first + 1);

    // A changed file empties the cache.
    fixture.replace(&[CAROL, ALICE, ERIN]);
    assert!(matches!(carol(), Verdict::Accepted(_)));
    assert_eq!(auth.hash_verifications(), after_first + 2);

    // An explicit reload too.
    auth.reload().unwrap();
    assert!(matches!(carol(), Verdict::Accepted(_)));
    assert_eq!(auth.hash_verifications(), after_first + 3);
}

#[test]
fn a_password_changed_in_the_file_stops_working_at_once() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = fixture.authenticator();
    assert!(matches!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Accepted(_)
    ));
    fixture.write_in_place(&[ALICE_NEW]);
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
}

#[test]
fn zero_ttl_disables_the_cache() {
    let fixture = Fixture::new(&[ALICE]);
    let mut config = fixture.config();
    config.cache_ttl = Duration::ZERO;
    let auth = Authenticator::new(config).unwrap();
    for expected in 1..=3 {
        assert!(matches!(
            verify(&auth, "alice@example.com", ALICE_PASSWORD),
            Verdict::Accepted(_)
        ));
        assert_eq!(auth.hash_verifications(), expected);
    }
}

#[test]
fn an_empty_file_rejects_everyone() {
    let fixture = Fixture::new(&["# nobody yet"]);
    let auth = fixture.authenticator();
    assert_eq!(
        verify(&auth, "alice@example.com", ALICE_PASSWORD),
        Verdict::Rejected
    );
    assert_eq!(auth.report().unwrap().entries, 0);
}

#[test]
fn shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authenticator>();
    assert_send_sync::<crate::Throttle>();

    let fixture = Fixture::new(&[ALICE, ERIN]);
    let auth = std::sync::Arc::new(fixture.authenticator());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let auth = std::sync::Arc::clone(&auth);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let password = if i % 2 == 0 { "sha1 pass" } else { "wrong" };
                    let verdict = verify(&auth, "erin", password);
                    assert_eq!(matches!(verdict, Verdict::Accepted(_)), i % 2 == 0);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn debug_output_holds_no_secrets() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = fixture.authenticator();
    let debug = format!("{auth:?}");
    assert!(!debug.contains("$2y$"), "{debug}");
    assert!(debug.contains("users.htpasswd"), "{debug}");
    assert_eq!(auth.failure_delay(), DEFAULT_FAILURE_DELAY);
}

#[test]
fn default_config() {
    let config = AuthConfig::new(BackendConfig::Htpasswd {
        path: Path::new("/etc/popgate/users.htpasswd").to_owned(),
    });
    assert_eq!(config.deny_users, DEFAULT_DENY_USERS);
    assert!(config.disabled_users.is_empty());
    assert_eq!(config.maildir_template, DEFAULT_MAILDIR_TEMPLATE);
    assert_eq!(config.cache_ttl, DEFAULT_CACHE_TTL);
}

#[test]
fn the_cache_alone_answers_only_a_remembered_login_with_its_password() {
    let fixture = Fixture::new(&[ALICE, ROOT]);
    let auth = Authenticator::new(fixture.config()).unwrap();
    let alice = Credentials::new("alice@example.com", ALICE_PASSWORD);
    assert!(auth.verify_cached(&alice).is_none(), "nothing cached yet");
    assert!(matches!(auth.verify(&alice), Verdict::Accepted(_)));
    let hashes = auth.hash_verifications();
    assert!(
        matches!(auth.verify_cached(&alice), Some(Verdict::Accepted(a)) if a.user == "alice@example.com")
    );
    assert_eq!(
        auth.hash_verifications(),
        hashes,
        "a cache answer computes no hash"
    );
    let wrong = Credentials::new("alice@example.com", "wrong");
    assert!(auth.verify_cached(&wrong).is_none());
    let root = Credentials::new("root", ALICE_PASSWORD);
    assert!(
        auth.verify_cached(&root).is_none(),
        "denied names always take the full check"
    );
    let eager = Authenticator::new(fixture.config())
        .unwrap()
        .check_changes_every_time();
    assert!(matches!(eager.verify(&alice), Verdict::Accepted(_)));
    assert!(
        eager.verify_cached(&alice).is_none(),
        "a due change check takes the full path"
    );
}

#[test]
fn a_lookup_finds_the_account_a_login_would_give_without_hashing() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    let before = auth.hash_verifications();
    assert_eq!(
        auth.lookup("alice@example.com"),
        UserLookup::Found(Account::new(
            "alice@example.com",
            "/var/vmail/example.com/alice/Maildir"
        ))
    );
    // POP3's switch is about fetching: mallory still receives mail.
    assert!(matches!(auth.lookup("mallory"), UserLookup::Found(_)));
    assert_eq!(auth.hash_verifications(), before);
}

#[test]
fn a_lookup_knows_only_users_a_login_could_reach() {
    let fixture = Fixture::new(&all_users());
    let auth = fixture.authenticator();
    for user in [
        "nobody-here",
        // Listed, but denied: like an unknown user.
        "root",
        "ROOT",
        // Listed with a hash that can never match.
        "frank",
        "../etc/passwd",
        "bad name",
        "",
    ] {
        assert_eq!(auth.lookup(user), UserLookup::Unknown, "{user:?}");
    }
    // Names are folded as for logins (`login_name_case = "lower"`).
    assert!(matches!(auth.lookup("Dave"), UserLookup::Found(a) if a.user == "dave"));
}

#[test]
fn a_lookup_follows_the_file_and_keeps_its_users_when_it_goes() {
    let fixture = Fixture::new(&[ALICE]);
    let auth = fixture.authenticator();
    assert_eq!(auth.lookup("carol"), UserLookup::Unknown);
    fixture.replace(&[ALICE, CAROL]);
    assert!(matches!(auth.lookup("carol"), UserLookup::Found(_)));
    // A file that cannot be read again leaves the users in force, as for
    // logins.
    std::fs::remove_file(&fixture.path).unwrap();
    assert!(matches!(auth.lookup("carol"), UserLookup::Found(_)));
}

/// A configuration reload changes the lists, the template and the cache
/// lifetime in place, for the next check; a login cached under the old
/// rules is not honoured under the new ones. The backend and the name case
/// are refused, and leave everything as it was.
#[test]
fn reconfigure_changes_the_rules_for_the_next_check() {
    let fixture = Fixture::new(&[ALICE, DAVE, MALLORY]);
    let auth = fixture.authenticator();
    let dave = |auth: &Authenticator| verify(auth, "dave", "pässwörd-ünïcode");
    assert_eq!(dave(&auth), accepted("/var/vmail/dave/Maildir", "dave"));
    assert_eq!(verify(&auth, "mallory", ALICE_PASSWORD), Verdict::Disabled);

    let mut config = fixture.config();
    config.deny_users.push("Dave".into());
    config.disabled_users.clear();
    config.maildir_template = "/srv/mail/%u".into();
    config.failure_delay = Duration::from_millis(300);
    auth.reconfigure(&config).unwrap();
    assert_eq!(
        auth.verify_cached(&Credentials::new("dave", "pässwörd-ünïcode")),
        None
    );
    assert_eq!(dave(&auth), Verdict::Rejected);
    assert_eq!(
        verify(&auth, "mallory", ALICE_PASSWORD),
        accepted("/srv/mail/mallory", "mallory")
    );
    assert_eq!(auth.failure_delay(), Duration::from_millis(300));

    for refused in [
        AuthConfig {
            login_name_case: LoginNameCase::Exact,
            ..config.clone()
        },
        AuthConfig {
            backend: BackendConfig::Htpasswd {
                path: fixture.path.with_extension("other"),
            },
            ..config.clone()
        },
        AuthConfig {
            maildir_template: "~/Maildir".into(),
            ..config.clone()
        },
    ] {
        assert!(auth.reconfigure(&refused).is_err(), "{refused:?}");
    }
    assert_eq!(
        verify(&auth, "mallory", ALICE_PASSWORD),
        accepted("/srv/mail/mallory", "mallory"),
        "a refused configuration changes nothing"
    );
}
