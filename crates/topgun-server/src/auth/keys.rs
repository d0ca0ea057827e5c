//! Verification keys pinned to one algorithm, and the immutable key sets a verifier selects from.
//!
//! **Invariant:** a key's algorithm is decided here, at load time, from the
//! key material (or an explicit `alg` that agrees with it), never from a
//! token. PEM text is never used as an HMAC secret.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{DecodingKey, DecodingKeyKind};
use serde_json::{Map, Value};

use super::JwsAlgorithm;
use super::algorithm::KeyFamily;
use super::error::{AuthError, KeyLoadError, PemProblem};
use super::pem;

/// base64url as JWKs use it: unpadded by the RFC, but padding is tolerated
/// because some publishers add it.
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// JWK members that only a private key has.
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Whether a key still verifies tokens (key rotation).
///
/// Times are seconds since the Unix epoch. The state is checked by
/// [`super::Verifier::verify`] after the signature has verified, so a token
/// refused for its key's state is still known to be genuine.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyState {
    /// Verifies every token it signed.
    #[default]
    Active,
    /// Retired at `at` (rotated out): a token it signed is accepted only if
    /// its `iat` is strictly before `at`, so tokens already in circulation
    /// live out their `exp`; a token issued at or after `at`, or without
    /// `iat`, is refused with [`AuthError::KeyRetired`].
    Retired {
        /// When the key was retired.
        at: u64,
    },
    /// Deactivated at `at` (compromised or withdrawn): every token it signed
    /// is refused with [`AuthError::KeyDeactivated`].
    Deactivated {
        /// When the key was deactivated.
        at: u64,
    },
}

impl KeyState {
    /// `"active"`, `"retired"` or `"deactivated"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired { .. } => "retired",
            Self::Deactivated { .. } => "deactivated",
        }
    }

    /// Whether a token issued at `iat` (if it says) may be verified by a key
    /// in this state.
    pub fn admits(&self, iat: Option<u64>) -> Result<(), AuthError> {
        match *self {
            Self::Active => Ok(()),
            Self::Retired { at } => match iat {
                Some(iat) if iat < at => Ok(()),
                _ => Err(AuthError::KeyRetired),
            },
            Self::Deactivated { .. } => Err(AuthError::KeyDeactivated),
        }
    }
}

/// A public key (or HMAC secret) with an optional key id, pinned to exactly
/// one signature algorithm, and its [`KeyState`].
#[derive(Debug, Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    alg: JwsAlgorithm,
    key: DecodingKey,
    state: KeyState,
}

impl VerificationKey {
    /// An HMAC key. `alg` must be an HMAC algorithm and `secret` at least as
    /// long as its hash output (32 bytes for HS256). Public key material in
    /// any recognisable form (PEM, DER, base64 DER, JWK, OpenSSH) is refused:
    /// whoever knows a public key could forge tokens with it as a secret.
    pub fn hmac(
        kid: Option<String>,
        alg: JwsAlgorithm,
        secret: &[u8],
    ) -> Result<Self, KeyLoadError> {
        if alg.family() != KeyFamily::Hmac {
            return Err(KeyLoadError::AlgorithmMismatch {
                alg,
                key_type: KeyFamily::Hmac.name(),
            });
        }
        if secret.len() < alg.min_hmac_len() {
            return Err(KeyLoadError::TooShortSecret {
                len: secret.len(),
                min: alg.min_hmac_len(),
            });
        }
        check_not_public_key(secret)?;
        Self::checked(kid, alg, DecodingKey::from_secret(secret))
    }

