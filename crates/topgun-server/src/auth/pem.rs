//! PEM armor and the little DER reading needed to tell which public key a block holds.
//!
//! jsonwebtoken's PEM readers do not check an EC key's curve and classify a
//! block by the first familiar OID found anywhere inside it. This module reads
//! the SubjectPublicKeyInfo itself, so the algorithm a key is pinned to comes
//! from the key's declared algorithm and curve, and anything unexpected is
//! refused at load time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::JwsAlgorithm;
use super::error::{KeyLoadError, PemProblem};

/// Minimum RSA modulus size accepted for verification keys.
pub(crate) const MIN_RSA_BITS: usize = 2048;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// One decoded PEM block.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Vec<u8>,
}

impl PemBlock {
    /// Re-armors the block canonically (64-column base64, `\n` line ends), so
    /// that jsonwebtoken's PEM reader sees exactly the bytes checked here.
    pub(crate) fn to_canonical_pem(&self) -> String {
        let body = STANDARD.encode(&self.der);
        let mut out = format!("-----BEGIN {}-----\n", self.label);
        for chunk in body.as_bytes().chunks(64) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&format!("-----END {}-----\n", self.label));
        out
    }
}

fn pem_err(problem: PemProblem) -> KeyLoadError {
    KeyLoadError::InvalidPem(problem)
}

/// Reads exactly one PEM block from `text`. Whitespace and quote characters
/// (left over from env files) may surround it; nothing else may.
pub(crate) fn parse_single_block(text: &str) -> Result<PemBlock, KeyLoadError> {
    const BEGIN: &str = "-----BEGIN ";
    if text.matches("-----BEGIN").count() > 1 {
        return Err(pem_err(PemProblem::MultipleBlocks));
    }
    let start = text.find(BEGIN).ok_or(pem_err(PemProblem::MissingBegin))?;
    let after_begin = &text[start + BEGIN.len()..];
    let label_len = after_begin
        .find("-----")
        .ok_or(pem_err(PemProblem::MissingBegin))?;
    let label = &after_begin[..label_len];
    if label.is_empty()
        || !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
    {
        return Err(pem_err(PemProblem::MissingBegin));
    }
    // Refuse private keys before decoding: encrypted legacy PEM bodies carry
    // headers that are not base64, and the message should say what is wrong.
    if label.contains("PRIVATE KEY") {
        return Err(KeyLoadError::PrivateKeyGiven);
    }
    let body_and_rest = &after_begin[label_len + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let body_len = body_and_rest
        .find(&end_marker)
        .ok_or(pem_err(PemProblem::MissingEnd))?;
    let body = &body_and_rest[..body_len];
    let suffix = &body_and_rest[body_len + end_marker.len()..];
    let prefix = &text[..start];
    let is_filler = |c: char| c.is_whitespace() || c == '"' || c == '\'';
    if !prefix.chars().all(is_filler) || !suffix.chars().all(is_filler) {
        return Err(pem_err(PemProblem::TextOutsideBlock));
    }
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| pem_err(PemProblem::Base64))?;
    if der.is_empty() {
        return Err(pem_err(PemProblem::Der));
    }
    Ok(PemBlock {
        label: label.to_owned(),
        der,
    })
}

/// A public key whose type and algorithm have been read from its DER.
#[derive(Debug)]
pub(crate) struct ClassifiedKey {
    pub(crate) alg: JwsAlgorithm,
    /// The bytes jsonwebtoken is expected to extract: PKCS#1 `RSAPublicKey`
    /// DER for RSA, the SEC1 point for EC, the 32-byte key for Ed25519.
    pub(crate) key_bytes: Vec<u8>,
}

/// Classifies a PEM block holding a public key.
pub(crate) fn classify(block: &PemBlock) -> Result<ClassifiedKey, KeyLoadError> {
    match block.label.as_str() {
        "PUBLIC KEY" => classify_spki(&block.der),
        "RSA PUBLIC KEY" => {
            rsa_modulus_check(&block.der)?;
            Ok(ClassifiedKey {
                alg: JwsAlgorithm::Rs256,
                key_bytes: block.der.clone(),
            })
        }
        label if label.contains("PRIVATE KEY") => Err(KeyLoadError::PrivateKeyGiven),
        label => Err(KeyLoadError::UnsupportedPemLabel {
            label: label.to_owned(),
        }),
    }
}

