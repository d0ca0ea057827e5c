//! Tests of the auth module: key loading, token verification, rate limiting.
//!
//! Time is fixed (`NOW`) and passed in, so nothing here depends on the clock.
//! The RSA keys below are test-only keys generated for this file; the EC and
//! Ed25519 keys are generated per run with rcgen.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::*;

// Test-only RSA 2048 key pair (never used anywhere else).
const RSA_PRIVATE_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEpAIBAAKCAQEAqXzNgETfVipHV/78RX/yplcCHE+tGLmtavu1EnCP1l/mQYP7\n\
GatFQNFbjVa08VwCuGKIoNtiFKNEG7DLDJbt70+ZWEdMH8urcYNX3hIv48q4SUIf\n\
uWZ64eYT4xG5ReUDWh+j+JFQaONIi76ZkMRBRq3ggQFbyFiLpDRbNKeKzDHIGatM\n\
CSy2oMsXrz6YbBm4V6jLslWHTn97eU/NnOptFTnL7IWTIkg34gmKwIEVvtRMFrgc\n\
EUrhsyR3QOEJT66QkmqEosnVqkDpj0UzMyZm3ASV0BIjqP4DekU/tv9FA9QbXDkd\n\
gNwZfnHk+szTDMU8aDkvrx6K3gzgQ7hmiHfhoQIDAQABAoIBACSXBXSGKeMbwIg+\n\
S68jZrrDePisuNVoLIi2q4o+E8d3r6mAOUL65zoNmKLET871ir7MwutbQWrsLmV9\n\
/vAKW3a5LAVTaxtIKIyaiust6PnYB34FUP0BI1FGjw+MAYAV52na/9bHZGEohD5r\n\
GRMYU3FTU272YJ65gvght3kAHKZlVKh2N9e8+z1VqK3zVWCrL3k11uk9W5EEicOZ\n\
BRWlS4rVA4Lyi1jc4AV4OXHSzp3kb4JnmsoHwe0vhr3TrHAxu89s43N/oixuofh9\n\
yQhPPOr0/htjl2zzvNlwVjY2bii8DKaQ/iDWye8IYwD+9rmf1nDARX5T04hoUGOi\n\
D13L0tsCgYEA4o6jzeoAJjb85mmGhYK4U/ezB9huO/I/Fz9z2CsqfcNz/cv30QZa\n\
npQZjpQvAzrrLRUO+uMLNnozIkGcwftYtjYq46G9gQzjFdAvDHQmrugMek8KzpJs\n\
iaUy/2xT9p7MnCohdW6E3dfR3d9Q11VRgZDSBKanthbgirR/LOmUKMsCgYEAv4OB\n\
Jll+WTQT6Ffk3j/nX8D21uS6TsOlh9v5dRfRFZgzpXibLbJK5HypA4JhEGmsdqWL\n\
CT/KL8dQhldwdXiS+UVNUbEnS9Q4qgwLOObIQcm4xyvGshbmaWi0Rz9yzThXx/Uv\n\
pTdDPAQXgmst0rk5YE66S6wnJg0U0ONAhFLPjcMCgYEAoNAs94Gs33NSql6nLOev\n\
3XJKMzxuasC2BdN1cDCbta9iCvmYC1feRQfM6EbI5BsTSenTu0Qj9mRhHWTDV3II\n\
8zWZ1gA9mnfCTP58FvPvbWGrUbn/asfGoSGRBHspUjo/9G13WHq9dxa1ki7snByk\n\
gTqByOlezEKK2gnq579Y+mcCgYEAm9zRyj1BiCXLIegOmxaVHqfz/HaQbjPqTwSn\n\
JDXq81E4jy311R3qt8QA5ZtBldL7CmC2JCPnUDU9gug83U3xB6/wOlEcMymXqEU/\n\
CONCDdC3clldT2k1won1Vpr7uqtlPZZ9XU/5hympXHoQBBS87nWERrvn7J7u1wZs\n\
ZoTi6HMCgYBFLzkf2QI0upcfZhbVpc8PxlT57s5kfjVHnhTfJUrkfUqbJIfzd/iD\n\
XJyd5+78IBeqy03J5XeiChi2Z0x7tgZ3jCNWKqkuNgUZ38dw0P7srJL6wMiFcsEZ\n\
Fvur7utPWFIbspPv2ULb0lkT2OQaNEEiv7Op8NXINd1EWSgvwYSmBw==\n\
-----END RSA PRIVATE KEY-----\n";
const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqXzNgETfVipHV/78RX/y\n\
plcCHE+tGLmtavu1EnCP1l/mQYP7GatFQNFbjVa08VwCuGKIoNtiFKNEG7DLDJbt\n\
70+ZWEdMH8urcYNX3hIv48q4SUIfuWZ64eYT4xG5ReUDWh+j+JFQaONIi76ZkMRB\n\
Rq3ggQFbyFiLpDRbNKeKzDHIGatMCSy2oMsXrz6YbBm4V6jLslWHTn97eU/NnOpt\n\
FTnL7IWTIkg34gmKwIEVvtRMFrgcEUrhsyR3QOEJT66QkmqEosnVqkDpj0UzMyZm\n\
3ASV0BIjqP4DekU/tv9FA9QbXDkdgNwZfnHk+szTDMU8aDkvrx6K3gzgQ7hmiHfh\n\
oQIDAQAB\n\
-----END PUBLIC KEY-----\n";
const RSA_PKCS1_PUBLIC_PEM: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEAqXzNgETfVipHV/78RX/yplcCHE+tGLmtavu1EnCP1l/mQYP7GatF\n\
QNFbjVa08VwCuGKIoNtiFKNEG7DLDJbt70+ZWEdMH8urcYNX3hIv48q4SUIfuWZ6\n\
4eYT4xG5ReUDWh+j+JFQaONIi76ZkMRBRq3ggQFbyFiLpDRbNKeKzDHIGatMCSy2\n\
oMsXrz6YbBm4V6jLslWHTn97eU/NnOptFTnL7IWTIkg34gmKwIEVvtRMFrgcEUrh\n\
syR3QOEJT66QkmqEosnVqkDpj0UzMyZm3ASV0BIjqP4DekU/tv9FA9QbXDkdgNwZ\n\
fnHk+szTDMU8aDkvrx6K3gzgQ7hmiHfhoQIDAQAB\n\
-----END RSA PUBLIC KEY-----\n";
const RSA_1024_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC4O5nw777D5poDfvPohQfjtgqJ\n\
q5v60e/Mf3fX9lpZmfqmChGUzLYUB4Q75TZzsN6bW3UMrvYxZZVLrD6lA8/XvErA\n\
f+Ho1ijIKlSDrIAYUOtAO5E+5IG68Xfus7lYYlE6Ha1iuy7/LMvs+2aVj8Ad2sM2\n\
XIUmqq6DGLgurmjiqwIDAQAB\n\
-----END PUBLIC KEY-----\n";
const SECP256K1_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEcPp1AHo7y0u8FQy/L7xuNAmf+RWh7oJz\n\
zaraiDqGINDdqWIUTavPR4F5lHNJLcN6ZV9RROo2qua2QiWff3uyjQ==\n\
-----END PUBLIC KEY-----\n";
const X25519_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VuAyEAU0LdIE0v0LYE+k3CZ9xUM+ssZPnc27vxAmH/uLwYBmU=\n\
-----END PUBLIC KEY-----\n";
const RSA_N: &str = "qXzNgETfVipHV_78RX_yplcCHE-tGLmtavu1EnCP1l_mQYP7GatFQNFbjVa08VwCuGKIoNtiFKNEG7DLDJbt70-ZWEdMH8urcYNX3hIv48q4SUIfuWZ64eYT4xG5ReUDWh-j-JFQaONIi76ZkMRBRq3ggQFbyFiLpDRbNKeKzDHIGatMCSy2oMsXrz6YbBm4V6jLslWHTn97eU_NnOptFTnL7IWTIkg34gmKwIEVvtRMFrgcEUrhsyR3QOEJT66QkmqEosnVqkDpj0UzMyZm3ASV0BIjqP4DekU_tv9FA9QbXDkdgNwZfnHk-szTDMU8aDkvrx6K3gzgQ7hmiHfhoQ";

