//! Loading and checking the client-facing TLS configuration (rustls, ring).
//!
//! Everything is checked at start-up so that a misconfiguration fails fast
//! with a message that names the file and what is wrong, instead of failing
//! later in every client's handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{TlsConfig, TlsVersion};

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read TLS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE` block.
    #[error("{path} contains no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable private key.
    #[error(
        "{path} contains no PEM private key (expected PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is encrypted; rustls needs it in the clear.
    #[error(
        "{path} holds an encrypted private key; decrypt it first (openssl pkey -in {path} -out server.key) and protect the file with mode 0600"
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// A PEM block could not be decoded.
    #[error("{path}: malformed PEM: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// The leaf certificate is X.509 version 1: it cannot carry the
    /// subjectAltName extension that clients match host names against.
    #[error(
        "{path}: the certificate is X.509 v1 (as `openssl x509 -req` makes without -extfile); clients reject it. Re-issue it with a v3 extensions file that sets subjectAltName, or use `cargo xtask certs`"
    )]
    CertificateV1 {
        /// The file.
        path: PathBuf,
    },
    /// The leaf certificate has no subjectAltName: TLS clients match host
    /// names only against SANs, never the common name.
    #[error(
        "{path}: the certificate has no subjectAltName extension; clients match host names only against SANs, not the CN. Re-issue it with subjectAltName=DNS:your.host,IP:127.0.0.1"
    )]
    NoSubjectAltName {
        /// The file.
        path: PathBuf,
    },
    /// The leaf certificate could not be parsed as X.509.
    #[error("{path}: not a valid X.509 certificate: {detail}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// rustls refused the configuration (for example a key that does not
    /// match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA bundle could not be turned into a verifier.
    #[error("client CA bundle {path} rejected: {detail}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    if pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(TlsError::EncryptedKey {
            path: path.to_owned(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    })
}

/// Checks what webpki-based clients will check, so the server refuses to
/// start with a certificate no client can accept.
fn check_leaf(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if cert.version() == x509_parser::x509::X509Version::V1 {
        return Err(TlsError::CertificateV1 {
            path: path.to_owned(),
        });
    }
    match cert.subject_alternative_name() {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(TlsError::NoSubjectAltName {
            path: path.to_owned(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// The one crypto provider of the workspace.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server configuration for `config`: files read and
/// checked, protocol versions limited, ALPN set to HTTP/1.1 (WebSocket
/// upgrades run over HTTP/1.1).
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs(&config.cert_path)?;
    if let Some(leaf) = chain.first() {
        check_leaf(&config.cert_path, leaf)?;
    }
    let key = load_key(&config.key_path)?;
    let provider = crypto_provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match &config.client_ca_path {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(ca_path)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: ca_path.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: ca_path.clone(),
                    detail: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
