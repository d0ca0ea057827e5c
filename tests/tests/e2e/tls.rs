//! Direct TLS: a `wss://` client that trusts the CA connects; an untrusting
//! one, a TLS 1.1 client, and a TLS 1.2 client against a 1.3-only server
//! are refused; a bad certificate path fails start-up with a clear error.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use topgun_protocol::{Encoding, ServerMessage};
use topgun_server::{Limits, ServerError, TlsConfig, TlsVersion};
use topgun_tests::{start_with, test_builder, token_for};

fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    xtask::certs::generate(&xtask::certs::CertsOptions {
        out: dir.path().to_owned(),
        nodes: 0,
        ..Default::default()
    })
    .unwrap();
    dir
}

fn client_config(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn tls_server(dir: &Path, min: TlsVersion) -> topgun_server::RunningServer {
    let mut tls = TlsConfig::new(dir.join("server.crt"), dir.join("server.key"));
    tls.min_version = min;
    start_with(test_builder(Limits::default()).tls(tls)).await
}

#[tokio::test]
async fn a_wss_client_that_trusts_the_ca_connects_and_authenticates() {
    let dir = pki();
    let server = tls_server(dir.path(), TlsVersion::Tls12).await;
    let config = client_config(&dir.path().join("ca.crt"), rustls::ALL_VERSIONS);
    let stream = tls_connect(server.addr, config).await.unwrap();
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        Encoding::Json.subprotocol().parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    let first = ws.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("AUTH_REQUIRED"),
        "{first:?}"
    );
    let auth = format!(
        "{{\"AUTH\":{{\"token\":\"{}\",\"protocol_version\":1}}}}",
        token_for("tls")
    );
    ws.send(tokio_tungstenite::tungstenite::Message::Text(auth.into()))
        .await
        .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    let ack: ServerMessage = topgun_protocol::Codec::new(Encoding::Json)
        .decode_server(ack.to_text().unwrap().as_bytes())
        .unwrap();
    assert!(matches!(ack, ServerMessage::AuthAck { .. }), "{ack:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let dir = pki();
    let other = pki();
    let server = tls_server(dir.path(), TlsVersion::Tls12).await;
    let config = client_config(&other.path().join("ca.crt"), rustls::ALL_VERSIONS);
    let err = tls_connect(server.addr, config).await.unwrap_err();
    // Another CA with the same name: the chain does not verify.
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tls_1_2_is_refused_by_a_tls_1_3_only_server_and_accepted_by_default() {
    let dir = pki();
    let ca = dir.path().join("ca.crt");
    let strict = tls_server(dir.path(), TlsVersion::Tls13).await;
    let tls12 = client_config(&ca, &[&rustls::version::TLS12]);
    let err = tls_connect(strict.addr, Arc::clone(&tls12))
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("protocolversion")
            || err.to_string().contains("version"),
        "{err}"
    );
    strict.stop().await.unwrap();

    let default = tls_server(dir.path(), TlsVersion::Tls12).await;
    tls_connect(default.addr, tls12).await.unwrap();
    default.stop().await.unwrap();
}

/// A hand-made TLS 1.1 ClientHello (rustls cannot speak 1.1 at all): the
/// server must answer with an alert, never a ServerHello.
#[tokio::test]
async fn tls_1_1_is_refused() {
    let dir = pki();
    let server = tls_server(dir.path(), TlsVersion::Tls12).await;
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // RSA AES-CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut reply),
    )
    .await;
    assert!(!reply.is_empty(), "the server answers with an alert");
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a handshake: {reply:02x?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_certificate_path_is_a_clear_startup_error() {
    let dir = pki();
    let missing = dir.path().join("nope.crt");
    let tls = TlsConfig::new(&missing, dir.path().join("server.key"));
    let err = test_builder(Limits::default())
        .tls(tls)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Tls(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("nope.crt") && text.contains("cannot read"),
        "{text}"
    );

    // A key that is not a key.
    let tls = TlsConfig::new(dir.path().join("server.crt"), dir.path().join("ca.crt"));
    let text = test_builder(Limits::default())
        .tls(tls)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("no PEM private key"), "{text}");
}

/// `TOPGUN_TLS_CA_PATH`: clients must present a certificate signed by the
/// CA. Without one the connection fails; with a CA-signed client
/// certificate (the dev PKI's node certificates carry clientAuth) it works.
#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    xtask::certs::generate(&xtask::certs::CertsOptions {
        out: dir.path().to_owned(),
        nodes: 1,
        ..Default::default()
    })
    .unwrap();
    let mut tls = TlsConfig::new(dir.path().join("server.crt"), dir.path().join("server.key"));
    tls.client_ca_path = Some(dir.path().join("ca.crt"));
    let server = start_with(test_builder(Limits::default()).tls(tls)).await;

    let ws_over = |stream| async move {
        let url = format!("wss://localhost:{}/ws", server.addr.port());
        let req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        tokio_tungstenite::client_async(req, stream)
            .await
            .map(|_| ())
    };

    // No client certificate: TLS 1.3 may finish the client side of the
    // handshake, but the server rejects it before any HTTP is served.
    let anonymous = client_config(&dir.path().join("ca.crt"), rustls::ALL_VERSIONS);
    let refused = match tls_connect(server.addr, anonymous).await {
        Err(_) => true,
        Ok(stream) => ws_over(stream).await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");

    // With the node certificate as client identity.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.path().join("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.path().join("node-1.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(dir.path().join("node-1.key")).unwrap();
    let with_cert = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap(),
    );
    let stream = tls_connect(server.addr, with_cert).await.unwrap();
    ws_over(stream).await.unwrap();
    server.stop().await.unwrap();
}