/// The fixed "current time" of every verification in this file.
const NOW: u64 = 1_800_000_000;
/// Exactly 32 bytes: the shortest HS256 secret accepted.
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard valid claims for `sub`.
fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": NOW + 3600, "iat": NOW - 10 })
}

/// `claims("alice")` with `key` set to `value` (or removed when `value` is null).
fn claims_with(key: &str, value: Value) -> Value {
    let mut c = claims("alice");
    let obj = c.as_object_mut().unwrap();
    if value.is_null() {
        obj.remove(key);
    } else {
        obj.insert(key.to_owned(), value);
    }
    c
}

/// A token with exactly this header and payload JSON, signed with `key`
/// under `alg` (which need not match the header: that is the point of some
/// tests).
fn token(header: Value, payload: Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET.as_bytes())
}

/// An HS256 token signed with `SECRET`.
fn hs(payload: Value) -> String {
    token(
        json!({"alg": "HS256", "typ": "JWT"}),
        payload,
        &hs_key(),
        Algorithm::HS256,
    )
}

/// An HS256 token signed with `SECRET` and extra header members.
fn hs_hdr(header_extra: Value, payload: Value) -> String {
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    for (k, v) in header_extra.as_object().unwrap() {
        header[k] = v.clone();
    }
    token(header, payload, &hs_key(), Algorithm::HS256)
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap()
}

fn rs(kid: Option<&str>, payload: Value) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    token(header, payload, &rsa_key(), Algorithm::RS256)
}

/// A generated key pair: PKCS#8 private PEM, SPKI public PEM, raw public key.
struct Generated {
    private_pem: String,
    public_pem: String,
    raw: Vec<u8>,
}

fn generate(alg: &'static rcgen::SignatureAlgorithm) -> Generated {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    Generated {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
        raw: kp.public_key_raw().to_vec(),
    }
}

fn p256() -> Generated {
    generate(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn ed25519() -> Generated {
    generate(&rcgen::PKCS_ED25519)
}

fn es(kp: &Generated, kid: Option<&str>, payload: Value) -> String {
    let mut header = json!({"alg": "ES256"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let key = EncodingKey::from_ec_pem(kp.private_pem.as_bytes()).unwrap();
    token(header, payload, &key, Algorithm::ES256)
}

fn verifier(keys: KeySet) -> Verifier {
    Verifier::new(AuthConfig::builder(keys).build())
}

fn secret_verifier() -> Verifier {
    verifier(KeySet::from_jwt_secret(SECRET).unwrap())
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_N, "e": "AQAB"})
}

fn ec_jwk(kp: &Generated, kid: &str) -> Value {
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": b64(&kp.raw[1..33]), "y": b64(&kp.raw[33..65]),
    })
}

/// Recognises the expected key-loading error in a table of load cases.
type LoadErrorMatch = fn(&KeyLoadError) -> bool;

/// Expected outcome of one verification: the principal's `sub`, or an error.
type Expect = Result<&'static str, AuthError>;

/// The one verification helper: runs every case at `NOW` and names the
/// failing case.
#[track_caller]
fn check(verifier: &Verifier, cases: &[(&str, String, Expect)]) {
    for (name, token, expected) in cases {
        let got = verifier.verify(token, now());
        let got = got.as_ref().map(|p| p.sub.as_str()).map_err(|e| *e);
        assert_eq!(got, *expected, "case `{name}`");
    }
}

// ---------------------------------------------------------------------------
// HS256 via JWT_SECRET: claims, time, header rules.

#[test]
fn hs256_claims_and_time() {
    let v = secret_verifier();
    check(
        &v,
        &[
            ("valid", hs(claims("alice")), Ok("alice")),
            (
                "expired beyond leeway",
                hs(claims_with("exp", json!(NOW - 31))),
                Err(AuthError::Expired),
            ),
            (
                "expired exactly at exp + leeway",
                hs(claims_with("exp", json!(NOW - 30))),
                Err(AuthError::Expired),
            ),
            (
                "expired within leeway",
                hs(claims_with("exp", json!(NOW - 29))),
                Ok("alice"),
            ),
            (
                "nbf beyond leeway",
                hs(claims_with("nbf", json!(NOW + 31))),
                Err(AuthError::NotYetValid),
            ),
            (
                "nbf within leeway",
                hs(claims_with("nbf", json!(NOW + 30))),
                Ok("alice"),
            ),
            (
                "nbf in the past",
                hs(claims_with("nbf", json!(NOW - 100))),
                Ok("alice"),
            ),
            (
                "fractional exp",
                hs(claims_with("exp", json!(NOW as f64 + 100.5))),
                Ok("alice"),
            ),
            (
                "string exp",
                hs(claims_with("exp", json!((NOW + 3600).to_string()))),
                Err(AuthError::InvalidClaim("exp")),
            ),
            (
                "string nbf",
                hs(claims_with("nbf", json!(NOW.to_string()))),
                Err(AuthError::InvalidClaim("nbf")),
            ),
            (
                "string iat",
                hs(claims_with("iat", json!("yesterday"))),
                Err(AuthError::InvalidClaim("iat")),
            ),
            (
                "negative exp",
                hs(claims_with("exp", json!(-1))),
                Err(AuthError::InvalidClaim("exp")),
            ),
            (
                "null exp",
                hs(json!({"sub": "alice", "exp": null})),
                Err(AuthError::InvalidClaim("exp")),
            ),
            (
                "missing exp",
                hs(claims_with("exp", Value::Null)),
                Err(AuthError::MissingClaim("exp")),
            ),
            (
                "missing sub",
                hs(claims_with("sub", Value::Null)),
                Err(AuthError::MissingClaim("sub")),
            ),
            (
                "empty sub",
                hs(claims("")),
                Err(AuthError::InvalidClaim("sub")),
            ),
            (
                "numeric sub",
                hs(claims_with("sub", json!(42))),
                Err(AuthError::InvalidClaim("sub")),
            ),
            (
                "roles array",
                hs(claims_with("roles", json!(["USER", "admin"]))),
                Ok("alice"),
            ),
            (
                "roles empty array",
                hs(claims_with("roles", json!([]))),
                Ok("alice"),
            ),
            (
                "roles not an array",
                hs(claims_with("roles", json!("admin"))),
                Err(AuthError::InvalidClaim("roles")),
            ),
            (
                "roles with a number",
                hs(claims_with("roles", json!(["USER", 1]))),
                Err(AuthError::InvalidClaim("roles")),
            ),
            (
                "iss ignored when not configured",
                hs(claims_with("iss", json!("anyone"))),
                Ok("alice"),
            ),
            (
                "aud present but none configured",
                hs(claims_with("aud", json!("someone-else"))),
                Err(AuthError::InvalidAudience),
            ),
            (
                "aud empty array, none configured",
                hs(claims_with("aud", json!([]))),
                Ok("alice"),
            ),
        ],
    );
}

