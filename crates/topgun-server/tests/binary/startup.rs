//! Start-up: refusing unsafe configurations with messages that say how to
//! fix them, `--help`, `--dev`, no-auth mode, TLS from the environment and
//! graceful shutdown on SIGTERM.

use topgun_protocol::{Encoding, ServerMessage};
use topgun_tests::Raw;

use crate::{secured, server_cmd, spawn};

fn fails_with(mut cmd: std::process::Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

#[test]
fn refuses_to_start_without_a_jwt_secret_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_cmd();
    cmd.env("TOPGUN_DATA_DIR", dir.path()).env("PORT", "0");
    fails_with(
        cmd,
        &[
            "JWT_SECRET is not set",
            "openssl rand",
            "--dev",
            "TOPGUN_NO_AUTH=1",
        ],
    );
}

#[test]
fn refuses_weak_or_unparsable_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = server_cmd();
    short
        .env("JWT_SECRET", "too-short")
        .env("TOPGUN_DATA_DIR", dir.path())
        .env("PORT", "0");
    fails_with(short, &["JWT_SECRET", "32"]);
    let mut pem = server_cmd();
    pem.env(
        "JWT_SECRET",
        "-----BEGIN PUBLIC KEY-----\\nnot a key\\n-----END PUBLIC KEY-----",
    )
    .env("TOPGUN_DATA_DIR", dir.path())
    .env("PORT", "0");
    fails_with(pem, &["JWT_SECRET"]);
}

#[test]
fn help_documents_every_option_and_its_env_var() {
    let out = server_cmd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "PORT",
        "JWT_SECRET",
        "TOPGUN_NO_AUTH",
        "TOPGUN_DATA_DIR",
        "TOPGUN_LOG_FORMAT",
        "TOPGUN_TLS_ENABLED",
        "TOPGUN_TLS_CERT_PATH",
        "TOPGUN_TLS_KEY_PATH",
        "TOPGUN_TLS_CA_PATH",
        "TOPGUN_TLS_MIN_VERSION",
        "TOPGUN_JWKS_FILE",
        "TOPGUN_MAX_CONNECTIONS",
        "TOPGUN_MAX_MESSAGE_BYTES",
        "TOPGUN_OPS_PER_SECOND",
        "TOPGUN_AUTH_TIMEOUT_SECS",
        "TOPGUN_ADMIN_USERNAME",
        "TOPGUN_ADMIN_PASSWORD",
        "TOPGUN_ADMIN_TOKEN_TTL_SECS",
        "--admin-token-ttl-secs",
        "--dev",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    assert!(!help.contains(topgun_tests::SECRET));
}

#[tokio::test]
async fn dev_mode_prints_a_token_that_works_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_cmd();
    cmd.arg("--dev")
        .env("TOPGUN_DATA_DIR", dir.path())
        .env("PORT", "0");
    let mut proc = spawn(cmd);
    assert!(proc.addr.ip().is_loopback(), "--dev listens on loopback");
    assert!(
        proc.banner.join("\n").contains("dev mode"),
        "{:?}",
        proc.banner
    );
    // The token follows the listening line.
    let token = std::iter::from_fn(|| proc.next_line())
        .take(5)
        .find(|l| l.starts_with("ey") && l.matches('.').count() == 2)
        .expect("a dev token on stdout");
    let mut raw = Raw::connect(proc.addr, Encoding::Json).await;
    match raw.handshake(&token).await {
        ServerMessage::AuthAck { sub, .. } => assert_eq!(sub, "dev"),
        other => panic!("the dev token was refused: {other:?}"),
    }
    drop(raw);
    // SIGTERM: graceful shutdown, exit status 0.
    let pid = proc.child.id();
    assert!(
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = proc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn no_auth_mode_accepts_anyone_as_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_cmd();
    cmd.env("TOPGUN_NO_AUTH", "1")
        .env("TOPGUN_DATA_DIR", dir.path())
        .env("TOPGUN_HOST", "127.0.0.1")
        .env("PORT", "0");
    let proc = spawn(cmd);
    let mut raw = Raw::connect(proc.addr, Encoding::Json).await;
    match raw.handshake("anything").await {
        ServerMessage::AuthAck {
            sub,
            session_expires_at_ms,
            ..
        } => {
            assert_eq!(sub, "anonymous");
            assert_eq!(session_expires_at_ms, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tls_from_the_environment_and_a_clear_error_for_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    xtask::certs::generate(&xtask::certs::CertsOptions {
        out: certs.clone(),
        nodes: 0,
        ..Default::default()
    })
    .unwrap();
    let mut cmd = secured(dir.path());
    cmd.env("TOPGUN_TLS_ENABLED", "true")
        .env("TOPGUN_TLS_CERT_PATH", certs.join("server.crt"))
        .env("TOPGUN_TLS_KEY_PATH", certs.join("server.key"))
        .env("TOPGUN_TLS_MIN_VERSION", "TLSv1.3");
    let proc = spawn(cmd);
    assert!(
        proc.banner.iter().any(|l| l.contains("wss://")),
        "{:?}",
        proc.banner
    );
    drop(proc);

    let mut bad = secured(dir.path());
    bad.env("TOPGUN_TLS_ENABLED", "true")
        .env("TOPGUN_TLS_CERT_PATH", certs.join("missing.crt"))
        .env("TOPGUN_TLS_KEY_PATH", certs.join("server.key"));
    fails_with(bad, &["missing.crt", "cannot read"]);

    let mut half = secured(dir.path());
    half.env("TOPGUN_TLS_ENABLED", "true");
    fails_with(half, &["TOPGUN_TLS_CERT_PATH"]);
}

#[test]
fn refuses_a_default_or_short_admin_password() {
    let dir = tempfile::tempdir().unwrap();
    for (password, needle) in [
        ("changeme", "well-known default"),
        ("admin", "well-known default"),
        ("short-pw", "fewer than 12"),
        ("", "empty"),
    ] {
        let mut cmd = server_cmd();
        cmd.env("JWT_SECRET", topgun_tests::SECRET)
            .env("TOPGUN_ADMIN_PASSWORD", password)
            .env("TOPGUN_DATA_DIR", dir.path())
            .env("PORT", "0");
        fails_with(cmd, &["TOPGUN_ADMIN_PASSWORD", needle]);
    }
}

/// `--dev` prints a random admin password after the token; it logs in.
#[tokio::test]
async fn dev_mode_prints_an_admin_password_that_logs_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_cmd();
    cmd.arg("--dev")
        .env("TOPGUN_DATA_DIR", dir.path())
        .env("PORT", "0");
    let proc = spawn(cmd);
    let line = std::iter::from_fn(|| proc.next_line())
        .take(6)
        .find(|l| l.contains("/api/auth/login"))
        .expect("an admin login line on stdout");
    let body = &line[line.find('{').unwrap()..];
    let creds: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(creds["username"], "admin");
    assert!(creds["password"].as_str().unwrap().len() >= 12);
    let mut tcp = tokio::net::TcpStream::connect(proc.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"token\""), "{response}");
}
