//! Connection settings: the server URL, the encoding, TLS trust and the
//! client's own certificate, timeouts and queue bounds.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_tungstenite::tungstenite::http::Uri;
use topgun_protocol::{DEFAULT_MAX_MESSAGE_BYTES, Encoding};

use crate::error::ConfigError;

/// `ws://` or `wss://`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain WebSocket (development, or behind a TLS-terminating proxy).
    Ws,
    /// WebSocket over TLS.
    Wss,
}

/// A parsed server URL: `ws[s]://host[:port][/path][?query]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    uri: String,
}

impl ServerUrl {
    /// Parses and checks a URL: the scheme must be `ws` or `wss` and a host
    /// must be present; the port defaults to 80 / 443.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let uri: Uri = url.parse().map_err(|e| ConfigError::InvalidUrl {
            url: url.to_owned(),
            detail: format!("{e}"),
        })?;
        let scheme = match uri.scheme_str() {
            Some("ws") => Scheme::Ws,
            Some("wss") => Scheme::Wss,
            Some(other) => {
                return Err(ConfigError::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
            None => {
                return Err(ConfigError::InvalidUrl {
                    url: url.to_owned(),
                    detail: "no scheme (expected ws:// or wss://)".to_owned(),
                });
            }
        };
        let authority = uri.authority().ok_or_else(|| ConfigError::MissingHost {
            url: url.to_owned(),
        })?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::InvalidUrl {
                url: url.to_owned(),
                detail: "credentials in the URL are not supported; use a TokenProvider".to_owned(),
            });
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(ConfigError::MissingHost {
                url: url.to_owned(),
            });
        }
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        });
        Ok(ServerUrl {
            scheme,
            host,
            port,
            uri: uri.to_string(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, without brackets for an IPv6 address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (explicit or the scheme's default).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL as sent in the upgrade request.
    pub fn as_str(&self) -> &str {
        &self.uri
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// The lowest TLS version the client accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// The certificate authorities a client trusts: the CA that signed the
/// server's certificate (for example the dev CA made by `cargo xtask
/// certs`). There is deliberately no built-in root store.
#[derive(Clone, Debug)]
pub struct CaBundle {
    certs: Vec<CertificateDer<'static>>,
}

impl CaBundle {
    /// Parses every certificate of a PEM bundle; each must be usable as a
    /// trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let certs = parse_certs(pem, "CA bundle")?;
        let bundle = CaBundle { certs };
        bundle.root_store()?;
        Ok(bundle)
    }

    /// Reads and parses a PEM bundle file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let pem = read_file(path.as_ref(), "CA bundle")?;
        Self::from_pem(&pem)
    }

    /// Trusts these DER certificates.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<Self, ConfigError> {
        if certs.is_empty() {
            return Err(ConfigError::NoCertificates { what: "CA bundle" });
        }
        let bundle = CaBundle { certs };
        bundle.root_store()?;
        Ok(bundle)
    }

    /// How many certificates the bundle holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether the bundle is empty (never true for a constructed bundle).
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    fn root_store(&self) -> Result<rustls::RootCertStore, ConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.certs {
            roots
                .add(cert.clone())
                .map_err(|e| ConfigError::BadCaCertificate {
                    detail: e.to_string(),
                })?;
        }
        Ok(roots)
    }
}

/// A client certificate chain and its private key, presented to servers
/// that require client certificates (mutual TLS).
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Parses a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let chain = parse_certs(chain_pem, "client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ConfigError::InvalidPem {
            what: "client key",
            detail: e.to_string(),
        })?;
        let identity = ClientIdentity { chain, key };
        identity.check()?;
        Ok(identity)
    }

    /// Reads and parses a PEM certificate chain file and a PEM key file.
    pub fn from_pem_files(
        chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let chain = read_file(chain_path.as_ref(), "client certificate")?;
        let key = read_file(key_path.as_ref(), "client key")?;
        Self::from_pem(&chain, &key)
    }

    /// Checks that the key is supported and matches the leaf certificate.
    fn check(&self) -> Result<(), ConfigError> {
        let provider = crate::tls::crypto_provider();
        rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider)
            .map(|_| ())
            .map_err(|e| ConfigError::BadClientIdentity {
                detail: e.to_string(),
            })
    }
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// TLS settings for `wss://`: whom to trust, optionally who we are, the
/// minimum version and an optional override of the name to verify.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    ca: CaBundle,
    identity: Option<ClientIdentity>,
    min_version: TlsVersion,
    server_name: Option<String>,
}

impl TlsConfig {
    /// Trusts the CAs of `ca`, presents no client certificate, accepts TLS
    /// 1.2 and 1.3, and verifies the certificate against the URL's host.
    pub fn new(ca: CaBundle) -> Self {
        TlsConfig {
            ca,
            identity: None,
            min_version: TlsVersion::default(),
            server_name: None,
        }
    }

    /// Presents `identity` to servers that ask for a client certificate.
    #[must_use]
    pub fn with_client_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Refuses TLS versions below `version`.
    #[must_use]
    pub fn with_min_version(mut self, version: TlsVersion) -> Self {
        self.min_version = version;
        self
    }

    /// Verifies the server's certificate against `name` (a DNS name or an
    /// IP address) instead of the URL's host, and sends it as SNI. Useful
    /// when connecting by IP address to a server whose certificate names
    /// only its DNS name.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The rustls configuration: ring as the only crypto provider, the CA
    /// bundle as the only roots, ALPN `http/1.1`.
    pub(crate) fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_protocol_versions(versions)
            .map_err(ConfigError::Rustls)?
            .with_root_certificates(self.ca.root_store()?);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| ConfigError::BadClientIdentity {
                    detail: e.to_string(),
                })?,
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The name to verify and send as SNI.
    pub(crate) fn verify_name(&self, url_host: &str) -> Result<ServerName<'static>, ConfigError> {
        let name = self.server_name.as_deref().unwrap_or(url_host);
        ServerName::try_from(name.to_owned()).map_err(|_| ConfigError::InvalidServerName {
            name: name.to_owned(),
        })
    }
}

