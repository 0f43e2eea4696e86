//! Stored password hashes, as found in htpasswd files.
//!
//! Each supported scheme has its own module; this one recognises a hash by
//! its prefix and dispatches:
//!
//! | prefix | scheme | module |
//! | --- | --- | --- |
//! | `$2y$`, `$2b$`, `$2a$` | bcrypt | `bcrypt` (the `bcrypt` crate) |
//! | `$6$`, `$5$` (optionally `rounds=N$`) | SHA-512-crypt, SHA-256-crypt | `sha_crypt` (the `sha-crypt` crate) |
//! | `$apr1$`, `$1$` | Apache MD5, MD5-crypt | `apr1` (written here on `md-5`) |
//! | `{SHA}` | base64 of SHA-1 | `sha1` |
//!
//! Anything else (traditional DES crypt, plaintext, a truncated hash) is not
//! a [`StoredHash`] at all: such an entry can never log in. Every comparison
//! of a computed hash with a stored one runs in constant time (`subtle`).

mod apr1;
mod bcrypt;
mod crypt64;
mod sha1;
mod sha_crypt;

pub use self::bcrypt::hash_password_bcrypt;

/// A parsed password hash of a supported scheme.
#[derive(Clone)]
pub(crate) enum StoredHash {
    /// bcrypt: `$2y$`, `$2b$`, `$2a$`.
    Bcrypt(bcrypt::BcryptHash),
    /// SHA-256-crypt and SHA-512-crypt: `$5$`, `$6$`.
    ShaCrypt(sha_crypt::ShaCryptHash),
    /// Apache MD5 and MD5-crypt: `$apr1$`, `$1$`.
    Md5Crypt(apr1::Md5CryptHash),
    /// Unsalted SHA-1: `{SHA}`.
    Sha1(sha1::Sha1Hash),
}

/// How much work checking a password against a hash takes: the scheme and
/// its cost parameter. Used to pick a decoy of the typical cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    /// bcrypt with this cost.
    Bcrypt(u32),
    /// SHA-crypt (either size) with this many rounds.
    ShaCrypt { sha512: bool, rounds: u32 },
    /// MD5-crypt (1000 rounds, fixed).
    Md5Crypt,
    /// One SHA-1.
    Sha1,
}

impl StoredHash {
    /// Recognises and parses a stored hash; `None` for unsupported schemes
    /// and malformed hashes.
    pub(crate) fn parse(text: &str) -> Option<StoredHash> {
        if text.starts_with("$2") {
            bcrypt::BcryptHash::parse(text).map(StoredHash::Bcrypt)
        } else if text.starts_with("$5$") || text.starts_with("$6$") {
            sha_crypt::ShaCryptHash::parse(text).map(StoredHash::ShaCrypt)
        } else if text.starts_with("$apr1$") || text.starts_with("$1$") {
            apr1::Md5CryptHash::parse(text).map(StoredHash::Md5Crypt)
        } else if text.starts_with("{SHA}") {
            sha1::Sha1Hash::parse(text).map(StoredHash::Sha1)
        } else {
            None
        }
    }

