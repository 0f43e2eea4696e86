//! TLS certificates: loaded from PEM at start-up, swapped in place on reload.
//!
//! Listeners ask [`TlsProvider::acceptor`] for each new connection, so a
//! certificate renewed on disk and reloaded with SIGHUP is used from the next
//! handshake on, while established sessions keep theirs. A reload that
//! names other files ([`TlsProvider::reload_from`]) takes them from then
//! on; one that cannot load them keeps the certificate, and the files, in
//! use. The leaf certificate in use is kept beside the configuration
//! ([`TlsProvider::certificate`]), so the expiry warning
//! ([`crate::expiry_watch`]) always judges what is served now.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A certificate or key that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file is missing, unreadable or holds no private key.
    #[error("TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS certificate {cert} and key {key} do not work together: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// The current TLS configuration, replaceable while the server runs.
#[derive(Debug)]
pub struct TlsProvider {
    /// The certificate and key files last loaded.
    files: RwLock<(PathBuf, PathBuf)>,
    current: RwLock<Loaded>,
}

/// One loading of the files: what handshakes use, and the leaf certificate.
#[derive(Debug, Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    leaf: CertificateDer<'static>,
}

impl TlsProvider {
    /// Loads the certificate chain and key.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsProvider, TlsError> {
        Ok(TlsProvider {
            files: RwLock::new((cert.to_path_buf(), key.to_path_buf())),
            current: RwLock::new(load(cert, key)?),
        })
    }

    /// Reads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (cert, key) = self.files.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.reload_from(&cert, &key)
    }

    /// Loads `cert` and `key`, which may be other files than before, and
    /// uses them from the next handshake on; on error the old certificate
    /// and files stay in use.
    pub fn reload_from(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let loaded = load(cert, key)?;
        *self.files.write().unwrap_or_else(|e| e.into_inner()) =
            (cert.to_path_buf(), key.to_path_buf());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(())
    }

    fn current(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current().config)
    }

    /// The leaf certificate handshakes present now.
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.current().leaf
    }
}

/// Why a PEM file could not be read; a missing file says which key names it,
/// because that is what a fresh install has to set (`[tls] cert`, `key`).
fn pem_reason(error: &pem::Error, key: &str) -> String {
    match error {
        pem::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            format!("no such file: put it there, or name yours in [tls] {key}")
        }
        other => other.to_string(),
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        path: cert_path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_error(pem_reason(&e, "cert")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    let Some(leaf) = certs.first().cloned() else {
        return Err(cert_error("no certificate in the file".into()));
    };
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_path_buf(),
        reason: pem_reason(&e, "key"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|source| TlsError::Pair {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            source,
        })?;
    Ok(Loaded {
        config: Arc::new(config),
        leaf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh install names certificate files that are not there yet; the
    /// refusal must say what to set. Caught: a bare "I/O error".
    #[test]
    fn a_missing_certificate_or_key_names_the_key_to_set() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("fullchain.pem");
        let key = dir.path().join("privkey.pem");
        let error = TlsProvider::load(&cert, &key).unwrap_err().to_string();
        assert!(
            error.contains(&cert.display().to_string()) && error.contains("[tls] cert"),
            "{error}"
        );
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        let error = TlsProvider::load(&cert, &key).unwrap_err().to_string();
        assert!(error.contains("[tls] key"), "{error}");
    }
}