    /// A public key from PEM text (`PUBLIC KEY` SPKI or PKCS#1 `RSA PUBLIC
    /// KEY`). Literal `\n` sequences (as env files carry them) are unescaped
    /// first. The algorithm is read from the key: RSA gives RS256, EC P-256
    /// ES256, EC P-384 ES384, Ed25519 EdDSA. An explicit `alg` may choose
    /// another algorithm of the same key type (PS256 for an RSA key) and is
    /// refused if it does not fit.
    pub fn from_pem(
        kid: Option<String>,
        pem_text: &str,
        alg: Option<JwsAlgorithm>,
    ) -> Result<Self, KeyLoadError> {
        let text = unescape_newlines(pem_text);
        let block = pem::parse_single_block(&text)?;
        let classified = pem::classify(&block)?;
        let alg = match alg {
            None => classified.alg,
            Some(explicit) => {
                let fits = match classified.alg.family() {
                    // Any RSA signature scheme works with any RSA key.
                    KeyFamily::Rsa => explicit.family() == KeyFamily::Rsa,
                    // EC algorithms are tied to the curve.
                    _ => explicit == classified.alg,
                };
                if !fits {
                    return Err(KeyLoadError::AlgorithmMismatch {
                        alg: explicit,
                        key_type: key_type_name(classified.alg),
                    });
                }
                explicit
            }
        };
        let canonical = block.to_canonical_pem();
        let built = match alg.family() {
            KeyFamily::Rsa => DecodingKey::from_rsa_pem(canonical.as_bytes()),
            KeyFamily::Ec => DecodingKey::from_ec_pem(canonical.as_bytes()),
            KeyFamily::Ed => DecodingKey::from_ed_pem(canonical.as_bytes()),
            KeyFamily::Hmac => return Err(KeyLoadError::InvalidPem(PemProblem::Der)),
        };
        let key = built.map_err(|_| KeyLoadError::InvalidPem(PemProblem::Der))?;
        // Both readings of the block must agree on the key bytes.
        match key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) if *bytes == classified.key_bytes => {}
            _ => return Err(KeyLoadError::InvalidPem(PemProblem::ParserDisagreement)),
        }
        Self::checked(kid, alg, key)
    }

    /// A key from one JWK (RFC 7517/7518/8037): `RSA` (`n`, `e`), `EC` P-256
    /// or P-384 (`x`, `y`), `OKP` Ed25519 (`x`), or `oct` (`k`, HMAC). The
    /// JWK's `alg`, when present, must fit the key type and becomes the
    /// pinned algorithm; otherwise the algorithm follows from the key type.
    /// Keys whose `use` is not `sig`, whose `key_ops` lack `verify`, or that
    /// carry private members are refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyLoadError> {
        let obj = jwk.as_object().ok_or(KeyLoadError::NotAnObject)?;
        let kid = opt_str(obj, "kid")?.map(str::to_owned);
        if let Some(key_use) = opt_str(obj, "use")? {
            if key_use != "sig" {
                return Err(KeyLoadError::NotASigningKey);
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops
                .as_array()
                .ok_or(KeyLoadError::InvalidField { field: "key_ops" })?;
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Err(KeyLoadError::NotASigningKey);
            }
        }
        let explicit = match opt_str(obj, "alg")? {
            None => None,
            Some(name) => Some(JwsAlgorithm::from_name(name).ok_or_else(|| {
                KeyLoadError::UnknownAlgorithm {
                    alg: name.to_owned(),
                }
            })?),
        };
        let kty = opt_str(obj, "kty")?.ok_or(KeyLoadError::MissingField { field: "kty" })?;
        if kty != "oct" && PRIVATE_JWK_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err(KeyLoadError::PrivateKeyGiven);
        }
        let (alg, key) = match kty {
            "RSA" => {
                let alg = pin(explicit, JwsAlgorithm::Rs256, "RSA", |a| {
                    a.family() == KeyFamily::Rsa
                })?;
                let n = b64_field(obj, "n")?;
                let e = b64_field(obj, "e")?;
                pem::check_rsa_components(&n, &e)?;
                (alg, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            "EC" => {
                let crv =
                    opt_str(obj, "crv")?.ok_or(KeyLoadError::MissingField { field: "crv" })?;
                let (curve_alg, coord, name) = match crv {
                    "P-256" => (JwsAlgorithm::Es256, 32, "EC P-256"),
                    "P-384" => (JwsAlgorithm::Es384, 48, "EC P-384"),
                    other => {
                        return Err(KeyLoadError::UnsupportedKeyType {
                            found: format!("kty \"EC\" crv {other:?}"),
                        });
                    }
                };
                let alg = pin(explicit, curve_alg, name, |a| a == curve_alg)?;
                let x = b64_field(obj, "x")?;
                let y = b64_field(obj, "y")?;
                if x.len() != coord || y.len() != coord {
                    return Err(KeyLoadError::InvalidKey {
                        what: "an EC coordinate has the wrong length for its curve",
                    });
                }
                let mut point = Vec::with_capacity(1 + 2 * coord);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (alg, DecodingKey::from_ec_der(&point))
            }
            "OKP" => {
                let crv =
                    opt_str(obj, "crv")?.ok_or(KeyLoadError::MissingField { field: "crv" })?;
                if crv != "Ed25519" {
                    return Err(KeyLoadError::UnsupportedKeyType {
                        found: format!("kty \"OKP\" crv {crv:?}"),
                    });
                }
                let alg = pin(explicit, JwsAlgorithm::EdDsa, "Ed25519", |a| {
                    a == JwsAlgorithm::EdDsa
                })?;
                let x = b64_field(obj, "x")?;
                if x.len() != 32 {
                    return Err(KeyLoadError::InvalidKey {
                        what: "an Ed25519 public key is 32 bytes",
                    });
                }
                (alg, DecodingKey::from_ed_der(&x))
            }
            "oct" => {
                let alg = pin(explicit, JwsAlgorithm::Hs256, "oct", |a| {
                    a.family() == KeyFamily::Hmac
                })?;
                let k = b64_field(obj, "k")?;
                return Self::hmac(kid, alg, &k);
            }
            other => {
                return Err(KeyLoadError::UnsupportedKeyType {
                    found: format!("kty {other:?}"),
                });
            }
        };
        Self::checked(kid, alg, key)
    }

    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// Final gate: the crypto backend must be able to build a verifier for
    /// the key (this rejects, for instance, an EC point that is not on its
    /// curve), so a bad key fails at load instead of on every token.
    fn checked(
        kid: Option<String>,
        alg: JwsAlgorithm,
        key: DecodingKey,
    ) -> Result<Self, KeyLoadError> {
        // An empty signature never verifies; only a key the backend cannot
        // use makes this an error.
        if jsonwebtoken::crypto::verify("", b"", &key, alg.to_jwt()).is_err() {
            return Err(KeyLoadError::InvalidKey {
                what: "the crypto backend cannot use this key",
            });
        }
        Ok(VerificationKey {
            kid,
            alg,
            key,
            state: KeyState::Active,
        })
    }

    /// One entry of a TopGun key file (see [`KeySet::from_key_file_json`]):
    /// `{"kid", "secret" | "pem", "alg"?}`, unknown fields refused.
    pub fn from_key_file_entry(entry: &Value) -> Result<Self, KeyLoadError> {
        key_file_entry(entry)
    }

    /// The same key under another key id.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The same key in another state.
    #[must_use]
    pub fn with_state(mut self, state: KeyState) -> Self {
        self.state = state;
        self
    }

    /// Whether the key still verifies tokens.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// A SHA-256 digest of the algorithm and the key material, to recognise
    /// the same key across restarts without storing it. Not a standard JWK
    /// thumbprint, and never shown to anyone.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(self.alg.as_str().as_bytes());
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => {
                hash.update([0u8]);
                hash.update(bytes);
            }
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                hash.update([1u8]);
                hash.update((n.len() as u64).to_be_bytes());
                hash.update(n);
                hash.update(e);
            }
        }
        hash.finalize().into()
    }
}

