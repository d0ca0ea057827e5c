//! The bounded codec: the only place that calls bincode or serde_json.
//!
//! Every decode first refuses frames longer than the codec's
//! `max_message_bytes`, then decodes with a byte limit (bincode) and depth
//! guards (both encodings), refuses trailing bytes, and maps every failure
//! onto a typed [`DecodeError`].
//!
//! bincode's limit counts the bytes each decoded item claims: a primitive
//! claims its in-memory size (at most 8 bytes, while it occupies at least
//! one byte of input) and a string or byte sequence claims its declared
//! length before it is allocated. A frame of `n` bytes that decodes
//! therefore never claims more than `8 * n`, so the limit is picked per
//! frame from a few compile-time tiers of at least `8 * n`: a hostile length
//! prefix fails with [`DecodeError::LimitExceeded`] before allocating, and
//! what a short frame can make the decoder reserve stays small.
//!
//! Adding an encoding (for example MessagePack) means a new [`Encoding`]
//! variant and one arm in [`Codec::encode`], [`Codec::decode`] and the error
//! mapping, nothing else.

use serde::de::DeserializeOwned;

use crate::encoding::Encoding;
use crate::error::{DecodeError, EncodeError, MalformedKind, Nesting, short_detail};
use crate::guard::{self, Violation};
use crate::message::{ClientMessage, Message, ServerMessage};
use crate::storage::{STORED_FORMAT_VERSION, StoredRecord};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The default maximum message size: 4 MiB, room for a 1 MiB value (the
/// server's default value size limit) several times over.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * MIB;

/// The largest `max_message_bytes` a codec accepts: 16 MiB. Larger settings
/// are clamped to it.
pub const HARD_MAX_MESSAGE_BYTES: usize = 16 * MIB;

/// The most bytes a decoded item may claim per byte of input (a one-byte
/// varint decoded into a `u64`).
pub const BINCODE_CLAIM_FACTOR: usize = 8;

/// The bincode limits: (largest frame length, limit) pairs, smallest first.
/// Each limit is at least [`BINCODE_CLAIM_FACTOR`] times its frame length.
pub const BINCODE_LIMIT_TIERS: [(usize, usize); 4] = [
    (8 * KIB, TIER_0),
    (128 * KIB, TIER_1),
    (2 * MIB, TIER_2),
    (HARD_MAX_MESSAGE_BYTES, TIER_3),
];
const TIER_0: usize = 64 * KIB;
const TIER_1: usize = MIB;
const TIER_2: usize = 16 * MIB;
const TIER_3: usize = 128 * MIB;

/// Encodes and decodes messages in one [`Encoding`], within a size limit.
///
/// A codec is a small `Copy` value; a server keeps one per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    encoding: Encoding,
    max_message_bytes: usize,
}

impl Codec {
    /// A codec with [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub const fn new(encoding: Encoding) -> Self {
        Codec {
            encoding,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The same codec with another message size limit, clamped to
    /// [`HARD_MAX_MESSAGE_BYTES`].
    pub const fn with_max_message_bytes(self, max: usize) -> Self {
        let max_message_bytes = if max > HARD_MAX_MESSAGE_BYTES {
            HARD_MAX_MESSAGE_BYTES
        } else {
            max
        };
        Codec {
            encoding: self.encoding,
            max_message_bytes,
        }
    }

    /// The encoding.
    pub const fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The largest frame this codec decodes or produces.
    pub const fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Encodes one message into one frame's payload.
    pub fn encode<M: Message>(&self, msg: &M) -> Result<Vec<u8>, EncodeError> {
        guard::clear();
        let out = match self.encoding {
            Encoding::Bincode => bincode::serde::encode_to_vec(msg, bincode::config::standard())
                .map_err(|e| encode_failure(&e.to_string())),
            Encoding::Json => serde_json::to_vec(msg).map_err(|e| encode_failure(&e.to_string())),
        }?;
        if out.len() > self.max_message_bytes {
            return Err(EncodeError::TooLarge {
                len: out.len(),
                max: self.max_message_bytes,
            });
        }
        Ok(out)
    }

    /// Decodes one frame's payload into one message.
    pub fn decode<M: Message>(&self, frame: &[u8]) -> Result<M, DecodeError> {
        if frame.len() > self.max_message_bytes {
            return Err(DecodeError::TooLarge {
                len: frame.len(),
                max: self.max_message_bytes,
            });
        }
        guard::clear();
        match self.encoding {
            Encoding::Bincode => decode_bincode(frame),
            Encoding::Json => decode_json(frame),
        }
    }

    /// Encodes a client message.
    pub fn encode_client(&self, msg: &ClientMessage) -> Result<Vec<u8>, EncodeError> {
        self.encode(msg)
    }

    /// Decodes a client message.
    pub fn decode_client(&self, frame: &[u8]) -> Result<ClientMessage, DecodeError> {
        self.decode(frame)
    }

    /// Encodes a server message.
    pub fn encode_server(&self, msg: &ServerMessage) -> Result<Vec<u8>, EncodeError> {
        self.encode(msg)
    }

    /// Decodes a server message.
    pub fn decode_server(&self, frame: &[u8]) -> Result<ServerMessage, DecodeError> {
        self.decode(frame)
    }
}

/// Initial buffer of [`encode_stored`], in bytes.
const STORED_INITIAL_CAPACITY: usize = 128;

/// Encodes a record for the store: [`STORED_FORMAT_VERSION`], then the
/// record in bincode (the same layout as on the wire).
pub fn encode_stored(record: &StoredRecord) -> Result<Vec<u8>, EncodeError> {
    guard::clear();
    // Room for a typical small record, so encoding does not grow the
    // buffer byte by byte (a row is encoded for every write).
    let mut out = Vec::with_capacity(STORED_INITIAL_CAPACITY);
    out.push(STORED_FORMAT_VERSION);
    bincode::serde::encode_into_std_write(record, &mut out, bincode::config::standard())
        .map_err(|e| encode_failure(&e.to_string()))?;
    Ok(out)
}

/// Decodes a stored record written by [`encode_stored`], with the same
/// bounds as a frame: a corrupt row is a typed error, never a panic or an
/// unbounded allocation.
pub fn decode_stored(bytes: &[u8]) -> Result<StoredRecord, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Truncated),
        Some((&STORED_FORMAT_VERSION, rest)) => {
            guard::clear();
            decode_bincode(rest)
        }
        Some((version, _)) => Err(DecodeError::UnknownVariant {
            detail: short_detail(&format!("unknown storage format version {version}")),
        }),
    }
}

