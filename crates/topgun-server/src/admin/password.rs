//! `Credentials`: the admin user name and password, compared in constant
//! time through HMAC-SHA-256 digests under a per-process random key.

use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The configured credentials, kept only as digests.
///
/// Comparing fixed-length digests with a constant-time equality hides both
/// where a guess first differs and how long the real password is; the random
/// key makes the stored digests useless outside this process.
pub(crate) struct Credentials {
    key: [u8; 32],
    username: CtOutput<HmacSha256>,
    password: CtOutput<HmacSha256>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

impl Credentials {
    pub(crate) fn new(username: &str, password: &str) -> Self {
        let key: [u8; 32] = rand::random();
        Credentials {
            username: digest(&key, username.as_bytes()),
            password: digest(&key, password.as_bytes()),
            key,
        }
    }

    /// Whether both match. Both comparisons always run.
    pub(crate) fn matches(&self, username: &str, password: &str) -> bool {
        let user_ok = digest(&self.key, username.as_bytes()) == self.username;
        let password_ok = digest(&self.key, password.as_bytes()) == self.password;
        user_ok & password_ok
    }
}

fn digest(key: &[u8; 32], input: &[u8]) -> CtOutput<HmacSha256> {
    // HMAC takes keys of any length, so `new_from_slice` does not fail. Were
    // it to, every digest (stored and compared alike) would be made under
    // the all-zero key instead: still a correct constant-time comparison.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(input);
    mac.finalize()
}
