//! `cargo xtask certs`: the PKI it writes is what the TLS and mTLS code
//! expects (SANs, key usages, CA flags, chain, key file modes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use xtask::certs::{CertsOptions, generate, parse_args};

fn read_cert(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = parse_x509_pem(&pem).unwrap();
    pem.contents
}

fn sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let ext = cert.subject_alternative_name().unwrap().unwrap();
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => (*d).to_owned(),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                _ => panic!("bad IP SAN"),
            },
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

fn opts(dir: &Path) -> CertsOptions {
    CertsOptions {
        out: dir.to_owned(),
        nodes: 2,
        days: 30,
        extra_sans: vec!["topgun.example.com".into(), "10.0.0.7".into()],
        force: false,
    }
}

#[test]
fn writes_a_ca_a_server_cert_and_node_certs() {
    let dir = tempfile::tempdir().unwrap();
    let written = generate(&opts(dir.path())).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "node-1.crt",
            "node-1.key",
            "node-2.crt",
            "node-2.key"
        ]
    );
    for w in &written {
        let mode = std::fs::metadata(&w.path).unwrap().permissions().mode() & 0o777;
        let expected = if w.private { 0o600 } else { 0o644 };
        assert_eq!(mode, expected, "{}", w.path.display());
        assert_eq!(w.private, w.path.extension().unwrap() == "key");
    }

    let ca_der = read_cert(&dir.path().join("ca.crt"));
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(ca.version(), x509_parser::x509::X509Version::V3);

    let server_der = read_cert(&dir.path().join("server.crt"));
    assert_eq!(
        sans(&server_der),
        [
            "localhost",
            "127.0.0.1",
            "::1",
            "topgun.example.com",
            "10.0.0.7"
        ]
    );
    let (_, server) = x509_parser::parse_x509_certificate(&server_der).unwrap();
    assert!(!server.is_ca());
    let eku = server.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    server.verify_signature(Some(ca.public_key())).unwrap();
    let days = (server.validity().not_after.timestamp() - server.validity().not_before.timestamp())
        / 86_400;
    assert_eq!(
        days, 30,
        "validity follows --days (plus a 5 minute back-date)"
    );

    for id in ["node-1", "node-2"] {
        let der = read_cert(&dir.path().join(format!("{id}.crt")));
        assert_eq!(sans(&der), [id]);
        let (_, node) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = node.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth, "{id} needs both usages");
        node.verify_signature(Some(ca.public_key())).unwrap();
    }
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    generate(&o).unwrap();
    let before = std::fs::read(dir.path().join("ca.key")).unwrap();
    let err = generate(&o).unwrap_err().to_string();
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
    o.force = true;
    generate(&o).unwrap();
    assert_ne!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
}

#[test]
fn parses_options_and_rejects_bad_ones() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let o = parse_args(&args(
        "--out /tmp/x --nodes 5 --days 7 --san a.example --san b.example --force",
    ))
    .unwrap();
    assert_eq!(o.out, Path::new("/tmp/x"));
    assert_eq!((o.nodes, o.days, o.force), (5, 7, true));
    assert_eq!(o.extra_sans, ["a.example", "b.example"]);
    let defaults = parse_args(&[]).unwrap();
    assert_eq!((defaults.nodes, defaults.days), (3, 365));
    assert_eq!(defaults.out, Path::new("certs"));

    for (bad, msg) in [
        ("--nodes", "needs a value"),
        ("--nodes three", "whole number"),
        ("--days 0", "at least 1"),
        ("--bogus", "unknown option"),
    ] {
        let err = format!("{:#}", parse_args(&args(bad)).unwrap_err());
        assert!(err.contains(msg), "{bad}: {err}");
    }
}
