//! Server configuration: network, TLS, limits, write policy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Default client-facing port, as TopGun documents it.
pub const DEFAULT_PORT: u16 = 8090;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Address to bind (default `0.0.0.0`).
    pub host: IpAddr,
    /// Port to bind (default 8090; 0 picks a free port, see
    /// `Server::local_addr`).
    pub port: u16,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_PORT,
        }
    }
}

impl NetworkConfig {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// The lowest TLS version the server accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    /// Accepts `1.2`, `1.3`, `TLSv1.2`, `TLSv1.3` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.strip_prefix("tlsv").unwrap_or(&lower) {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!(
                "unsupported minimum TLS version `{s}` (use TLSv1.2 or TLSv1.3; older versions are never accepted)"
            )),
        }
    }
}

/// Direct TLS for client connections (`wss://` and HTTPS). Files are read
/// and checked when the server is built, so a bad path or a key that does
/// not match fails start-up with a clear error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1; unencrypted).
    pub key_path: PathBuf,
    /// Optional PEM CA bundle: when set, clients must present a certificate
    /// signed by it (mutual TLS for clients).
    pub client_ca_path: Option<PathBuf>,
    /// The lowest accepted TLS version.
    pub min_version: TlsVersion,
}

impl TlsConfig {
    /// TLS with the given certificate chain and key, TLS 1.2 minimum, no
    /// client certificates.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            client_ca_path: None,
            min_version: TlsVersion::default(),
        }
    }
}

/// Caps on what one client, one address, or all clients together may use.
/// Every limit, when hit, gives its documented close code or error
/// (`docs/security.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections, all addresses together.
    pub max_connections: usize,
    /// Concurrent connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Largest WebSocket frame accepted.
    pub max_frame_bytes: usize,
    /// Largest WebSocket message (after reassembling fragments), which is
    /// also the codec's input limit.
    pub max_message_bytes: usize,
    /// Largest encoded value of one write.
    pub max_value_bytes: usize,
    /// Most ops in one `OP_BATCH`.
    pub max_batch_ops: usize,
    /// Messages queued for one connection before it counts as a slow
    /// consumer.
    pub outbound_queue: usize,
    /// Sustained ops per second per connection (a token bucket with a burst
    /// of two seconds' worth).
    pub ops_per_second: u32,
    /// Sustained inbound bytes per second per connection (same bucket
    /// shape).
    pub bytes_per_second: u32,
    /// Live queries one connection may hold.
    pub max_subscriptions: usize,
    /// Batches one connection may have waiting for their group commit.
    pub max_inflight_batches: usize,
    /// Time a client has to send `AUTH` after connecting.
    pub auth_deadline: Duration,
    /// Time without any inbound frame after which the server pings; a
    /// second such period without an answer closes the connection.
    pub idle_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for the HTTP request that upgrades to WebSocket.
    pub upgrade_timeout: Duration,
    /// How long before the token's `exp` the server asks for a fresh one.
    pub renewal_lead: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_connections_per_ip: 1_000,
            max_frame_bytes: 1 << 20,
            max_message_bytes: 2 << 20,
            max_value_bytes: 1 << 20,
            max_batch_ops: 1_000,
            outbound_queue: 1_024,
            ops_per_second: 50_000,
            bytes_per_second: 32 << 20,
            max_subscriptions: 256,
            max_inflight_batches: 64,
            auth_deadline: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            renewal_lead: Duration::from_secs(30),
        }
    }
}

/// How the server treats the HLC timestamp a client puts on its writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampPolicy {
    /// Replace it with the server's own reading (the default): a client can
    /// not win every conflict with a clock set in the future.
    #[default]
    Restamp,
    /// Keep it if it is at most `max_drift` ahead of the server's clock,
    /// reject the op (`ClockDrift`) otherwise; the server clock advances
    /// past it.
    BoundedDrift {
        /// The largest accepted lead over server time.
        max_drift: Duration,
    },
}