    /// Whether `password` matches, compared in constant time.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Bcrypt(hash) => hash.verify(password),
            StoredHash::ShaCrypt(hash) => hash.verify(password),
            StoredHash::Md5Crypt(hash) => hash.verify(password),
            StoredHash::Sha1(hash) => hash.verify(password),
        }
    }

    /// The work a verification takes.
    pub(crate) fn work(&self) -> Work {
        match self {
            StoredHash::Bcrypt(hash) => Work::Bcrypt(hash.cost()),
            StoredHash::ShaCrypt(hash) => hash.work(),
            StoredHash::Md5Crypt(_) => Work::Md5Crypt,
            StoredHash::Sha1(_) => Work::Sha1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Vectors made on Debian 12 with `htpasswd` (apache2-utils 2.4),
    /// `openssl passwd` (3.0) and `mkpasswd` (whois 5.5, libxcrypt).
    pub(crate) const VECTORS: &[(&str, &str)] = &[
        // htpasswd -nbB -C 5 alice 'correct horse'
        ("$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi", "correct horse"),
        // mkpasswd -m bcrypt -R 5
        ("$2b$05$78PWPI/CjSv3SGoc4DvG6eVeS9HG8rZkP2A2/eYD78hcD/DSuhm7S", "b-variant pw"),
        // mkpasswd -m bcrypt-a -R 5
        ("$2a$05$g7AfBFUwKry00Xpw40y.pufSuFrkmFOwhozG/3/PlGlVkoDVfInKu", "a-variant pw"),
        // openssl passwd -6 -salt saltsalt
        (
            "$6$saltsalt$Ezsw5vbDx/tfkEXZE/Ygh13DDyQ8uW7Ec4770li08YuebeUyuhmmpfWzVZG3tGrT5SgDth0BVdgvrMFpG9K630",
            "sha512 secret",
        ),
        // mkpasswd -m sha-512 -R 10000 -S roundsalt12
        (
            "$6$rounds=10000$roundsalt12$LSwpDaEBIWXrIb3wYMbvT85X5OuUINrYmlwagR7pw5hIO848fPPklu3yKseOWulC5di.bKBffMiKe9ijSCuYI1",
            "sha512 rounds",
        ),
        // openssl passwd -6 -salt 'exactly16chars!!' with 100 times "x"
        (
            "$6$exactly16chars!!$RlK.rREXjB6O8Lck2q4lvfLrFKgGc8Mo0UYEwtE8i2yia5wLSlEcarAvhNdBvr4XK4eEtaE999oe5YnJwAps1/",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        // openssl passwd -5 -salt pepper
        ("$5$pepper$3ZuLJVgWhOdg4oEDMrX6B8cNxWpuIWRlnybf8cWiANA", "sha256 secret"),
        // mkpasswd -m sha-256 -R 2000 -S shortsalt
        ("$5$rounds=2000$shortsalt$3qyhtgJizdkm18uo0MDmCLaRKQHaqsRY5cSiLnEc2P1", "sha256 rounds"),
        // openssl passwd -apr1 -salt r31LLsM8
        ("$apr1$r31LLsM8$/7MTMsB2tDroVeGVvBXr5.", "apache md5"),
        // htpasswd -nbm dave 'pässwörd-ünïcode'
        ("$apr1$/KfR4zs7$4iSVkQRphlwzs2xYFcvSv/", "pässwörd-ünïcode"),
        // openssl passwd -apr1 -salt abc ''
        ("$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0", ""),
        // openssl passwd -apr1 -salt 12345678 (a password over 16 bytes)
        (
            "$apr1$12345678$fNXNEBTB/g2KImO6cm/VX0",
            "a fairly long password that exceeds sixteen bytes",
        ),
        // openssl passwd -1 -salt saltstr
        ("$1$saltstr$s4jDadMsrn/T9cb8o86Rm1", "md5 crypt"),
        // htpasswd -nbs erin 'sha1 pass'
        ("{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=", "sha1 pass"),
    ];

    #[test]
    fn every_scheme_accepts_the_right_password_and_only_it() {
        for (hash, password) in VECTORS {
            let stored = StoredHash::parse(hash).unwrap_or_else(|| panic!("{hash} not parsed"));
            assert!(
                stored.verify(password.as_bytes()),
                "{hash} rejects its password"
            );
            let wrong = format!("{password}x");
            assert!(!stored.verify(wrong.as_bytes()), "{hash} accepts {wrong:?}");
            assert!(!stored.verify(b"wrong"), "{hash} accepts \"wrong\"");
            if !password.is_empty() {
                assert!(!stored.verify(b""), "{hash} accepts the empty password");
            }
        }
    }

    #[test]
    fn work_classes() {
        let work = |hash: &str| StoredHash::parse(hash).map(|h| h.work());
        assert_eq!(work(VECTORS[0].0), Some(Work::Bcrypt(5)));
        assert_eq!(
            work(VECTORS[3].0),
            Some(Work::ShaCrypt {
                sha512: true,
                rounds: 5000
            })
        );
        assert_eq!(
            work(VECTORS[7].0),
            Some(Work::ShaCrypt {
                sha512: false,
                rounds: 2000
            })
        );
        assert_eq!(work(VECTORS[8].0), Some(Work::Md5Crypt));
        assert_eq!(work(VECTORS[13].0), Some(Work::Sha1));
    }

    #[test]
    fn unsupported_and_malformed_hashes() {
        for hash in [
            // htpasswd -nbd (traditional DES crypt)
            "Bqj8Vw14x2dO6",
            // htpasswd -nbp (plaintext)
            "plain",
            "",
            "$",
            "$2x$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi",
            "$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IF",
            "$2y$03$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi",
            "$2y$99$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi",
            "$6$saltsalt$tooshort",
            "$6$saltsalt",
            "$6$rounds=abc$saltsalt$Ezsw5vbDx/tfkEXZE/Ygh13DDyQ8uW7Ec4770li08YuebeUyuhmmpfWzVZG3tGrT5SgDth0BVdgvrMFpG9K630",
            "$5$pepper$3ZuLJVgWhOdg4oEDMrX6B8cNxWpuIWRlnybf8cWiAN!",
            "$apr1$r31LLsM8$/7MTMsB2tDroVeGVvBXr5",
            "$apr1$r31LLsM8",
            "$1$",
            "{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o",
            "{SHA}not base64",
            "{SSHA}/HL0E2fe0k86oFqfSf2+njzD3+o=",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(StoredHash::parse(hash).is_none(), "{hash:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,120}") {
            let _ = StoredHash::parse(&text);
        }

        #[test]
        fn parsing_scheme_like_text_never_panics(
            prefix in prop::sample::select(vec!["$2y$", "$2b$05$", "$5$", "$6$rounds=", "$apr1$", "$1$", "{SHA}"]),
            rest in "[./0-9A-Za-z$=!é]{0,100}",
        ) {
            let text = format!("{prefix}{rest}");
            if let Some(hash) = StoredHash::parse(&text) {
                // Verify only where random text cannot ask for hours of work.
                let cheap = match hash.work() {
                    Work::Bcrypt(_) => false,
                    Work::ShaCrypt { rounds, .. } => rounds <= 10_000,
                    Work::Md5Crypt | Work::Sha1 => true,
                };
                if cheap {
                    prop_assert!(!hash.verify(b"password"));
                }
            }
        }
    }
}