#[test]
fn hs256_signature_and_shape() {
    let v = secret_verifier();
    let good = hs(claims("alice"));
    let (input, _) = good.rsplit_once('.').unwrap();
    let other_key = EncodingKey::from_secret(b"another secret of at least 32 bytes!");
    let tampered = {
        let (header, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        format!("{header}.{}.{sig}", b64(claims("mallory").to_string()))
    };
    let big = hs(claims_with(
        "pad",
        json!("x".repeat(DEFAULT_MAX_TOKEN_BYTES)),
    ));
    check(
        &v,
        &[
            (
                "wrong secret",
                token(
                    json!({"alg": "HS256"}),
                    claims("alice"),
                    &other_key,
                    Algorithm::HS256,
                ),
                Err(AuthError::InvalidSignature),
            ),
            (
                "tampered payload",
                tampered,
                Err(AuthError::InvalidSignature),
            ),
            (
                "empty signature",
                format!("{input}."),
                Err(AuthError::InvalidSignature),
            ),
            (
                "signature not base64url",
                format!("{input}.!!!"),
                Err(AuthError::Malformed),
            ),
            ("empty token", String::new(), Err(AuthError::Malformed)),
            ("two segments", input.to_owned(), Err(AuthError::Malformed)),
            (
                "four segments",
                format!("{good}.x"),
                Err(AuthError::Malformed),
            ),
            (
                "header not base64url",
                format!("*{good}"),
                Err(AuthError::Malformed),
            ),
            (
                "header not JSON",
                format!("{}.{}.", b64("alg"), b64("{}")),
                Err(AuthError::Malformed),
            ),
            (
                "header without alg",
                hs_hdr(json!({"alg": null}), claims("alice")).replacen(
                    &b64(r#"{"alg":null,"typ":"JWT"}"#),
                    &b64(r#"{"typ":"JWT"}"#),
                    1,
                ),
                Err(AuthError::Malformed),
            ),
            (
                "payload not an object",
                token(
                    json!({"alg": "HS256"}),
                    json!(["sub", "alice"]),
                    &hs_key(),
                    Algorithm::HS256,
                ),
                Err(AuthError::Malformed),
            ),
            ("too large", big, Err(AuthError::Malformed)),
        ],
    );
}

#[test]
fn alg_none_and_header_rules() {
    let v = secret_verifier();
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(json!({"alg": alg}).to_string()),
            b64(claims("alice").to_string())
        )
    };
    check(
        &v,
        &[
            (
                "alg none",
                unsigned("none"),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "alg None",
                unsigned("None"),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "alg NONE",
                unsigned("NONE"),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "alg none with an HMAC signature",
                token(
                    json!({"alg": "none"}),
                    claims("alice"),
                    &hs_key(),
                    Algorithm::HS256,
                ),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "unknown alg",
                unsigned("HS1"),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "alg not a string",
                format!(
                    "{}.{}.",
                    b64(r#"{"alg":256}"#),
                    b64(claims("alice").to_string())
                ),
                Err(AuthError::Malformed),
            ),
            (
                "HS384 header on an HS256 key",
                token(
                    json!({"alg": "HS384"}),
                    claims("alice"),
                    &hs_key(),
                    Algorithm::HS384,
                ),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "RS256 header on an HS256 key",
                rs(None, claims("alice")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "crit with an unknown extension",
                hs_hdr(json!({"crit": ["exp"], "exp": 1}), claims("alice")),
                Err(AuthError::UnsupportedCriticalHeader),
            ),
            (
                "crit b64 (RFC 7797, unsupported)",
                hs_hdr(json!({"crit": ["b64"], "b64": false}), claims("alice")),
                Err(AuthError::UnsupportedCriticalHeader),
            ),
            (
                "crit empty array",
                hs_hdr(json!({"crit": []}), claims("alice")),
                Err(AuthError::Malformed),
            ),
            (
                "crit not an array",
                hs_hdr(json!({"crit": "exp"}), claims("alice")),
                Err(AuthError::Malformed),
            ),
            (
                "kid not a string",
                hs_hdr(json!({"kid": 7}), claims("alice")),
                Err(AuthError::Malformed),
            ),
            (
                "any kid matches the single kid-less key",
                hs_hdr(json!({"kid": "whatever"}), claims("alice")),
                Ok("alice"),
            ),
            (
                "non-string custom header member",
                hs_hdr(json!({"x-custom": {"n": 1}}), claims("alice")),
                Ok("alice"),
            ),
            (
                "embedded jwk header is ignored",
                hs_hdr(
                    json!({"jwk": {"kty": "oct", "k": b64("attacker")}}),
                    claims("alice"),
                ),
                Ok("alice"),
            ),
        ],
    );
}

#[test]
fn principal_carries_claims() {
    let v = secret_verifier();
    let payload = json!({
        "sub": "user_123", "roles": ["USER", "editor"], "exp": NOW + 60, "iat": NOW - 5,
        "tenant": "acme", "org": {"id": 7},
    });
    let p = v.verify(&hs(payload.clone()), now()).unwrap();
    assert_eq!(p.sub, "user_123");
    assert_eq!(p.roles, ["USER", "editor"]);
    assert_eq!(p.exp, NOW + 60);
    assert_eq!(p.iat, Some(NOW - 5));
    assert_eq!(p.key_id, None);
    assert_eq!(Value::Object(p.claims), payload);

    let p = v
        .verify(&hs(json!({"sub": "bob", "exp": NOW + 60})), now())
        .unwrap();
    assert!(p.roles.is_empty());
    assert_eq!(p.iat, None);
}

#[test]
fn leeway_is_configurable() {
    let keys = KeySet::from_jwt_secret(SECRET).unwrap();
    let strict = Verifier::new(AuthConfig::builder(keys).leeway(Duration::ZERO).build());
    check(
        &strict,
        &[
            (
                "exp one second ago",
                hs(claims_with("exp", json!(NOW - 1))),
                Err(AuthError::Expired),
            ),
            (
                "exp now",
                hs(claims_with("exp", json!(NOW))),
                Err(AuthError::Expired),
            ),
            (
                "exp in one second",
                hs(claims_with("exp", json!(NOW + 1))),
                Ok("alice"),
            ),
            ("nbf now", hs(claims_with("nbf", json!(NOW))), Ok("alice")),
            (
                "nbf in one second",
                hs(claims_with("nbf", json!(NOW + 1))),
                Err(AuthError::NotYetValid),
            ),
        ],
    );
    assert_eq!(
        AuthConfig::from_jwt_secret(SECRET)
            .unwrap()
            .build()
            .leeway(),
        Duration::from_secs(30)
    );
}

#[test]
fn issuer_and_audience_when_configured() {
    let v = Verifier::new(
        AuthConfig::from_jwt_secret(SECRET)
            .unwrap()
            .issuer("https://issuer.example")
            .audience("topgun")
            .audience("topgun-staging")
            .build(),
    );
    let with = |iss: Value, aud: Value| {
        let mut c = claims("alice");
        if !iss.is_null() {
            c["iss"] = iss;
        }
        if !aud.is_null() {
            c["aud"] = aud;
        }
        hs(c)
    };
    let iss = json!("https://issuer.example");
    check(
        &v,
        &[
            (
                "both match",
                with(iss.clone(), json!("topgun")),
                Ok("alice"),
            ),
            (
                "second audience",
                with(iss.clone(), json!("topgun-staging")),
                Ok("alice"),
            ),
            (
                "aud array containing ours",
                with(iss.clone(), json!(["other", "topgun"])),
                Ok("alice"),
            ),
            (
                "wrong issuer",
                with(json!("https://evil.example"), json!("topgun")),
                Err(AuthError::InvalidIssuer),
            ),
            (
                "missing issuer",
                with(Value::Null, json!("topgun")),
                Err(AuthError::MissingClaim("iss")),
            ),
            (
                "issuer not a string",
                with(json!(["https://issuer.example"]), json!("topgun")),
                Err(AuthError::InvalidClaim("iss")),
            ),
            (
                "wrong audience",
                with(iss.clone(), json!("other-app")),
                Err(AuthError::InvalidAudience),
            ),
            (
                "aud array without ours",
                with(iss.clone(), json!(["a", "b"])),
                Err(AuthError::InvalidAudience),
            ),
            (
                "missing audience",
                with(iss.clone(), Value::Null),
                Err(AuthError::MissingClaim("aud")),
            ),
            (
                "audience not a string",
                with(iss.clone(), json!(5)),
                Err(AuthError::InvalidClaim("aud")),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Public keys: RS256, ES256, EdDSA, algorithm confusion.

#[test]
fn rs256_from_pem_and_algorithm_confusion() {
    let keys = KeySet::from_jwt_secret(RSA_PUBLIC_PEM).unwrap();
    assert_eq!(keys.iter().next().unwrap().algorithm(), JwsAlgorithm::Rs256);
    let v = verifier(keys);
    // The attack: HMAC the token with the public key text the server holds.
    let pem_as_hmac = EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes());
    let ps256 = token(
        json!({"alg": "PS256"}),
        claims("alice"),
        &rsa_key(),
        Algorithm::PS256,
    );
    check(
        &v,
        &[
            ("valid RS256", rs(None, claims("alice")), Ok("alice")),
            (
                "RS256 with a kid (as Clerk sends)",
                rs(Some("ins_2abc"), claims("alice")),
                Ok("alice"),
            ),
            (
                "HS256 signed with the public PEM",
                token(
                    json!({"alg": "HS256"}),
                    claims("mallory"),
                    &pem_as_hmac,
                    Algorithm::HS256,
                ),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "RS256 header, HMAC-with-PEM signature",
                token(
                    json!({"alg": "RS256"}),
                    claims("mallory"),
                    &pem_as_hmac,
                    Algorithm::HS256,
                ),
                Err(AuthError::InvalidSignature),
            ),
            (
                "PS256 with the same RSA key",
                ps256,
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "expired RS256",
                rs(None, claims_with("exp", json!(NOW - 100))),
                Err(AuthError::Expired),
            ),
        ],
    );
}

#[test]
fn escaped_newline_pem_from_env() {
    // As Docker/Dokploy env vars carry it: one line with literal `\n`.
    let env_value = RSA_PUBLIC_PEM.trim_end().replace('\n', "\\n");
    assert!(!env_value.contains('\n'));
    let keys = KeySet::from_jwt_secret(&env_value).unwrap();
    assert_eq!(keys.iter().next().unwrap().algorithm(), JwsAlgorithm::Rs256);
    check(
        &verifier(keys),
        &[("valid RS256", rs(None, claims("alice")), Ok("alice"))],
    );

    // `\r\n` escapes and surrounding quotes from env files work too.
    let crlf = format!("\"{}\"", RSA_PUBLIC_PEM.trim_end().replace('\n', "\\r\\n"));
    assert!(KeySet::from_jwt_secret(&crlf).is_ok());
    // A PKCS#1 `RSA PUBLIC KEY` block is RS256 as well.
    let pkcs1 = KeySet::from_jwt_secret(RSA_PKCS1_PUBLIC_PEM).unwrap();
    assert_eq!(
        pkcs1.iter().next().unwrap().algorithm(),
        JwsAlgorithm::Rs256
    );
    check(
        &verifier(pkcs1),
        &[("PKCS#1 key", rs(None, claims("alice")), Ok("alice"))],
    );
}

#[test]
fn es256_and_eddsa_from_pem() {
    let ec = p256();
    let keys = KeySet::from_jwt_secret(&ec.public_pem).unwrap();
    assert_eq!(keys.iter().next().unwrap().algorithm(), JwsAlgorithm::Es256);
    let other = p256();
    check(
        &verifier(keys),
        &[
            ("valid ES256", es(&ec, None, claims("alice")), Ok("alice")),
            (
                "ES256 by another key",
                es(&other, None, claims("alice")),
                Err(AuthError::InvalidSignature),
            ),
            (
                "HS256 with the public PEM",
                token(
                    json!({"alg": "HS256"}),
                    claims("m"),
                    &EncodingKey::from_secret(ec.public_pem.as_bytes()),
                    Algorithm::HS256,
                ),
                Err(AuthError::AlgorithmNotAllowed),
            ),
        ],
    );

    let ed = ed25519();
    let keys = KeySet::from_jwt_secret(&ed.public_pem).unwrap();
    assert_eq!(keys.iter().next().unwrap().algorithm(), JwsAlgorithm::EdDsa);
    let ed_key = EncodingKey::from_ed_pem(ed.private_pem.as_bytes()).unwrap();
    let other = ed25519();
    let other_key = EncodingKey::from_ed_pem(other.private_pem.as_bytes()).unwrap();
    check(
        &verifier(keys),
        &[
            (
                "valid EdDSA",
                token(
                    json!({"alg": "EdDSA"}),
                    claims("alice"),
                    &ed_key,
                    Algorithm::EdDSA,
                ),
                Ok("alice"),
            ),
            (
                "EdDSA by another key",
                token(
                    json!({"alg": "EdDSA"}),
                    claims("alice"),
                    &other_key,
                    Algorithm::EdDSA,
                ),
                Err(AuthError::InvalidSignature),
            ),
            (
                "ES256 header on an EdDSA key",
                es(&p256(), None, claims("alice")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// JWT_SECRET loading: fail closed.

#[test]
fn secret_length() {
    let short = &SECRET[..31];
    assert!(matches!(
        KeySet::from_jwt_secret(short),
        Err(KeyLoadError::TooShortSecret { len: 31, min: 32 })
    ));
    let msg = KeySet::from_jwt_secret(short).unwrap_err().to_string();
    assert!(msg.contains("at least 32 bytes"), "{msg}");
    assert!(
        !msg.contains(short),
        "the error must not echo the secret: {msg}"
    );
    assert!(matches!(
        KeySet::from_jwt_secret(""),
        Err(KeyLoadError::TooShortSecret { len: 0, min: 32 })
    ));

    let keys = KeySet::from_jwt_secret(SECRET).unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys.iter().next().unwrap();
    assert_eq!(key.algorithm(), JwsAlgorithm::Hs256);
    assert_eq!(key.kid(), None);
    // HMAC secrets are used byte for byte: a literal `\n` stays two bytes.
    let with_escape = format!("{SECRET}\\n");
    let v = verifier(KeySet::from_jwt_secret(&with_escape).unwrap());
    let t = token(
        json!({"alg": "HS256"}),
        claims("alice"),
        &EncodingKey::from_secret(with_escape.as_bytes()),
        Algorithm::HS256,
    );
    check(&v, &[("secret with a literal backslash-n", t, Ok("alice"))]);
}

#[test]
fn pem_refused_at_load() {
    let body: String = RSA_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let armor = |label: &str, body: &str| {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    };
    let ec_private = p256().private_pem;
    let cases: Vec<(&str, String, LoadErrorMatch)> = vec![
        (
            "body not base64",
            armor("PUBLIC KEY", "this is not base64!!"),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::Base64)),
        ),
        (
            "body not DER",
            armor("PUBLIC KEY", &STANDARD.encode("hello, world")),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::Der)),
        ),
        (
            "truncated DER",
            armor("PUBLIC KEY", &body[..body.len() - 8]),
            |e| matches!(e, KeyLoadError::InvalidPem(_)),
        ),
        (
            "no END line",
            format!("-----BEGIN PUBLIC KEY-----\n{body}\n"),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::MissingEnd)),
        ),
        (
            "mismatched END",
            format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----\n"),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::MissingEnd)),
        ),
        ("BEGIN only", "-----BEGIN".to_owned(), |e| {
            matches!(e, KeyLoadError::InvalidPem(PemProblem::MissingBegin))
        }),
        (
            "garbage with BEGIN",
            "my-secret-----BEGIN-xxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
            |e| matches!(e, KeyLoadError::InvalidPem(_)),
        ),
        (
            "two blocks",
            format!("{RSA_PUBLIC_PEM}{RSA_PUBLIC_PEM}"),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::MultipleBlocks)),
        ),
        (
            "text around the block",
            format!("key: {RSA_PUBLIC_PEM}"),
            |e| matches!(e, KeyLoadError::InvalidPem(PemProblem::TextOutsideBlock)),
        ),
        (
            "legacy encrypted private key",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_owned(),
            |e| matches!(e, KeyLoadError::PrivateKeyGiven),
        ),
        ("RSA private key", RSA_PRIVATE_PEM.to_owned(), |e| {
            matches!(e, KeyLoadError::PrivateKeyGiven)
        }),
        ("PKCS#8 EC private key", ec_private, |e| {
            matches!(e, KeyLoadError::PrivateKeyGiven)
        }),
        (
            "certificate",
            armor("CERTIFICATE", &body),
            |e| matches!(e, KeyLoadError::UnsupportedPemLabel { label } if label == "CERTIFICATE"),
        ),
        ("1024-bit RSA", RSA_1024_PUBLIC_PEM.to_owned(), |e| {
            matches!(
                e,
                KeyLoadError::WeakRsaKey {
                    bits: 1024,
                    min: 2048
                }
            )
        }),
        (
            "secp256k1",
            SECP256K1_PUBLIC_PEM.to_owned(),
            |e| matches!(e, KeyLoadError::UnsupportedKeyType { found } if found.contains("1.3.132.0.10")),
        ),
        (
            "X25519",
            X25519_PUBLIC_PEM.to_owned(),
            |e| matches!(e, KeyLoadError::UnsupportedKeyType { found } if found.contains("1.3.101.110")),
        ),
    ];
    for (name, text, expected) in cases {
        match KeySet::from_jwt_secret(&text) {
            Err(e) => assert!(expected(&e), "case `{name}`: unexpected error {e:?}"),
            Ok(keys) => panic!("case `{name}`: loaded {keys:?}"),
        }
        // Never an HMAC fallback: the same text as a key-file secret is refused too.
        assert!(
            KeySet::from_key_file_json(
                &json!({"keys": [{"kid": "k", "secret": text}]}).to_string()
            )
            .is_err(),
            "case `{name}` as a key-file secret"
        );
    }
}

#[test]
fn public_key_text_is_not_an_hmac_secret() {
    let body: String = RSA_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pkcs1_body: String = RSA_PKCS1_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let cases = [
        ("bare base64 SPKI", body.clone(), "base64 DER"),
        ("bare base64 SPKI with newlines", body.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\n"), "base64 DER"),
        ("bare base64 PKCS#1", pkcs1_body, "base64 DER"),
        ("JWK", rsa_jwk("k").to_string(), "JWK/JWKS"),
        ("JWKS", json!({"keys": [rsa_jwk("k")]}).to_string(), "JWK/JWKS"),
        ("OpenSSH", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8fHx8fHx8fHx8fHx8fHx8fHx8fHx8fHx8fHx8fHx8 me@host".to_owned(), "OpenSSH"),
    ];
    for (name, text, format) in cases {
        match KeySet::from_jwt_secret(&text) {
            Err(KeyLoadError::PublicKeyAsSecret { format: f }) => {
                assert_eq!(f, format, "case `{name}`")
            }
            other => panic!("case `{name}`: {other:?}"),
        }
    }
    // A random base64 secret is fine.
    assert!(KeySet::from_jwt_secret(&STANDARD.encode([7u8; 48])).is_ok());

    // The same guard holds for every way of making an HMAC key.
    let hmac = |secret: &[u8]| VerificationKey::hmac(None, JwsAlgorithm::Hs256, secret);
    assert!(matches!(
        hmac(RSA_PUBLIC_PEM.as_bytes()),
        Err(KeyLoadError::PemInSecret)
    ));
    let der = STANDARD.decode(&body).unwrap();
    assert!(matches!(
        hmac(&der),
        Err(KeyLoadError::PublicKeyAsSecret { format: "DER" })
    ));
    let oct_pem = json!({"keys": [{"kty": "oct", "kid": "o", "k": b64(RSA_PUBLIC_PEM)}]});
    assert!(matches!(
        KeySet::from_jwks_json(&oct_pem.to_string()),
        Err(KeyLoadError::Entry { source, .. }) if matches!(*source, KeyLoadError::PemInSecret)
    ));
    let oct_der = json!({"keys": [{"kty": "oct", "kid": "o", "k": b64(&der)}]});
    assert!(KeySet::from_jwks_json(&oct_der.to_string()).is_err());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let keys = KeySet::from_jwt_secret(SECRET).unwrap();
    let shown = format!("{keys:?} {:?}", verifier(keys.clone()));
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("0123456789"), "{shown}");
}

// ---------------------------------------------------------------------------
// JWKS and key files.

#[test]
fn jwks_selects_by_kid() {
    let ec = p256();
    let jwks = json!({"keys": [rsa_jwk("rsa-1"), ec_jwk(&ec, "ec-1")]}).to_string();
    let keys = KeySet::from_jwks_json(&jwks).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.get("rsa-1").unwrap().algorithm(), JwsAlgorithm::Rs256);
    assert_eq!(keys.get("ec-1").unwrap().algorithm(), JwsAlgorithm::Es256);
    let v = verifier(keys);
    check(
        &v,
        &[
            (
                "RS256 by kid",
                rs(Some("rsa-1"), claims("alice")),
                Ok("alice"),
            ),
            (
                "ES256 by kid",
                es(&ec, Some("ec-1"), claims("bob")),
                Ok("bob"),
            ),
            (
                "ES256 token naming the RSA kid",
                es(&ec, Some("rsa-1"), claims("bob")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "RS256 token naming the EC kid",
                rs(Some("ec-1"), claims("alice")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
            (
                "unknown kid",
                rs(Some("rsa-2"), claims("alice")),
                Err(AuthError::UnknownKeyId),
            ),
            (
                "no kid with two keys",
                rs(None, claims("alice")),
                Err(AuthError::AmbiguousKey),
            ),
            (
                "ES256 by another key",
                es(&p256(), Some("ec-1"), claims("bob")),
                Err(AuthError::InvalidSignature),
            ),
        ],
    );
    let p = v
        .verify(&rs(Some("rsa-1"), claims("alice")), now())
        .unwrap();
    assert_eq!(p.key_id.as_deref(), Some("rsa-1"));
}

#[test]
fn jwk_alg_pins_the_key() {
    let mut jwk = rsa_jwk("ps");
    jwk["alg"] = json!("PS256");
    let v = verifier(KeySet::from_jwks_json(&json!({"keys": [jwk]}).to_string()).unwrap());
    let ps = token(
        json!({"alg": "PS256", "kid": "ps"}),
        claims("alice"),
        &rsa_key(),
        Algorithm::PS256,
    );
    check(
        &v,
        &[
            ("PS256 as pinned", ps, Ok("alice")),
            (
                "RS256 on a PS256-pinned key",
                rs(Some("ps"), claims("alice")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
        ],
    );

    // oct keys verify HS256, and a one-key JWKS needs no kid in the token.
    let oct = json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(SECRET)}]});
    let v = verifier(KeySet::from_jwks_json(&oct.to_string()).unwrap());
    check(
        &v,
        &[
            ("oct HS256", hs(claims("alice")), Ok("alice")),
            (
                "oct HS256 with kid",
                hs_hdr(json!({"kid": "h"}), claims("alice")),
                Ok("alice"),
            ),
        ],
    );

    // Ed25519 as OKP.
    let ed = ed25519();
    let okp = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&ed.raw)}]});
    let v = verifier(KeySet::from_jwks_json(&okp.to_string()).unwrap());
    let ed_key = EncodingKey::from_ed_pem(ed.private_pem.as_bytes()).unwrap();
    check(
        &v,
        &[(
            "OKP EdDSA",
            token(
                json!({"alg": "EdDSA", "kid": "ed"}),
                claims("alice"),
                &ed_key,
                Algorithm::EdDSA,
            ),
            Ok("alice"),
        )],
    );
}