fn key_type_name(alg: JwsAlgorithm) -> &'static str {
    match alg {
        JwsAlgorithm::Es256 => "EC P-256",
        JwsAlgorithm::Es384 => "EC P-384",
        other => other.family().name(),
    }
}

/// Chooses the pinned algorithm: the explicit one if `fits`, else the default.
fn pin(
    explicit: Option<JwsAlgorithm>,
    default: JwsAlgorithm,
    key_type: &'static str,
    fits: impl Fn(JwsAlgorithm) -> bool,
) -> Result<JwsAlgorithm, KeyLoadError> {
    match explicit {
        None => Ok(default),
        Some(alg) if fits(alg) => Ok(alg),
        Some(alg) => Err(KeyLoadError::AlgorithmMismatch { alg, key_type }),
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, KeyLoadError> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyLoadError::InvalidField { field }),
    }
}

fn b64_field(obj: &Map<String, Value>, field: &'static str) -> Result<Vec<u8>, KeyLoadError> {
    let text = opt_str(obj, field)?.ok_or(KeyLoadError::MissingField { field })?;
    let bytes = B64URL_LENIENT
        .decode(text)
        .map_err(|_| KeyLoadError::InvalidField { field })?;
    if bytes.is_empty() {
        return Err(KeyLoadError::InvalidField { field });
    }
    Ok(bytes)
}

