//! TLS for the listener (`[tls]`, contract section 8): a PEM certificate
//! chain and key (PKCS#8, PKCS#1 or SEC1) into a rustls server config that
//! offers `h2` and `http/1.1` by ALPN, so browsers speak HTTP/2 (which they
//! only do over TLS) and every other client what it knows.
//!
//! Loaded once at start-up, where a failure is a config error naming the key.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// Which file was at fault, and why.
#[derive(Debug)]
pub enum TlsError {
    Cert(String),
    Key(String),
}

/// The server side of TLS for `cert_file` and `key_file`.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError::Cert(format!(
                "cannot read a PEM certificate from {}: {e}",
                cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert(format!(
            "{} holds no PEM certificate",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        TlsError::Key(format!(
            "cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from {}: {e}",
            key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Key(format!("the key does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