#[test]
fn jwks_refused_at_load() {
    let ec = p256();
    let with = |base: Value, key: &str, value: Value| {
        let mut jwk = base;
        jwk[key] = value;
        jwk
    };
    let cases: Vec<(&str, Value, LoadErrorMatch)> = vec![
        (
            "RSA key with alg ES256",
            with(rsa_jwk("a"), "alg", json!("ES256")),
            |e| {
                matches!(
                    e,
                    KeyLoadError::AlgorithmMismatch {
                        alg: JwsAlgorithm::Es256,
                        key_type: "RSA"
                    }
                )
            },
        ),
        (
            "P-256 key with alg ES384",
            with(ec_jwk(&ec, "a"), "alg", json!("ES384")),
            |e| {
                matches!(
                    e,
                    KeyLoadError::AlgorithmMismatch {
                        alg: JwsAlgorithm::Es384,
                        ..
                    }
                )
            },
        ),
        (
            "P-256 key with alg HS256",
            with(ec_jwk(&ec, "a"), "alg", json!("HS256")),
            |e| matches!(e, KeyLoadError::AlgorithmMismatch { .. }),
        ),
        (
            "oct key with alg RS256",
            json!({"kty": "oct", "kid": "a", "alg": "RS256", "k": b64(SECRET)}),
            |e| {
                matches!(
                    e,
                    KeyLoadError::AlgorithmMismatch {
                        alg: JwsAlgorithm::Rs256,
                        ..
                    }
                )
            },
        ),
        (
            "OKP key with alg ES256",
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "a", "alg": "ES256", "x": b64([9u8; 32])}),
            |e| matches!(e, KeyLoadError::AlgorithmMismatch { .. }),
        ),
        (
            "alg none",
            with(rsa_jwk("a"), "alg", json!("none")),
            |e| matches!(e, KeyLoadError::UnknownAlgorithm { alg } if alg == "none"),
        ),
        ("use enc", with(rsa_jwk("a"), "use", json!("enc")), |e| {
            matches!(e, KeyLoadError::NotASigningKey)
        }),
        (
            "key_ops without verify",
            with(rsa_jwk("a"), "key_ops", json!(["encrypt"])),
            |e| matches!(e, KeyLoadError::NotASigningKey),
        ),
        (
            "private RSA member",
            with(rsa_jwk("a"), "d", json!("AQAB")),
            |e| matches!(e, KeyLoadError::PrivateKeyGiven),
        ),
        (
            "private EC member",
            with(ec_jwk(&ec, "a"), "d", json!("AQAB")),
            |e| matches!(e, KeyLoadError::PrivateKeyGiven),
        ),
        (
            "no kty",
            json!({"kid": "a", "n": RSA_N, "e": "AQAB"}),
            |e| matches!(e, KeyLoadError::MissingField { field: "kty" }),
        ),
        ("unknown kty", json!({"kty": "XYZ", "kid": "a"}), |e| {
            matches!(e, KeyLoadError::UnsupportedKeyType { .. })
        }),
        (
            "X25519",
            json!({"kty": "OKP", "crv": "X25519", "kid": "a", "x": b64([9u8; 32])}),
            |e| matches!(e, KeyLoadError::UnsupportedKeyType { .. }),
        ),
        (
            "P-521",
            json!({"kty": "EC", "crv": "P-521", "kid": "a", "x": "AA", "y": "AA"}),
            |e| matches!(e, KeyLoadError::UnsupportedKeyType { .. }),
        ),
        (
            "RSA without n",
            json!({"kty": "RSA", "kid": "a", "e": "AQAB"}),
            |e| matches!(e, KeyLoadError::MissingField { field: "n" }),
        ),
        (
            "RSA n not base64url",
            with(rsa_jwk("a"), "n", json!("*not base64*")),
            |e| matches!(e, KeyLoadError::InvalidField { field: "n" }),
        ),
        (
            "RSA 1024-bit",
            with(rsa_jwk("a"), "n", json!(b64([0xffu8; 128]))),
            |e| matches!(e, KeyLoadError::WeakRsaKey { bits: 1024, .. }),
        ),
        (
            "EC coordinate too short",
            with(ec_jwk(&ec, "a"), "x", json!(b64([1u8; 31]))),
            |e| matches!(e, KeyLoadError::InvalidKey { .. }),
        ),
        (
            "EC point not on the curve",
            with(
                with(ec_jwk(&ec, "a"), "x", json!(b64([1u8; 32]))),
                "y",
                json!(b64([1u8; 32])),
            ),
            |e| matches!(e, KeyLoadError::InvalidKey { .. }),
        ),
        (
            "Ed25519 key of 31 bytes",
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": b64([9u8; 31])}),
            |e| matches!(e, KeyLoadError::InvalidKey { .. }),
        ),
        (
            "oct key of 31 bytes",
            json!({"kty": "oct", "kid": "a", "k": b64(&SECRET[..31])}),
            |e| matches!(e, KeyLoadError::TooShortSecret { len: 31, min: 32 }),
        ),
        (
            "oct HS512 key of 32 bytes",
            json!({"kty": "oct", "kid": "a", "alg": "HS512", "k": b64(SECRET)}),
            |e| matches!(e, KeyLoadError::TooShortSecret { len: 32, min: 64 }),
        ),
        (
            "kid not a string",
            with(rsa_jwk("a"), "kid", json!(1)),
            |e| matches!(e, KeyLoadError::InvalidField { field: "kid" }),
        ),
        ("entry not an object", json!("RSA"), |e| {
            matches!(e, KeyLoadError::NotAnObject)
        }),
    ];
    for (name, bad, expected) in cases {
        // The bad key is second, after a good one: the error names its index.
        let doc = json!({"keys": [rsa_jwk("good"), bad]}).to_string();
        match KeySet::from_jwks_json(&doc) {
            Err(KeyLoadError::Entry { index, source, .. }) => {
                assert_eq!(index, 1, "case `{name}`");
                assert!(
                    expected(&source),
                    "case `{name}`: unexpected error {source:?}"
                );
            }
            other => panic!("case `{name}`: {other:?}"),
        }
    }

    let err = KeySet::from_jwks_json(
        &json!({"keys": [rsa_jwk("a"), with(rsa_jwk("b"), "alg", json!("ES256"))]}).to_string(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key #1 (kid \"b\"): algorithm ES256 does not fit a RSA key"
    );

    assert!(matches!(
        KeySet::from_jwks_json("not json"),
        Err(KeyLoadError::Json(_))
    ));
    assert!(matches!(
        KeySet::from_jwks_json("[]"),
        Err(KeyLoadError::NoKeysArray)
    ));
    assert!(matches!(
        KeySet::from_jwks_json(r#"{"keys": {}}"#),
        Err(KeyLoadError::NoKeysArray)
    ));
    assert!(matches!(
        KeySet::from_jwks_json(r#"{"keys": []}"#),
        Err(KeyLoadError::EmptyKeySet)
    ));
    let dup = json!({"keys": [rsa_jwk("a"), ec_jwk(&ec, "a")]}).to_string();
    assert!(
        matches!(KeySet::from_jwks_json(&dup), Err(KeyLoadError::DuplicateKid { kid }) if kid == "a")
    );
    let mut no_kid = ec_jwk(&ec, "x");
    no_kid.as_object_mut().unwrap().remove("kid");
    let missing = json!({"keys": [rsa_jwk("a"), no_kid.clone()]}).to_string();
    assert!(matches!(
        KeySet::from_jwks_json(&missing),
        Err(KeyLoadError::MissingKid { index: 1 })
    ));
    // A single kid-less JWK is fine.
    assert!(KeySet::from_jwks_json(&json!({"keys": [no_kid]}).to_string()).is_ok());
}

#[test]
fn key_file() {
    let doc = json!({"keys": [
        {"kid": "hmac-2026", "secret": SECRET},
        {"kid": "idp", "pem": RSA_PUBLIC_PEM.replace('\n', "\\n")},
    ]});
    let keys = KeySet::from_key_file_json(&doc.to_string()).unwrap();
    assert_eq!(
        keys.get("hmac-2026").unwrap().algorithm(),
        JwsAlgorithm::Hs256
    );
    assert_eq!(keys.get("idp").unwrap().algorithm(), JwsAlgorithm::Rs256);
    check(
        &verifier(keys),
        &[
            (
                "HS256 by kid",
                hs_hdr(json!({"kid": "hmac-2026"}), claims("alice")),
                Ok("alice"),
            ),
            ("RS256 by kid", rs(Some("idp"), claims("bob")), Ok("bob")),
            (
                "HS256 naming the RSA kid",
                hs_hdr(json!({"kid": "idp"}), claims("alice")),
                Err(AuthError::AlgorithmNotAllowed),
            ),
        ],
    );

    let entry_err =
        |entry: Value| match KeySet::from_key_file_json(&json!({"keys": [entry]}).to_string()) {
            Err(KeyLoadError::Entry {
                index: 0, source, ..
            }) => *source,
            other => panic!("{other:?}"),
        };
    assert!(matches!(
        entry_err(json!({"kid": "a", "secret": RSA_PUBLIC_PEM})),
        KeyLoadError::PemInSecret
    ));
    assert!(
        matches!(entry_err(json!({"kid": "a", "secert": SECRET})), KeyLoadError::UnknownField { field } if field == "secert")
    );
    assert!(matches!(
        entry_err(json!({"kid": "a", "secret": SECRET, "pem": RSA_PUBLIC_PEM})),
        KeyLoadError::SecretXorPem
    ));
    assert!(matches!(
        entry_err(json!({"kid": "a"})),
        KeyLoadError::SecretXorPem
    ));
    assert!(matches!(
        entry_err(json!({"secret": SECRET})),
        KeyLoadError::MissingField { field: "kid" }
    ));
    assert!(matches!(
        entry_err(json!({"kid": "a", "pem": RSA_PUBLIC_PEM, "alg": "ES256"})),
        KeyLoadError::AlgorithmMismatch {
            alg: JwsAlgorithm::Es256,
            key_type: "RSA"
        }
    ));
    assert!(matches!(
        entry_err(json!({"kid": "a", "pem": p256().public_pem, "alg": "ES384"})),
        KeyLoadError::AlgorithmMismatch { .. }
    ));
    assert!(matches!(
        entry_err(json!({"kid": "a", "secret": SECRET, "alg": "RS256"})),
        KeyLoadError::AlgorithmMismatch { .. }
    ));
    let ps = KeySet::from_key_file_json(
        &json!({"keys": [{"kid": "a", "pem": RSA_PUBLIC_PEM, "alg": "PS256"}]}).to_string(),
    )
    .unwrap();
    assert_eq!(ps.get("a").unwrap().algorithm(), JwsAlgorithm::Ps256);
}

#[test]
fn key_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [rsa_jwk("r")]}).to_string()).unwrap();
    assert_eq!(KeySet::from_jwks_file(&jwks).unwrap().len(), 1);
    let key_file = dir.path().join("keys.json");
    std::fs::write(
        &key_file,
        json!({"keys": [{"kid": "h", "secret": SECRET}]}).to_string(),
    )
    .unwrap();
    assert_eq!(KeySet::from_key_file(&key_file).unwrap().len(), 1);
    let missing = dir.path().join("missing.json");
    assert!(
        matches!(KeySet::from_jwks_file(&missing), Err(KeyLoadError::Io { path, .. }) if path == missing)
    );
}