/// Turns the two-character sequence `\n` (and `\r\n`) into a real newline,
/// as PEM keys arrive from container env vars.
pub(crate) fn unescape_newlines(text: &str) -> String {
    text.replace("\\r\\n", "\n").replace("\\n", "\n")
}

/// Refuses HMAC secrets that are really public key material: anyone
/// holding the public key could then forge tokens.
fn check_not_public_key(secret: &[u8]) -> Result<(), KeyLoadError> {
    if secret.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(KeyLoadError::PemInSecret);
    }
    if pem::is_der_public_key(secret) {
        return Err(KeyLoadError::PublicKeyAsSecret { format: "DER" });
    }
    let Ok(text) = std::str::from_utf8(secret) else {
        return Ok(());
    };
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed) {
            if obj.contains_key("kty") || obj.contains_key("keys") {
                return Err(KeyLoadError::PublicKeyAsSecret { format: "JWK/JWKS" });
            }
        }
    }
    if ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| trimmed.starts_with(p))
    {
        return Err(KeyLoadError::PublicKeyAsSecret { format: "OpenSSH" });
    }
    if pem::is_bare_der_public_key(text) {
        return Err(KeyLoadError::PublicKeyAsSecret {
            format: "base64 DER",
        });
    }
    Ok(())
}

/// An immutable, non-empty set of verification keys.
///
/// Selection rules (see [`KeySet::select`]): a token's `kid` picks the key
/// with that id; a token without `kid` uses the only key when there is
/// exactly one. A single key configured *without* a kid (the `JWT_SECRET`
/// case) is used for every token, whatever `kid` the token names, because
/// identity providers such as Clerk put a `kid` in every token while the
/// operator pasted just the PEM. When several keys are configured, every key
/// has a distinct kid.
///
/// A set may name a *default* key ([`KeySet::with_default_kid`]): the key a
/// kid-less start-up key (`JWT_SECRET`) became once it was given a kid so
/// that other keys could join it. The default key verifies tokens without a
/// `kid` whatever the number of keys, and, while it is the only key, tokens
/// with any `kid`, exactly like the kid-less key it replaces.
///
/// Rotation builds a new set ([`KeySet::with_key`], [`KeySet::without_kid`])
/// and swaps it into the running [`super::Verifier`]; a key's
/// [`KeyState`] is checked after its signature verified.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    default_kid: Option<String>,
}

impl KeySet {
    /// A set of the given keys. Fails if there are none, if two share a kid,
    /// or if there are several and one has no kid.
    pub fn new(keys: impl IntoIterator<Item = VerificationKey>) -> Result<Self, KeyLoadError> {
        Self::from_arcs(keys.into_iter().map(Arc::new).collect())
    }

