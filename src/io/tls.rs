//! TLS for TURNS (RFC 8656 §3.1, RFC 7443 ALPN): certificate chain and key from PEM files
//! (Let's Encrypt's fullchain.pem/privkey.pem), reloadable while connections stay up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocols turnd answers to (RFC 7443). A client that offers none is served too.
const ALPN: [&[u8]; 2] = [b"stun.turn", b"stun.nat-discovery"];

/// Why a certificate or key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificates: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path}: cannot read the private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{cert}: the private key in {key} does not fit this certificate ({reason})")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
}

/// The server certificate, swapped whole on reload: a handshake takes the current one, and
/// established sessions keep the keys they negotiated.
#[derive(Debug)]
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the chain and key, failing with the reason when either is unusable.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let key = load_pair(cert_path, key_path)?;
        Ok(Certificates {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again. On error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_pair(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The rustls server configuration: TLS 1.2 and 1.3, ALPN, this resolver.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner())))
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates { path: cert_path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Certificates { path: cert_path.to_owned(), reason: "no certificate in the file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Key { path: key_path.to_owned(), reason: e.to_string() })?;
    let key = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(key)
}
