//! `cargo xtask certs`: a development PKI made with rcgen.
//!
//! Writes a CA, a server certificate for the client-facing listener, and one
//! certificate per cluster node. Node certificates carry both the serverAuth
//! and clientAuth extended key usages (each node dials and accepts mutual-TLS
//! connections) and a DNS SAN equal to the node id, which the cluster binds
//! to the identity a peer claims. Private keys are written with mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// What to generate.
#[derive(Clone, Debug)]
pub struct CertsOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Number of node certificates (`node-1` .. `node-N`).
    pub nodes: u32,
    /// Validity in days from now.
    pub days: u32,
    /// Extra SANs for the server certificate (DNS names or IP addresses).
    pub extra_sans: Vec<String>,
    /// Overwrite existing files.
    pub force: bool,
}

impl Default for CertsOptions {
    fn default() -> Self {
        CertsOptions {
            out: PathBuf::from("certs"),
            nodes: 3,
            days: 365,
            extra_sans: Vec::new(),
            force: false,
        }
    }
}

/// The SANs every server certificate carries.
pub const DEFAULT_SERVER_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The node id (and DNS SAN) of the `i`-th node certificate, counting from 1.
pub fn node_id(i: u32) -> String {
    format!("node-{i}")
}

/// One file written, with whether it is secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Where.
    pub path: PathBuf,
    /// Whether the file holds a private key (mode 0600).
    pub private: bool,
}

/// Parses `certs` arguments: `--out DIR`, `--nodes N`, `--days D`,
/// `--san NAME` (repeatable), `--force`.
pub fn parse_args(args: &[String]) -> Result<CertsOptions> {
    let mut opts = CertsOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--out" => opts.out = PathBuf::from(value("--out")?),
            "--nodes" => {
                opts.nodes = value("--nodes")?
                    .parse()
                    .context("--nodes takes a whole number")?;
            }
            "--days" => {
                opts.days = value("--days")?
                    .parse()
                    .context("--days takes a whole number")?;
                if opts.days == 0 {
                    bail!("--days must be at least 1");
                }
            }
            "--san" => opts.extra_sans.push(value("--san")?),
            "--force" => opts.force = true,
            other => bail!("unknown option `{other}` for `certs`\n\n{}", usage()),
        }
    }
    Ok(opts)
}

/// The `certs` usage text.
pub fn usage() -> &'static str {
    "usage: cargo xtask certs [--out DIR] [--nodes N] [--days D] [--san NAME]... [--force]\n\n  \
     --out DIR    where to write (default: certs)\n  \
     --nodes N    node certificates node-1..node-N (default: 3)\n  \
     --days D     validity in days (default: 365)\n  \
     --san NAME   extra DNS name or IP for the server certificate (repeatable)\n  \
     --force      overwrite existing files"
}

/// Generates the PKI described by `opts`; returns the files written.
pub fn generate(opts: &CertsOptions) -> Result<Vec<Written>> {
    let mut names = vec!["ca.crt".to_owned(), "ca.key".to_owned()];
    names.extend(["server.crt".to_owned(), "server.key".to_owned()]);
    for i in 1..=opts.nodes {
        names.push(format!("{}.crt", node_id(i)));
        names.push(format!("{}.key", node_id(i)));
    }
    if !opts.force {
        let existing: Vec<&String> = names.iter().filter(|n| opts.out.join(n).exists()).collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {} in {} (pass --force to replace them)",
                existing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                opts.out.display()
            );
        }
    }
    fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;

    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::minutes(5);
    let not_after = now + Duration::days(i64::from(opts.days));

    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "TopGun-RS development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA")?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut written = Vec::new();
    written.push(write(&opts.out, "ca.crt", &ca_cert.pem(), false)?);
    written.push(write(&opts.out, "ca.key", &ca_key.serialize_pem(), true)?);

    let mut server_sans: Vec<String> = DEFAULT_SERVER_SANS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for san in &opts.extra_sans {
        if !server_sans.contains(san) {
            server_sans.push(san.clone());
        }
    }
    let leaf = |cn: &str,
                sans: Vec<String>,
                usages: Vec<ExtendedKeyUsagePurpose>|
     -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans).with_context(|| format!("SANs of {cn}"))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, &issuer)
            .with_context(|| format!("signing {cn}"))?;
        Ok((cert.pem(), key.serialize_pem()))
    };

    let (crt, key) = leaf(
        "TopGun-RS server",
        server_sans,
        vec![ExtendedKeyUsagePurpose::ServerAuth],
    )?;
    written.push(write(&opts.out, "server.crt", &crt, false)?);
    written.push(write(&opts.out, "server.key", &key, true)?);

    for i in 1..=opts.nodes {
        let id = node_id(i);
        let (crt, key) = leaf(
            &id,
            vec![id.clone()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        written.push(write(&opts.out, &format!("{id}.crt"), &crt, false)?);
        written.push(write(&opts.out, &format!("{id}.key"), &key, true)?);
    }
    Ok(written)
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> Result<Written> {
    let path = dir.join(name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A pre-existing file keeps its old mode when opened: set it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(Written { path, private })
}

/// What `cargo xtask certs` prints after writing: the files and the
/// environment variables that use them.
pub fn summary(opts: &CertsOptions, written: &[Written]) -> String {
    let dir = opts.out.display();
    let mut s = String::from("wrote:\n");
    for w in written {
        s.push_str(&format!(
            "  {}{}\n",
            w.path.display(),
            if w.private {
                "  (private key, mode 0600)"
            } else {
                ""
            }
        ));
    }
    s.push_str(&format!(
        "\nclient-facing TLS (topgun-server):\n  \
         TOPGUN_TLS_ENABLED=true\n  \
         TOPGUN_TLS_CERT_PATH={dir}/server.crt\n  \
         TOPGUN_TLS_KEY_PATH={dir}/server.key\n  \
         clients trust {dir}/ca.crt\n"
    ));
    if opts.nodes > 0 {
        s.push_str(&format!(
            "\ncluster mutual TLS, per node (read by the cluster transport once it is built):\n  \
             TOPGUN_CLUSTER_TLS_ENABLED=true\n  \
             TOPGUN_CLUSTER_MTLS=true\n  \
             TOPGUN_CLUSTER_TLS_CERT_PATH={dir}/node-1.crt\n  \
             TOPGUN_CLUSTER_TLS_KEY_PATH={dir}/node-1.key\n  \
             TOPGUN_CLUSTER_TLS_CA_PATH={dir}/ca.crt\n"
        ));
    }
    s
}
