//! Typed errors of the auth module: token failures and key-loading failures.

use std::path::PathBuf;
use std::time::Duration;

use super::JwsAlgorithm;

/// Why a token was refused.
///
/// Each variant has a stable reason code ([`AuthError::reason`]) that logs and
/// metrics can rely on; the session layer maps these to the protocol's
/// `AUTH_FAIL` reasons. No variant carries token-controlled text, so an error
/// can be logged without echoing attacker input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not a compact JWS with a JSON header and a JSON object
    /// payload (wrong number of segments, bad base64url, bad JSON, missing or
    /// non-string `alg`, a malformed `kid` or `crit`), or it is larger than the
    /// configured maximum.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the selected key.
    #[error("invalid token signature")]
    InvalidSignature,
    /// `exp` plus the leeway is not after the current time.
    #[error("token expired")]
    Expired,
    /// `nbf` is later than the current time plus the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim (`sub`, `exp`, or a configured `iss`/`aud`) is absent.
    #[error("token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an unusable value, for example an
    /// `exp` sent as a string, an empty `sub`, or `roles` that is not an array
    /// of strings.
    #[error("token has an invalid `{0}` claim")]
    InvalidClaim(&'static str),
    /// The header names a `kid` that no configured key has.
    #[error("unknown key id")]
    UnknownKeyId,
    /// The header has no `kid` and several keys are configured, so no key can
    /// be chosen.
    #[error("token has no key id and several keys are configured")]
    AmbiguousKey,
    /// The header's `alg` is `none`, unknown, or not the algorithm the selected
    /// key is pinned to.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header lists a `crit` extension this server does not implement.
    #[error("token requires an unsupported critical header extension")]
    UnsupportedCriticalHeader,
    /// `iss` is not one of the configured issuers.
    #[error("token issuer not accepted")]
    InvalidIssuer,
    /// `aud` names none of the configured audiences, or the token has an
    /// audience while the server has none configured (RFC 7519 §4.1.3).
    #[error("token audience not accepted")]
    InvalidAudience,
    /// Too many failed attempts from this peer address; try again later.
    #[error("too many failed authentication attempts")]
    RateLimited,
    /// The token's key was retired (rotated out) and the token was issued at
    /// or after the retirement, or says nothing of when it was issued.
    #[error("the token's key is retired and the token was not issued before the retirement")]
    KeyRetired,
    /// The token's key is deactivated: none of its tokens is accepted.
    #[error("the token's key is deactivated")]
    KeyDeactivated,
}

impl AuthError {
    /// A stable, lower-case code for logs and metrics, e.g. `"expired"`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::UnknownKeyId => "unknown_key_id",
            Self::AmbiguousKey => "ambiguous_key",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::RateLimited => "rate_limited",
            Self::KeyRetired => "key_retired",
            Self::KeyDeactivated => "key_deactivated",
        }
    }
}

/// What is wrong with a PEM block.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    /// No `-----BEGIN <label>-----` line could be read.
    #[error("no well-formed BEGIN line")]
    MissingBegin,
    /// The `-----END <label>-----` line matching the BEGIN line is missing.
    #[error("no END line matching the BEGIN line")]
    MissingEnd,
    /// More than one PEM block was given; exactly one key is expected.
    #[error("more than one PEM block")]
    MultipleBlocks,
    /// Something other than whitespace or quotes surrounds the PEM block.
    #[error("unexpected text outside the PEM block")]
    TextOutsideBlock,
    /// The body between the armor lines is not valid base64.
    #[error("the body is not valid base64")]
    Base64,
    /// The body decodes, but not to the DER structure its label promises.
    #[error("the body is not a well-formed DER public key")]
    Der,
    /// jsonwebtoken read different key bytes from the block than this module
    /// did; the key is refused rather than guessing which reading is right.
    #[error("the key parsers disagree about this key")]
    ParserDisagreement,
}

