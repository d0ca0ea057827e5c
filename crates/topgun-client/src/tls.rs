//! TLS for `wss://`: the one crypto provider (ring) and the client-side
//! handshake.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::TlsConfig;
use crate::error::{ConnectError, ConnectStage, io_error};

/// The workspace's only crypto provider. Building configs with an explicit
/// provider keeps rustls from looking for a process-wide default, which
/// panics when more than one provider is compiled in.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Runs the TLS handshake over `tcp`, verifying the server's certificate
/// against the configured CA bundle and the URL's host (or the configured
/// server name; IP addresses are matched against IP SANs).
pub(crate) async fn handshake(
    tcp: TcpStream,
    tls: &TlsConfig,
    url_host: &str,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let config = tls.rustls_config()?;
    let name = tls.verify_name(url_host)?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| io_error(ConnectStage::Tls, e))
}