    fn from_arcs(keys: Vec<Arc<VerificationKey>>) -> Result<Self, KeyLoadError> {
        if keys.is_empty() {
            return Err(KeyLoadError::EmptyKeySet);
        }
        if keys.len() > 1 {
            for (index, key) in keys.iter().enumerate() {
                let Some(kid) = key.kid() else {
                    return Err(KeyLoadError::MissingKid { index });
                };
                if keys[..index].iter().any(|k| k.kid() == Some(kid)) {
                    return Err(KeyLoadError::DuplicateKid {
                        kid: kid.to_owned(),
                    });
                }
            }
        }
        Ok(KeySet {
            keys,
            default_kid: None,
        })
    }

    /// The same set with the key `kid` as its default key (see the type's
    /// documentation). Fails if no key has this kid.
    pub fn with_default_kid(mut self, kid: impl Into<String>) -> Result<Self, KeyLoadError> {
        let kid = kid.into();
        if self.get(&kid).is_none() {
            return Err(KeyLoadError::NoSuchKid { kid });
        }
        self.default_kid = Some(kid);
        Ok(self)
    }

    /// The kid of the default key, if the set has one.
    pub fn default_kid(&self) -> Option<&str> {
        self.default_kid.as_deref()
    }

    /// The key set for a `JWT_SECRET` value.
    ///
    /// Text containing `-----BEGIN` must be a PEM public key (after `\n`
    /// unescaping) or loading fails; it is never used as an HMAC secret.
    /// Anything else is an HS256 secret, used byte for byte (no unescaping,
    /// no trimming, so it matches what the token issuer signs with), of at
    /// least 32 bytes. Public key text without PEM armor is refused.
    pub fn from_jwt_secret(secret: &str) -> Result<Self, KeyLoadError> {
        let key = if secret.contains("-----BEGIN") {
            VerificationKey::from_pem(None, secret, None)?
        } else {
            VerificationKey::hmac(None, JwsAlgorithm::Hs256, secret.as_bytes())?
        };
        Self::new([key])
    }