/// The bincode limit used for a frame of `len` bytes (`None` above
/// [`HARD_MAX_MESSAGE_BYTES`]).
pub fn bincode_limit_for(len: usize) -> Option<usize> {
    BINCODE_LIMIT_TIERS
        .iter()
        .find(|(max_len, _)| len <= *max_len)
        .map(|(_, limit)| *limit)
}

fn decode_bincode<M: DeserializeOwned>(frame: &[u8]) -> Result<M, DecodeError> {
    use bincode::serde::decode_from_slice;
    let config = bincode::config::standard();
    // One arm per tier of BINCODE_LIMIT_TIERS: the limit is a type
    // parameter, so each tier is its own instantiation.
    let result = match bincode_limit_for(frame.len()) {
        Some(TIER_0) => decode_from_slice(frame, config.with_limit::<TIER_0>()),
        Some(TIER_1) => decode_from_slice(frame, config.with_limit::<TIER_1>()),
        Some(TIER_2) => decode_from_slice(frame, config.with_limit::<TIER_2>()),
        Some(TIER_3) => decode_from_slice(frame, config.with_limit::<TIER_3>()),
        _ => {
            return Err(DecodeError::TooLarge {
                len: frame.len(),
                max: HARD_MAX_MESSAGE_BYTES,
            });
        }
    };
    match result {
        Ok((msg, used)) if used == frame.len() => Ok(msg),
        Ok(_) => Err(DecodeError::TrailingBytes),
        Err(e) => Err(guard::take().map_or_else(|| from_bincode(e), from_violation)),
    }
}

fn decode_json<M: DeserializeOwned>(frame: &[u8]) -> Result<M, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(frame);
    // Recursion is bounded by the depth guards of the only recursive wire
    // types (values and filters); serde_json's fixed limit of 128 would
    // refuse legal messages (a filter of depth 32 around a value of depth
    // 64 nests deeper than 128 brackets).
    de.disable_recursion_limit();
    let msg = M::deserialize(&mut de)
        .map_err(|e| guard::take().map_or_else(|| from_json(&e), from_violation))?;
    de.end().map_err(|_| DecodeError::TrailingBytes)?;
    Ok(msg)
}

fn from_violation(v: Violation) -> DecodeError {
    match v {
        Violation::TooDeep(nesting) => too_deep(nesting),
        Violation::NonFiniteFloat => DecodeError::NonFiniteFloat,
        Violation::IntegerOutOfRange => malformed(MalformedKind::IntegerOutOfRange, &v.to_string()),
        Violation::InvalidHex => malformed(MalformedKind::InvalidHex, &v.to_string()),
        Violation::DuplicateKey => malformed(MalformedKind::DuplicateKey, &v.to_string()),
    }
}

fn too_deep(nesting: Nesting) -> DecodeError {
    DecodeError::TooDeep {
        nesting,
        max: nesting.max_depth(),
    }
}

fn malformed(kind: MalformedKind, detail: &str) -> DecodeError {
    DecodeError::Malformed {
        kind,
        detail: short_detail(detail),
    }
}

fn encode_failure(detail: &str) -> EncodeError {
    match guard::take() {
        Some(Violation::TooDeep(nesting)) => EncodeError::TooDeep {
            nesting,
            max: nesting.max_depth(),
        },
        Some(Violation::NonFiniteFloat) => EncodeError::NonFiniteFloat,
        _ => EncodeError::Unexpected {
            detail: short_detail(detail),
        },
    }
}

