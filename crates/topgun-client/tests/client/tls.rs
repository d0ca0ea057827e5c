//! `wss://` with a CA made by rcgen: trust, name checks and mutual TLS.

use topgun_client::{
    CaBundle, Client, ClientConfig, ClientIdentity, ConfigError, ConnectError, StaticToken,
    TlsConfig, TlsVersion,
};

use crate::fake::{FakeServer, Options};
use crate::pki::{self, Ca};

async fn tls_server(
    config: std::sync::Arc<rustls::ServerConfig>,
    authenticates: bool,
) -> FakeServer {
    let options = Options {
        tls: Some(config),
        ..Options::default()
    };
    FakeServer::start_with(options, move |mut conn| async move {
        if authenticates {
            conn.accept_auth("alice").await;
            let _ = conn.expect_close().await;
        }
    })
    .await
}

fn wss(server: &FakeServer, host: &str, tls: TlsConfig) -> ClientConfig {
    ClientConfig::new(&format!("wss://{host}:{}/ws", server.port))
        .unwrap()
        .with_tls(tls)
}

#[tokio::test]
async fn wss_connects_with_the_ca_that_signed_the_server() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["localhost", "127.0.0.1"]);
    for (host, min_version) in [
        ("127.0.0.1", TlsVersion::Tls12),
        ("localhost", TlsVersion::Tls13),
    ] {
        let server = tls_server(pki::server_config(&leaf, None), true).await;
        let tls = TlsConfig::new(CaBundle::from_pem(ca.pem.as_bytes()).unwrap())
            .with_min_version(min_version);
        let client = Client::connect(wss(&server, host, tls), StaticToken::new("t"))
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(client.session().sub, "alice");
        client.close().await;
        server.join().await;
    }
}

#[tokio::test]
async fn a_client_trusting_another_ca_fails_with_unknown_issuer() {
    let ca = Ca::new("real CA");
    let other = Ca::new("other CA");
    let server = tls_server(pki::server_config(&ca.server(&["127.0.0.1"]), None), false).await;
    let tls = TlsConfig::new(CaBundle::from_pem(other.pem.as_bytes()).unwrap());
    let err = Client::connect(wss(&server, "127.0.0.1", tls), StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Tls {
                error: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("UnknownIssuer") && text.contains("unknown issuer"),
        "{text}"
    );
    server.join().await;
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_naming_the_problem() {
    let ca = Ca::new("test CA");
    let server = tls_server(
        pki::server_config(&ca.server(&["db.internal"]), None),
        false,
    )
    .await;
    let tls = TlsConfig::new(CaBundle::from_pem(ca.pem.as_bytes()).unwrap());
    let err = Client::connect(wss(&server, "127.0.0.1", tls), StaticToken::new("t"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(text.contains("not valid for name"), "{text}");
    server.join().await;

    // Overriding the name to verify makes the same certificate acceptable.
    let server = tls_server(pki::server_config(&ca.server(&["db.internal"]), None), true).await;
    let tls = TlsConfig::new(CaBundle::from_pem(ca.pem.as_bytes()).unwrap())
        .with_server_name("db.internal");
    let client = Client::connect(wss(&server, "127.0.0.1", tls), StaticToken::new("t"))
        .await
        .unwrap();
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_trusted_ca() {
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let server_leaf = ca.server(&["127.0.0.1"]);
    let client_leaf = client_ca.client();
    let bundle = || CaBundle::from_pem(ca.pem.as_bytes()).unwrap();

    // With the certificate: connected.
    let server = tls_server(pki::server_config(&server_leaf, Some(&client_ca)), true).await;
    let identity = ClientIdentity::from_pem(
        client_leaf.cert_pem.as_bytes(),
        client_leaf.key_pem.as_bytes(),
    )
    .unwrap();
    let tls = TlsConfig::new(bundle()).with_client_identity(identity);
    let client = Client::connect(wss(&server, "127.0.0.1", tls), StaticToken::new("t"))
        .await
        .unwrap();
    client.close().await;
    server.join().await;

    // Without: a TLS error (with TLS 1.3 it surfaces after the handshake,
    // when the server's alert arrives).
    let server = tls_server(pki::server_config(&server_leaf, Some(&client_ca)), false).await;
    let err = Client::connect(
        wss(&server, "127.0.0.1", TlsConfig::new(bundle())),
        StaticToken::new("t"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Tls {
                error: rustls::Error::AlertReceived(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("client certificate"), "{err}");
    server.join().await;
}

#[test]
fn tls_configuration_errors_are_typed() {
    let ca = Ca::new("test CA");
    let leaf = ca.client();
    let other = ca.client();
    // A key that does not belong to the certificate.
    let err =
        ClientIdentity::from_pem(leaf.cert_pem.as_bytes(), other.key_pem.as_bytes()).unwrap_err();
    assert!(
        matches!(err, ConfigError::BadClientIdentity { .. }),
        "{err:?}"
    );
    // A key file that is no key.
    let err = ClientIdentity::from_pem(leaf.cert_pem.as_bytes(), b"nope").unwrap_err();
    assert!(matches!(err, ConfigError::InvalidPem { .. }), "{err:?}");
    // wss without TLS settings, ws with them.
    let tls = TlsConfig::new(CaBundle::from_pem(ca.pem.as_bytes()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let err = Client::connect(
            ClientConfig::new("wss://127.0.0.1:1/").unwrap(),
            StaticToken::new("t"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ConnectError::Config(ConfigError::TlsRequired)),
            "{err:?}"
        );
        let err = Client::connect(
            ClientConfig::new("ws://127.0.0.1:1/")
                .unwrap()
                .with_tls(tls),
            StaticToken::new("t"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ConnectError::Config(ConfigError::TlsWithoutWss)),
            "{err:?}"
        );
    });
}