    /// The key set of a JWKS document (RFC 7517 §5: `{"keys": [...]}`). Every
    /// entry must load (see [`VerificationKey::from_jwk`]); an error names the
    /// entry's index and kid.
    pub fn from_jwks_json(text: &str) -> Result<Self, KeyLoadError> {
        let entries = keys_array(text)?;
        let keys = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                VerificationKey::from_jwk(entry).map_err(|e| entry_error(index, entry, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The key set of a TopGun key file:
    ///
    /// ```json
    /// {"keys": [
    ///   {"kid": "2026-01", "secret": "at least 32 bytes of HMAC secret ....."},
    ///   {"kid": "idp", "pem": "-----BEGIN PUBLIC KEY-----\n...", "alg": "PS256"}
    /// ]}
    /// ```
    ///
    /// Each entry has a `kid`, exactly one of `secret` (HMAC, default HS256)
    /// and `pem` (a public key, algorithm read from the key), and optionally
    /// `alg`, which must fit the key. Unknown fields are refused.
    pub fn from_key_file_json(text: &str) -> Result<Self, KeyLoadError> {
        let entries = keys_array(text)?;
        let keys = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| key_file_entry(entry).map_err(|e| entry_error(index, entry, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// [`KeySet::from_jwks_json`] on the contents of a file.
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, KeyLoadError> {
        Self::from_jwks_json(&read_file(path.as_ref())?)
    }

    /// [`KeySet::from_key_file_json`] on the contents of a file.
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, KeyLoadError> {
        Self::from_key_file_json(&read_file(path.as_ref())?)
    }

    /// A new set with `key` added (it needs a kid not yet in use, and the
    /// existing keys need kids too).
    pub fn with_key(&self, key: VerificationKey) -> Result<Self, KeyLoadError> {
        let mut keys = self.keys.clone();
        keys.push(Arc::new(key));
        Ok(KeySet {
            default_kid: self.default_kid.clone(),
            ..Self::from_arcs(keys)?
        })
    }

    /// A new set without the key `kid`. Removing the last key is refused.
    pub fn without_kid(&self, kid: &str) -> Result<Self, KeyLoadError> {
        if self.get(kid).is_none() {
            return Err(KeyLoadError::NoSuchKid {
                kid: kid.to_owned(),
            });
        }
        let keys = self
            .keys
            .iter()
            .filter(|k| k.kid() != Some(kid))
            .cloned()
            .collect();
        Ok(KeySet {
            default_kid: self.default_kid.clone().filter(|d| d != kid),
            ..Self::from_arcs(keys)?
        })
    }

    /// The key with this kid.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys
            .iter()
            .map(|k| &**k)
            .find(|k| k.kid() == Some(kid))
    }

    /// The keys, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter().map(|k| &**k)
    }

    /// Number of keys (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set is never empty. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token whose header names `kid` (or none).
    pub fn select(&self, kid: Option<&str>) -> Result<&VerificationKey, AuthError> {
        match (self.keys.as_slice(), kid) {
            ([only], _) if only.kid().is_none() || self.is_default(only) => Ok(only),
            ([only], None) => Ok(only),
            (_, None) => self
                .default_kid
                .as_deref()
                .and_then(|d| self.get(d))
                .ok_or(AuthError::AmbiguousKey),
            (_, Some(kid)) => self.get(kid).ok_or(AuthError::UnknownKeyId),
        }
    }

    fn is_default(&self, key: &VerificationKey) -> bool {
        self.default_kid.is_some() && key.kid() == self.default_kid.as_deref()
    }
}

fn read_file(path: &Path) -> Result<String, KeyLoadError> {
    std::fs::read_to_string(path).map_err(|source| KeyLoadError::Io {
        path: path.to_owned(),
        source,
    })
}

fn keys_array(text: &str) -> Result<Vec<Value>, KeyLoadError> {
    let doc: Value = serde_json::from_str(text).map_err(KeyLoadError::Json)?;
    match doc {
        Value::Object(mut obj) => match obj.remove("keys") {
            Some(Value::Array(keys)) => Ok(keys),
            _ => Err(KeyLoadError::NoKeysArray),
        },
        _ => Err(KeyLoadError::NoKeysArray),
    }
}

fn entry_error(index: usize, entry: &Value, source: KeyLoadError) -> KeyLoadError {
    KeyLoadError::Entry {
        index,
        kid: entry.get("kid").and_then(Value::as_str).map(str::to_owned),
        source: Box::new(source),
    }
}

fn key_file_entry(entry: &Value) -> Result<VerificationKey, KeyLoadError> {
    let obj = entry.as_object().ok_or(KeyLoadError::NotAnObject)?;
    if let Some(field) = obj
        .keys()
        .find(|f| !["kid", "alg", "secret", "pem"].contains(&f.as_str()))
    {
        return Err(KeyLoadError::UnknownField {
            field: field.clone(),
        });
    }
    let kid = opt_str(obj, "kid")?.ok_or(KeyLoadError::MissingField { field: "kid" })?;
    let alg =
        match opt_str(obj, "alg")? {
            None => None,
            Some(name) => Some(JwsAlgorithm::from_name(name).ok_or_else(|| {
                KeyLoadError::UnknownAlgorithm {
                    alg: name.to_owned(),
                }
            })?),
        };
    match (opt_str(obj, "secret")?, opt_str(obj, "pem")?) {
        (Some(secret), None) => VerificationKey::hmac(
            Some(kid.to_owned()),
            alg.unwrap_or(JwsAlgorithm::Hs256),
            secret.as_bytes(),
        ),
        (None, Some(pem_text)) => VerificationKey::from_pem(Some(kid.to_owned()), pem_text, alg),
        _ => Err(KeyLoadError::SecretXorPem),
    }
}
