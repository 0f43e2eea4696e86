//! TLS certificates: loaded from PEM at start-up, swapped in place on reload.
//!
//! Listeners ask [`TlsProvider::acceptor`] for each new connection, so a
//! certificate renewed on disk and reloaded with SIGHUP is used from the next
//! handshake on, while established sessions keep theirs. A reload that
//! names other files ([`TlsProvider::reload_from`]) takes them from then
//! on; one that cannot load them keeps the certificate, and the files, in
//! use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
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
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsProvider {
    /// Loads the certificate chain and key.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsProvider, TlsError> {
        let config = build_config(cert, key)?;
        Ok(TlsProvider {
            files: RwLock::new((cert.to_path_buf(), key.to_path_buf())),
            current: RwLock::new(Arc::new(config)),
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
        let config = Arc::new(build_config(cert, key)?);
        *self.files.write().unwrap_or_else(|e| e.into_inner()) =
            (cert.to_path_buf(), key.to_path_buf());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }
}

fn build_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        path: cert_path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|source| TlsError::Pair {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            source,
        })
}