/// Classifies the message of an error raised through `serde::de::Error`
/// (derived impls report unknown variants, missing fields and type
/// mismatches this way, with serde's fixed wording).
fn from_serde_message(msg: &str) -> DecodeError {
    let kind = if msg.starts_with("unknown variant")
        || (msg.starts_with("invalid value: integer") && msg.contains("variant index"))
    {
        return DecodeError::UnknownVariant {
            detail: short_detail(msg),
        };
    } else if msg.starts_with("unknown field") {
        MalformedKind::UnknownField
    } else if msg.starts_with("missing field") {
        MalformedKind::MissingField
    } else if msg.starts_with("duplicate field") {
        MalformedKind::DuplicateField
    } else if msg.starts_with("invalid type") {
        MalformedKind::InvalidType
    } else if msg.starts_with("invalid length") {
        MalformedKind::InvalidLength
    } else if msg.starts_with("invalid value") {
        MalformedKind::InvalidValue
    } else {
        MalformedKind::Other
    };
    malformed(kind, msg)
}

fn from_bincode(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded | B::OutsideUsizeRange(_) => DecodeError::LimitExceeded,
        B::UnexpectedVariant {
            type_name, found, ..
        } => DecodeError::UnknownVariant {
            detail: short_detail(&format!("{type_name}: variant index {found}")),
        },
        B::Utf8 { .. } | B::InvalidCharEncoding(_) => DecodeError::InvalidUtf8,
        B::InvalidBooleanValue(b) => {
            malformed(MalformedKind::InvalidBool, &format!("boolean byte {b}"))
        }
        B::InvalidIntegerType { expected, found } => malformed(
            MalformedKind::IntegerOutOfRange,
            &format!("expected {expected:?}, found {found:?}"),
        ),
        B::OtherString(msg) => from_serde_message(&msg),
        B::Serde(e) => malformed(MalformedKind::Unsupported, &format!("{e:?}")),
        other => malformed(MalformedKind::Other, &other.to_string()),
    }
}

fn from_json(e: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Eof => DecodeError::Truncated,
        Category::Data => from_serde_message(&msg),
        Category::Syntax => {
            if msg.starts_with("invalid unicode code point")
                || msg.starts_with("lone leading surrogate")
                || msg.starts_with("unexpected end of hex escape")
            {
                DecodeError::InvalidUtf8
            } else if msg.starts_with("number out of range") {
                DecodeError::NonFiniteFloat
            } else if msg.starts_with("trailing characters") {
                // Raised inside a message only when a fixed-length array
                // (the 16 child hashes) has more elements; trailing bytes
                // after the message are caught by `end()`.
                malformed(MalformedKind::InvalidLength, &msg)
            } else {
                malformed(MalformedKind::Syntax, &msg)
            }
        }
        Category::Io => malformed(MalformedKind::Other, &msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_covers_the_worst_claim_of_its_frames() {
        let mut prev = 0;
        for (max_len, limit) in BINCODE_LIMIT_TIERS {
            assert!(max_len > prev, "tiers ascend");
            assert!(
                limit >= BINCODE_CLAIM_FACTOR * max_len,
                "{max_len} -> {limit}"
            );
            prev = max_len;
        }
        assert_eq!(prev, HARD_MAX_MESSAGE_BYTES);
        assert_eq!(bincode_limit_for(0), Some(TIER_0));
        assert_eq!(bincode_limit_for(8 * KIB), Some(TIER_0));
        assert_eq!(bincode_limit_for(8 * KIB + 1), Some(TIER_1));
        assert_eq!(bincode_limit_for(HARD_MAX_MESSAGE_BYTES), Some(TIER_3));
        assert_eq!(bincode_limit_for(HARD_MAX_MESSAGE_BYTES + 1), None);
    }

    #[test]
    fn max_message_bytes_is_clamped() {
        let c = Codec::new(Encoding::Json).with_max_message_bytes(usize::MAX);
        assert_eq!(c.max_message_bytes(), HARD_MAX_MESSAGE_BYTES);
        assert_eq!(
            Codec::new(Encoding::Bincode).max_message_bytes(),
            DEFAULT_MAX_MESSAGE_BYTES
        );
    }

    #[test]
    fn serde_messages_are_classified() {
        let cases = [
            ("unknown variant `X`, expected one of `A`", "UnknownVariant"),
            (
                "invalid value: integer `9`, expected variant index 0 <= i < 3",
                "UnknownVariant",
            ),
            ("unknown field `origin`, expected `op_id`", "UnknownField"),
            ("missing field `token`", "MissingField"),
            ("invalid type: string \"1\", expected u64", "InvalidType"),
            (
                "invalid length 3, expected an array of length 16",
                "InvalidLength",
            ),
            ("something else", "Other"),
        ];
        for (msg, expected) in cases {
            let got = match from_serde_message(msg) {
                DecodeError::UnknownVariant { .. } => "UnknownVariant".to_owned(),
                DecodeError::Malformed { kind, .. } => format!("{kind:?}"),
                other => format!("{other:?}"),
            };
            assert_eq!(got, expected, "{msg}");
        }
    }
}