/// Why a key or a key source could not be loaded.
///
/// Loading fails closed: any key that is not exactly understood is refused,
/// and nothing is ever reinterpreted as something else (PEM text is never used
/// as an HMAC secret).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The HMAC secret is shorter than the algorithm requires.
    #[error("the HMAC secret is {len} bytes long; at least {min} bytes are required")]
    TooShortSecret {
        /// Length of the given secret in bytes.
        len: usize,
        /// The minimum length for the key's algorithm.
        min: usize,
    },
    /// The text contains `-----BEGIN` but is not a usable PEM public key.
    #[error("invalid PEM public key: {0}")]
    InvalidPem(#[source] PemProblem),
    /// An HMAC secret is public key material without PEM armor (DER, bare
    /// base64 DER, a JWK or JWKS, an OpenSSH key). Using it as an HMAC secret would let
    /// anyone who knows the public key forge tokens, so it is refused.
    #[error(
        "the secret looks like a public key in {format} form; give a PEM public key \
         (or a JWKS file), never public key text as an HMAC secret"
    )]
    PublicKeyAsSecret {
        /// The recognised format, e.g. `"base64 DER"`.
        format: &'static str,
    },
    /// A private key was given where a public key is expected.
    #[error("a private key was given; configure the public key only")]
    PrivateKeyGiven,
    /// The PEM label is not one this module reads.
    #[error(
        "unsupported PEM block `{label}`; expected `PUBLIC KEY` or `RSA PUBLIC KEY` \
         (for a certificate, extract its key with `openssl x509 -pubkey -noout`)"
    )]
    UnsupportedPemLabel {
        /// The label of the block, e.g. `CERTIFICATE`.
        label: String,
    },
    /// The key type, curve or public-key algorithm is not supported.
    #[error("unsupported key type: {found}")]
    UnsupportedKeyType {
        /// What was found, e.g. `EC curve 1.3.132.0.10` or `kty "OKP" crv "X25519"`.
        found: String,
    },
    /// The RSA modulus is too small.
    #[error("the RSA key has {bits} bits; at least {min} are required")]
    WeakRsaKey {
        /// The modulus size in bits.
        bits: usize,
        /// The minimum accepted size.
        min: usize,
    },
    /// The key material has the right type but an unusable value (a point not
    /// on the curve, a coordinate of the wrong length, an empty exponent).
    #[error("invalid key material: {what}")]
    InvalidKey {
        /// What is wrong.
        what: &'static str,
    },
    /// An `alg` string that is not a supported JWS signature algorithm
    /// (including `none`).
    #[error("unsupported algorithm `{alg}`")]
    UnknownAlgorithm {
        /// The algorithm as given.
        alg: String,
    },
    /// An explicit `alg` does not fit the key type.
    #[error("algorithm {alg} does not fit a {key_type} key")]
    AlgorithmMismatch {
        /// The configured algorithm.
        alg: JwsAlgorithm,
        /// The key type, e.g. `RSA`.
        key_type: &'static str,
    },
    /// A JWK whose `use` is not `sig`, or whose `key_ops` lack `verify`.
    #[error("the key is not meant for signature verification")]
    NotASigningKey,
    /// A required field is absent from a JWK or key-file entry.
    #[error("missing field `{field}`")]
    MissingField {
        /// The field name.
        field: &'static str,
    },
    /// A field has the wrong JSON type or cannot be decoded.
    #[error("invalid field `{field}`")]
    InvalidField {
        /// The field name.
        field: &'static str,
    },
    /// A key-file entry has a field this module does not know (likely a typo).
    #[error("unknown field `{field}`")]
    UnknownField {
        /// The field name.
        field: String,
    },
    /// A key-file entry has both or neither of `secret` and `pem`.
    #[error("a key-file entry needs exactly one of `secret` and `pem`")]
    SecretXorPem,
    /// A JWKS or key-file entry is not a JSON object.
    #[error("the entry is not a JSON object")]
    NotAnObject,
    /// An HMAC secret contains PEM text. PEM keys are public keys: give them
    /// as `JWT_SECRET` on their own, or in a key file's `pem` field.
    #[error(
        "an HMAC secret contains PEM text; PEM public keys are configured as keys, not secrets"
    )]
    PemInSecret,
    /// The document is not JSON of the expected shape.
    #[error("invalid key document: {0}")]
    Json(#[source] serde_json::Error),
    /// The document is JSON but has no `keys` array.
    #[error("the key document has no `keys` array")]
    NoKeysArray,
    /// An error in one entry of a JWKS or key file.
    #[error("key #{index}{}: {source}", kid.as_ref().map(|k| format!(" (kid {k:?})")).unwrap_or_default())]
    Entry {
        /// Zero-based position of the entry in the `keys` array.
        index: usize,
        /// The entry's `kid`, when it has a readable one.
        kid: Option<String>,
        /// What is wrong with the entry.
        #[source]
        source: Box<KeyLoadError>,
    },
    /// Two keys share a `kid`.
    #[error("duplicate kid {kid:?}")]
    DuplicateKid {
        /// The repeated key id.
        kid: String,
    },
    /// A key set with several keys contains a key without a `kid`, which no
    /// token could ever select unambiguously.
    #[error("key #{index} has no kid; every key needs one when several are configured")]
    MissingKid {
        /// Zero-based position of the key.
        index: usize,
    },
    /// The key set would be empty.
    #[error("no keys configured")]
    EmptyKeySet,
    /// No key with this `kid` exists (when removing a key).
    #[error("no key with kid {kid:?}")]
    NoSuchKid {
        /// The requested key id.
        kid: String,
    },
    /// A key file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A peer address has used up its failed-attempt budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed authentication attempts; retry in {retry_after:?}")]
pub struct RateLimited {
    /// Time until the current window ends and attempts are accepted again.
    pub retry_after: Duration,
}

impl From<RateLimited> for AuthError {
    fn from(_: RateLimited) -> Self {
        AuthError::RateLimited
    }
}