/// Classifies a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7).
pub(crate) fn classify_spki(der: &[u8]) -> Result<ClassifiedKey, KeyLoadError> {
    let bad = || pem_err(PemProblem::Der);
    let spki = Der::new(der).single(TAG_SEQUENCE).ok_or_else(bad)?;
    let mut fields = Der::new(spki);
    let alg_id = fields.take(TAG_SEQUENCE).ok_or_else(bad)?;
    let bits = fields.take(TAG_BIT_STRING).ok_or_else(bad)?;
    if !fields.is_empty() {
        return Err(bad());
    }
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(bad()),
    };
    let mut alg_fields = Der::new(alg_id);
    let oid = alg_fields.take(TAG_OID).ok_or_else(bad)?;
    let params = alg_fields.read();
    if !alg_fields.is_empty() {
        return Err(bad());
    }
    if oid == OID_RSA_ENCRYPTION {
        // The parameters are NULL (RFC 3279); tolerate their absence.
        match params {
            None | Some((TAG_NULL, [])) => {}
            _ => return Err(bad()),
        }
        rsa_modulus_check(key)?;
        Ok(ClassifiedKey {
            alg: JwsAlgorithm::Rs256,
            key_bytes: key.to_vec(),
        })
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = match params {
            Some((TAG_OID, curve)) => curve,
            _ => return Err(bad()),
        };
        let (alg, coord) = if curve == OID_P256 {
            (JwsAlgorithm::Es256, 32)
        } else if curve == OID_P384 {
            (JwsAlgorithm::Es384, 48)
        } else {
            return Err(KeyLoadError::UnsupportedKeyType {
                found: format!("EC curve {}", oid_to_string(curve)),
            });
        };
        check_sec1_point(key, coord)?;
        Ok(ClassifiedKey {
            alg,
            key_bytes: key.to_vec(),
        })
    } else if oid == OID_ED25519 {
        if params.is_some() {
            return Err(bad());
        }
        if key.len() != 32 {
            return Err(KeyLoadError::InvalidKey {
                what: "an Ed25519 public key is 32 bytes",
            });
        }
        Ok(ClassifiedKey {
            alg: JwsAlgorithm::EdDsa,
            key_bytes: key.to_vec(),
        })
    } else {
        Err(KeyLoadError::UnsupportedKeyType {
            found: format!("public key algorithm {}", oid_to_string(oid)),
        })
    }
}

/// Checks that `point` is a SEC1 point for a curve with `coord`-byte coordinates.
pub(crate) fn check_sec1_point(point: &[u8], coord: usize) -> Result<(), KeyLoadError> {
    let ok = match point.first() {
        Some(0x04) => point.len() == 1 + 2 * coord,
        Some(0x02 | 0x03) => point.len() == 1 + coord,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KeyLoadError::InvalidKey {
            what: "the EC point has the wrong encoding or length for its curve",
        })
    }
}

/// Reads a PKCS#1 `RSAPublicKey` and checks the modulus size and exponent.
fn rsa_modulus_check(pkcs1: &[u8]) -> Result<(), KeyLoadError> {
    let bad = || pem_err(PemProblem::Der);
    let seq = Der::new(pkcs1).single(TAG_SEQUENCE).ok_or_else(bad)?;
    let mut ints = Der::new(seq);
    let n = ints.take(TAG_INTEGER).ok_or_else(bad)?;
    let e = ints.take(TAG_INTEGER).ok_or_else(bad)?;
    if !ints.is_empty() {
        return Err(bad());
    }
    check_rsa_components(n, e)
}

/// Checks big-endian RSA `n` and `e`: at least [`MIN_RSA_BITS`] of modulus
/// and a non-zero exponent.
pub(crate) fn check_rsa_components(n: &[u8], e: &[u8]) -> Result<(), KeyLoadError> {
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(KeyLoadError::WeakRsaKey {
            bits,
            min: MIN_RSA_BITS,
        });
    }
    if bit_length(e) < 2 {
        return Err(KeyLoadError::InvalidKey {
            what: "the RSA exponent is missing or trivial",
        });
    }
    Ok(())
}

fn bit_length(big_endian: &[u8]) -> usize {
    let digits = match big_endian.iter().position(|&b| b != 0) {
        Some(i) => &big_endian[i..],
        None => return 0,
    };
    match digits.first() {
        Some(&top) => digits.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
        if acc > u64::MAX >> 8 {
            return "<overlong OID>".to_owned();
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// True when `der` is a DER public key (SubjectPublicKeyInfo or PKCS#1),
/// whether or not this module supports its type.
pub(crate) fn is_der_public_key(der: &[u8]) -> bool {
    // Only a structural DER failure means "not a key"; an unsupported or weak
    // key is still a public key.
    let not_der = |r: Result<(), KeyLoadError>| matches!(r, Err(KeyLoadError::InvalidPem(_)));
    !(not_der(classify_spki(der).map(drop)) && not_der(rsa_modulus_check(der)))
}

/// True when `text`, stripped of whitespace, is base64 of a DER public key:
/// public key text pasted without its PEM armor.
pub(crate) fn is_bare_der_public_key(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .is_ok_and(|der| is_der_public_key(&der))
}

/// A cursor over DER TLVs. Only definite lengths and low tag numbers, which is
/// all a public key uses; anything else reads as `None`.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(input: &'a [u8]) -> Self {
        Der { rest: input }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn read(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let (len_bytes, after) = rest.split_at_checked(count)?;
            rest = after;
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // DER uses the shortest length form.
            if len < 0x80 || len_bytes.first() == Some(&0) {
                return None;
            }
            len
        };
        let (value, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some((tag, value))
    }

    fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.read()? {
            (t, value) if t == tag => Some(value),
            _ => None,
        }
    }

    /// Reads one TLV with `tag` that must span the whole input.
    fn single(mut self, tag: u8) -> Option<&'a [u8]> {
        let value = self.take(tag)?;
        self.is_empty().then_some(value)
    }
}