fn parse_certs(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::InvalidPem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificates { what });
    }
    Ok(certs)
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Everything [`crate::Client::connect`] needs besides the token provider.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    url: ServerUrl,
    encoding: Encoding,
    tls: Option<TlsConfig>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    request_timeout: Option<Duration>,
    max_message_bytes: usize,
    outbound_queue: usize,
    subscription_buffer: usize,
}

impl ClientConfig {
    /// Default for [`ClientConfig::with_connect_timeout`]: 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`ClientConfig::with_handshake_timeout`]: 10 s (the server's
    /// auth deadline is 10 s too).
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`ClientConfig::with_request_timeout`]: 30 s.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default for [`ClientConfig::with_outbound_queue`]: 1,024 frames.
    pub const DEFAULT_OUTBOUND_QUEUE: usize = 1024;
    /// Default for [`ClientConfig::with_subscription_buffer`]: 1,024 updates.
    pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = 1024;

    /// A configuration for `url` (`ws://` or `wss://`, a path is allowed)
    /// with the defaults: bincode, no TLS, the default timeouts and bounds.
    /// A `wss://` URL also needs [`ClientConfig::with_tls`].
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(ClientConfig {
            url: ServerUrl::parse(url)?,
            encoding: Encoding::Bincode,
            tls: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            outbound_queue: Self::DEFAULT_OUTBOUND_QUEUE,
            subscription_buffer: Self::DEFAULT_SUBSCRIPTION_BUFFER,
        })
    }

    /// The encoding, offered as its subprotocol (`topgun.v1.bincode` or
    /// `topgun.v1.json`); the server must select it.
    #[must_use]
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// TLS settings for a `wss://` URL.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long name resolution plus the TCP connection may take.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each later step of the connection may take: the TLS
    /// handshake, the WebSocket upgrade, and the authentication exchange
    /// (token provider included). Also bounds [`crate::Client::close`].
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a request (op, batch, subscription, ping, sync step) waits
    /// for its answer; `None` waits until the connection ends.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest message sent or accepted, in bytes (the codec limit and
    /// the WebSocket message limit); clamped to
    /// [`topgun_protocol::HARD_MAX_MESSAGE_BYTES`].
    #[must_use]
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max.min(topgun_protocol::HARD_MAX_MESSAGE_BYTES);
        self
    }

    /// How many frames may wait to be written; senders wait for room
    /// beyond that (at least 1).
    #[must_use]
    pub fn with_outbound_queue(mut self, frames: usize) -> Self {
        self.outbound_queue = frames.max(1);
        self
    }

    /// How many updates a subscription buffers for a reader that falls
    /// behind; a subscription whose buffer overflows is ended
    /// ([`crate::SubscriptionEnd::Lagged`]) rather than stalling the
    /// connection (at least 1).
    #[must_use]
    pub fn with_subscription_buffer(mut self, updates: usize) -> Self {
        self.subscription_buffer = updates.max(1);
        self
    }

    /// The server URL.
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// The configured encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The TLS settings, if any.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The TCP connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The per-step handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// The message size limit.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The outbound queue bound.
    pub fn outbound_queue(&self) -> usize {
        self.outbound_queue
    }

    /// The per-subscription update buffer.
    pub fn subscription_buffer(&self) -> usize {
        self.subscription_buffer
    }

    /// Checks that the URL's scheme and the TLS settings agree.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        match (self.url.scheme, &self.tls) {
            (Scheme::Wss, None) => Err(ConfigError::TlsRequired),
            (Scheme::Ws, Some(_)) => Err(ConfigError::TlsWithoutWss),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_paths() {
        let cases = [
            ("ws://127.0.0.1:8090/ws", Scheme::Ws, "127.0.0.1", 8090),
            (
                "wss://example.test/sync?x=1",
                Scheme::Wss,
                "example.test",
                443,
            ),
            ("ws://localhost", Scheme::Ws, "localhost", 80),
            ("wss://[::1]:9000/", Scheme::Wss, "::1", 9000),
        ];
        for (url, scheme, host, port) in cases {
            let u = ServerUrl::parse(url).unwrap();
            assert_eq!(
                (u.scheme(), u.host(), u.port()),
                (scheme, host, port),
                "{url}"
            );
        }
        assert_eq!(
            ServerUrl::parse("ws://127.0.0.1:8090/ws").unwrap().as_str(),
            "ws://127.0.0.1:8090/ws"
        );
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        assert!(matches!(
            ServerUrl::parse("http://h/"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            ServerUrl::parse("/just/a/path"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            ServerUrl::parse("ws://user:pw@h/"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            ServerUrl::parse("not a url"),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn scheme_and_tls_must_agree() {
        let wss = ClientConfig::new("wss://h/").unwrap();
        assert!(matches!(wss.check(), Err(ConfigError::TlsRequired)));
        assert!(ClientConfig::new("ws://h/").unwrap().check().is_ok());
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(matches!(
            CaBundle::from_pem(b"hello"),
            Err(ConfigError::NoCertificates { .. })
        ));
        assert!(matches!(
            CaBundle::from_pem_file("/nonexistent/ca.pem"),
            Err(ConfigError::ReadFile { .. })
        ));
    }
}