#[test]
fn key_rotation_at_run_time() {
    let key = |kid: &str, secret: &str| {
        VerificationKey::hmac(Some(kid.to_owned()), JwsAlgorithm::Hs256, secret.as_bytes()).unwrap()
    };
    let old_secret = SECRET;
    let new_secret = "fedcba9876543210fedcba9876543210";
    let signed = |kid: &str, secret: &str| {
        token(
            json!({"alg": "HS256", "kid": kid}),
            claims("alice"),
            &EncodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        )
    };

    let v = verifier(KeySet::new([key("old", old_secret)]).unwrap());
    check(
        &v,
        &[
            ("old key", signed("old", old_secret), Ok("alice")),
            (
                "new key not yet known",
                signed("new", new_secret),
                Err(AuthError::UnknownKeyId),
            ),
        ],
    );

    // Add the new key: tokens from either verify.
    let both = v.key_set().with_key(key("new", new_secret)).unwrap();
    let previous = v.replace_keys(both);
    assert_eq!(previous.len(), 1);
    check(
        &v,
        &[
            ("old key", signed("old", old_secret), Ok("alice")),
            ("new key", signed("new", new_secret), Ok("alice")),
            (
                "no kid, two keys",
                signed("", new_secret).replacen(
                    &b64(r#"{"alg":"HS256","kid":""}"#),
                    &b64(r#"{"alg":"HS256"}"#),
                    1,
                ),
                Err(AuthError::AmbiguousKey),
            ),
        ],
    );

    // Retire the old key.
    let new_only = v.key_set().without_kid("old").unwrap();
    v.replace_keys(new_only);
    check(
        &v,
        &[
            (
                "old key retired",
                signed("old", old_secret),
                Err(AuthError::UnknownKeyId),
            ),
            ("new key", signed("new", new_secret), Ok("alice")),
        ],
    );

    assert!(matches!(
        v.key_set().without_kid("new"),
        Err(KeyLoadError::EmptyKeySet)
    ));
    assert!(matches!(
        v.key_set().without_kid("nope"),
        Err(KeyLoadError::NoSuchKid { .. })
    ));
    assert!(matches!(
        v.key_set().with_key(key("new", old_secret)),
        Err(KeyLoadError::DuplicateKid { .. })
    ));
    // A kid-less JWT_SECRET key cannot take part in a multi-key set.
    let single = KeySet::from_jwt_secret(SECRET).unwrap();
    assert!(matches!(
        single.with_key(key("k", new_secret)),
        Err(KeyLoadError::MissingKid { index: 0 })
    ));
    assert!(matches!(KeySet::new([]), Err(KeyLoadError::EmptyKeySet)));
}

#[test]
fn auth_error_reasons_are_stable() {
    let all = [
        (AuthError::Malformed, "malformed"),
        (AuthError::InvalidSignature, "invalid_signature"),
        (AuthError::Expired, "expired"),
        (AuthError::NotYetValid, "not_yet_valid"),
        (AuthError::MissingClaim("sub"), "missing_claim"),
        (AuthError::InvalidClaim("exp"), "invalid_claim"),
        (AuthError::UnknownKeyId, "unknown_key_id"),
        (AuthError::AmbiguousKey, "ambiguous_key"),
        (AuthError::AlgorithmNotAllowed, "algorithm_not_allowed"),
        (
            AuthError::UnsupportedCriticalHeader,
            "unsupported_critical_header",
        ),
        (AuthError::InvalidIssuer, "invalid_issuer"),
        (AuthError::InvalidAudience, "invalid_audience"),
        (AuthError::RateLimited, "rate_limited"),
    ];
    for (error, reason) in all {
        assert_eq!(error.reason(), reason);
    }
    assert_eq!(
        AuthError::MissingClaim("sub").to_string(),
        "token lacks the `sub` claim"
    );
}

/// Canary for the dependency itself: jsonwebtoken >= 10.3 no longer treats a
/// string `exp` as absent (CVE-2026-25537). The verifier above does its own
/// claim checks, but nothing else in the workspace should regress either.
#[test]
fn jsonwebtoken_rejects_string_exp() {
    let t = hs(claims_with("exp", json!("9999999999")));
    let validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    let result = jsonwebtoken::decode::<Value>(
        &t,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    );
    assert!(result.is_err(), "{result:?}");
}

// ---------------------------------------------------------------------------
// Rate limiting.

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn rate_limiter_budget_and_window() {
    let limiter = AuthRateLimiter::new(RateLimitConfig {
        max_failures: 3,
        window: Duration::from_secs(60),
        max_tracked: 100,
    });
    let t0 = Instant::now();
    let peer = ip("203.0.113.7");
    for i in 0..3 {
        assert_eq!(
            limiter.check(peer, t0 + Duration::from_secs(i)),
            Ok(()),
            "attempt {i}"
        );
        limiter.record_failure(peer, t0 + Duration::from_secs(i));
    }
    let at = t0 + Duration::from_secs(10);
    assert_eq!(
        limiter.check(peer, at),
        Err(RateLimited {
            retry_after: Duration::from_secs(50)
        })
    );
    assert_eq!(
        AuthError::from(limiter.check(peer, at).unwrap_err()),
        AuthError::RateLimited
    );
    // Other peers are unaffected.
    assert_eq!(limiter.check(ip("203.0.113.8"), at), Ok(()));
    // Still limited just before the window ends; free at its end.
    assert!(limiter.check(peer, t0 + Duration::from_secs(59)).is_err());
    let later = t0 + Duration::from_secs(60);
    assert_eq!(limiter.check(peer, later), Ok(()));
    // A fresh window: the budget is whole again.
    limiter.record_failure(peer, later);
    limiter.record_failure(peer, later);
    assert_eq!(limiter.check(peer, later), Ok(()));
    limiter.record_failure(peer, later);
    assert!(limiter.check(peer, later).is_err());
}

#[test]
fn rate_limiter_memory_is_bounded() {
    let limiter = AuthRateLimiter::new(RateLimitConfig {
        max_failures: 1,
        window: Duration::from_secs(60),
        max_tracked: 3,
    });
    let t0 = Instant::now();
    for i in 0..10u8 {
        limiter.record_failure(
            IpAddr::from([198, 51, 100, i]),
            t0 + Duration::from_millis(u64::from(i)),
        );
        assert!(limiter.tracked() <= 3);
    }
    assert_eq!(limiter.tracked(), 3);
    let at = t0 + Duration::from_secs(1);
    // The oldest were evicted; the newest three are still limited.
    assert_eq!(limiter.check(IpAddr::from([198, 51, 100, 0]), at), Ok(()));
    for i in 7..10u8 {
        assert!(
            limiter.check(IpAddr::from([198, 51, 100, i]), at).is_err(),
            "peer {i}"
        );
    }
    // Expired entries are dropped on the next failure.
    limiter.record_failure(ip("192.0.2.1"), t0 + Duration::from_secs(120));
    assert_eq!(limiter.tracked(), 1);
}

#[test]
fn rate_limiter_address_buckets() {
    let limiter = AuthRateLimiter::new(RateLimitConfig {
        max_failures: 2,
        window: Duration::from_secs(60),
        max_tracked: 100,
    });
    let t0 = Instant::now();
    // Two addresses in one IPv6 /64 share a budget.
    limiter.record_failure(ip("2001:db8:1:2::1"), t0);
    limiter.record_failure(ip("2001:db8:1:2:ffff::9"), t0);
    assert!(limiter.check(ip("2001:db8:1:2::abcd"), t0).is_err());
    assert_eq!(limiter.check(ip("2001:db8:1:3::1"), t0), Ok(()));
    // An IPv4-mapped IPv6 address counts as the IPv4 address.
    limiter.record_failure(ip("::ffff:192.0.2.9"), t0);
    limiter.record_failure(ip("192.0.2.9"), t0);
    assert!(limiter.check(ip("192.0.2.9"), t0).is_err());
    // Zero limits are raised to 1.
    let zero = AuthRateLimiter::new(RateLimitConfig {
        max_failures: 0,
        window: Duration::from_secs(1),
        max_tracked: 0,
    });
    assert_eq!(zero.config().max_failures, 1);
    zero.record_failure(ip("192.0.2.1"), t0);
    zero.record_failure(ip("192.0.2.2"), t0);
    assert_eq!(zero.tracked(), 1);
    assert!(zero.check(ip("192.0.2.2"), t0).is_err());
}

// ---------------------------------------------------------------------------
// Key states (retired, deactivated) and the default key.

/// An HS256 token with `kid` (or none) signed with `secret`, issued at `iat`
/// (or without `iat`).
fn hs_kid(kid: Option<&str>, secret: &str, iat: Option<u64>) -> String {
    let mut header = json!({"alg": "HS256"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let payload = claims_with("iat", iat.map_or(Value::Null, |i| json!(i)));
    token(
        header,
        payload,
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
}

fn hmac_key(kid: &str, secret: &str) -> VerificationKey {
    VerificationKey::hmac(Some(kid.to_owned()), JwsAlgorithm::Hs256, secret.as_bytes()).unwrap()
}

#[test]
fn key_states_decide_after_the_signature() {
    let other = "fedcba9876543210fedcba9876543210";
    let retired_at = NOW - 100;
    let keys = KeySet::new([
        hmac_key("active", SECRET),
        hmac_key("retired", SECRET).with_state(KeyState::Retired { at: retired_at }),
        hmac_key("off", SECRET).with_state(KeyState::Deactivated { at: NOW - 1000 }),
    ])
    .unwrap();
    let v = verifier(keys);
    check(
        &v,
        &[
            (
                "active",
                hs_kid(Some("active"), SECRET, Some(NOW)),
                Ok("alice"),
            ),
            (
                "retired, issued before the retirement",
                hs_kid(Some("retired"), SECRET, Some(retired_at - 1)),
                Ok("alice"),
            ),
            (
                "retired, issued at the retirement",
                hs_kid(Some("retired"), SECRET, Some(retired_at)),
                Err(AuthError::KeyRetired),
            ),
            (
                "retired, issued after",
                hs_kid(Some("retired"), SECRET, Some(NOW)),
                Err(AuthError::KeyRetired),
            ),
            (
                "retired, no iat",
                hs_kid(Some("retired"), SECRET, None),
                Err(AuthError::KeyRetired),
            ),
            (
                "retired, iat as a string",
                token(
                    json!({"alg": "HS256", "kid": "retired"}),
                    claims_with("iat", json!("1")),
                    &hs_key(),
                    Algorithm::HS256,
                ),
                Err(AuthError::InvalidClaim("iat")),
            ),
            (
                "deactivated, issued long before",
                hs_kid(Some("off"), SECRET, Some(NOW - 5000)),
                Err(AuthError::KeyDeactivated),
            ),
            (
                "deactivated key, forged signature: the signature fails first",
                hs_kid(Some("off"), other, Some(NOW)),
                Err(AuthError::InvalidSignature),
            ),
        ],
    );
    assert_eq!(AuthError::KeyRetired.reason(), "key_retired");
    assert_eq!(AuthError::KeyDeactivated.reason(), "key_deactivated");
}

#[test]
fn the_default_key_serves_tokens_without_kid() {
    let other = "fedcba9876543210fedcba9876543210";
    // Alone, the default key behaves like a kid-less key: any kid verifies.
    let alone = KeySet::new([hmac_key("env", SECRET)])
        .unwrap()
        .with_default_kid("env")
        .unwrap();
    assert_eq!(alone.default_kid(), Some("env"));
    let v = verifier(alone.clone());
    check(
        &v,
        &[
            ("no kid", hs_kid(None, SECRET, Some(NOW)), Ok("alice")),
            (
                "an IdP's kid",
                hs_kid(Some("ins_123"), SECRET, Some(NOW)),
                Ok("alice"),
            ),
        ],
    );
    // With another key: tokens without kid go to the default key, a named
    // kid must exist.
    let both = alone.with_key(hmac_key("k2", other)).unwrap();
    assert_eq!(both.default_kid(), Some("env"));
    v.replace_keys(both.clone());
    check(
        &v,
        &[
            (
                "no kid: the default key",
                hs_kid(None, SECRET, Some(NOW)),
                Ok("alice"),
            ),
            (
                "no kid, signed by k2",
                hs_kid(None, other, Some(NOW)),
                Err(AuthError::InvalidSignature),
            ),
            ("k2", hs_kid(Some("k2"), other, Some(NOW)), Ok("alice")),
            (
                "env by kid",
                hs_kid(Some("env"), SECRET, Some(NOW)),
                Ok("alice"),
            ),
            (
                "unknown kid",
                hs_kid(Some("ins_123"), SECRET, Some(NOW)),
                Err(AuthError::UnknownKeyId),
            ),
        ],
    );
    // Without the default key, a kid-less token is ambiguous again.
    let k2_only = both.without_kid("env").unwrap();
    assert_eq!(k2_only.default_kid(), None);
    assert!(matches!(
        KeySet::new([hmac_key("a", SECRET)]).unwrap().with_default_kid("b"),
        Err(KeyLoadError::NoSuchKid { kid }) if kid == "b"
    ));
    let two = KeySet::new([hmac_key("a", SECRET), hmac_key("b", other)]).unwrap();
    v.replace_keys(two);
    check(
        &v,
        &[(
            "no kid, no default",
            hs_kid(None, SECRET, Some(NOW)),
            Err(AuthError::AmbiguousKey),
        )],
    );
}

#[test]
fn fingerprints_tell_keys_apart_and_survive_renaming() {
    let a = hmac_key("a", SECRET);
    let renamed = a
        .clone()
        .with_kid("b")
        .with_state(KeyState::Deactivated { at: 1 });
    assert_eq!(a.fingerprint(), renamed.fingerprint());
    assert_ne!(
        a.fingerprint(),
        hmac_key("a", "fedcba9876543210fedcba9876543210").fingerprint()
    );
    let hs384 = VerificationKey::hmac(None, JwsAlgorithm::Hs384, [7u8; 48].as_slice()).unwrap();
    let hs512 = VerificationKey::hmac(None, JwsAlgorithm::Hs512, [7u8; 64].as_slice()).unwrap();
    assert_ne!(hs384.fingerprint(), hs512.fingerprint());
    let rsa_pem = VerificationKey::from_pem(None, RSA_PUBLIC_PEM, None).unwrap();
    let rsa_jwk = VerificationKey::from_jwk(&rsa_jwk("r")).unwrap();
    assert_ne!(rsa_pem.fingerprint(), a.fingerprint());
    assert_eq!(
        rsa_jwk.fingerprint(),
        VerificationKey::from_jwk(&rsa_jwk_value())
            .unwrap()
            .fingerprint()
    );
}

fn rsa_jwk_value() -> Value {
    rsa_jwk("another-kid")
}
