//! Typed errors for encoding, decoding and converting wire messages.

use std::fmt;

/// The recursive wire types whose nesting the codec bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Nesting {
    /// Arrays and maps inside a [`crate::WireValue`]; bounded by
    /// [`topgun_core::MAX_VALUE_DEPTH`].
    Value,
    /// `And`/`Or`/`Not` inside a [`crate::WireFilter`]; bounded by
    /// [`topgun_core::query::MAX_FILTER_DEPTH`].
    Filter,
}

impl Nesting {
    /// The deepest nesting the protocol accepts for this type.
    pub const fn max_depth(self) -> usize {
        match self {
            Nesting::Value => topgun_core::MAX_VALUE_DEPTH,
            Nesting::Filter => topgun_core::query::MAX_FILTER_DEPTH,
        }
    }
}

impl fmt::Display for Nesting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Nesting::Value => "value",
            Nesting::Filter => "filter",
        })
    }
}

/// What exactly was wrong with a frame that is well-formed enough to be
/// parsed but does not describe a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MalformedKind {
    /// The JSON text is not valid JSON.
    Syntax,
    /// A field holds the wrong type, e.g. a string where an integer belongs.
    InvalidType,
    /// A field holds a value of the right type that is out of its domain.
    InvalidValue,
    /// A sequence has the wrong length (e.g. not exactly 16 child hashes).
    InvalidLength,
    /// A required field is absent (JSON).
    MissingField,
    /// An object names a field the message does not have (JSON). Client
    /// messages refuse unknown fields, so nothing can be smuggled in.
    UnknownField,
    /// An object names the same field twice (JSON).
    DuplicateField,
    /// A value map holds the same key twice.
    DuplicateKey,
    /// An integer does not fit its field (for a value: outside `i64`).
    IntegerOutOfRange,
    /// A node id or hash is not exactly 16 lowercase hexadecimal digits
    /// (JSON).
    InvalidHex,
    /// A boolean byte other than 0 or 1 (bincode).
    InvalidBool,
    /// The serde data model feature used is unsupported by the encoding.
    /// Indicates a bug in this crate, never a peer's fault.
    Unsupported,
    /// Any other violation; the detail says which.
    Other,
}

/// Why a frame could not be decoded into a message.
///
/// Every way a peer can send bad bytes ends here, typed; decoding never
/// panics and never allocates more than a small multiple of the frame's
/// length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than the codec's `max_message_bytes`; it was not
    /// looked at.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The frame ends in the middle of a message.
    #[error("message is truncated")]
    Truncated,
    /// A length prefix claims more data than the frame could possibly hold
    /// (a hostile or corrupt length). Refused before allocating.
    #[error("a length prefix exceeds the decoding limit")]
    LimitExceeded,
    /// An enum tag (message type, code, variant index) is not one this
    /// protocol version knows.
    #[error("unknown variant: {detail}")]
    UnknownVariant {
        /// Which tag, briefly.
        detail: String,
    },
    /// A value or filter nests deeper than the protocol allows.
    #[error("{nesting} nesting exceeds the maximum depth of {max}")]
    TooDeep {
        /// Which recursive type.
        nesting: Nesting,
        /// The maximum depth.
        max: usize,
    },
    /// A string is not valid UTF-8 (or, in JSON, holds an unpaired
    /// surrogate escape).
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    /// A float is NaN or infinite (or, in JSON, overflows to infinity).
    #[error("non-finite float")]
    NonFiniteFloat,
    /// Bytes (other than JSON whitespace) follow a complete message.
    #[error("trailing bytes after the message")]
    TrailingBytes,
    /// The frame parses but does not describe a valid message.
    #[error("malformed message ({kind:?}): {detail}")]
    Malformed {
        /// What kind of violation.
        kind: MalformedKind,
        /// A short human-readable detail (at most [`MAX_DETAIL_LEN`] bytes).
        detail: String,
    },
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message would exceed the codec's `max_message_bytes`, so
    /// the peer would refuse it.
    #[error("encoded message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value or filter nests deeper than the protocol allows.
    #[error("{nesting} nesting exceeds the maximum depth of {max}")]
    TooDeep {
        /// Which recursive type.
        nesting: Nesting,
        /// The maximum depth.
        max: usize,
    },
    /// A float is NaN or infinite; JSON cannot carry it, so neither encoding
    /// does.
    #[error("non-finite float")]
    NonFiniteFloat,
    /// The serializer failed in a way the wire types should make
    /// impossible. Indicates a bug in this crate.
    #[error("unexpected serializer failure: {detail}")]
    Unexpected {
        /// The serializer's message, shortened.
        detail: String,
    },
}

/// Why a core value could not be turned into its wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A value or filter nests deeper than the protocol allows.
    #[error("{nesting} nesting exceeds the maximum depth of {max}")]
    TooDeep {
        /// Which recursive type.
        nesting: Nesting,
        /// The maximum depth.
        max: usize,
    },
    /// A float is NaN or infinite.
    #[error("non-finite float")]
    NonFiniteFloat,
}

impl ConvertError {
    pub(crate) fn too_deep(nesting: Nesting) -> Self {
        ConvertError::TooDeep {
            nesting,
            max: nesting.max_depth(),
        }
    }
}

/// The longest `detail` string an error carries, in bytes. Details come
/// from parser messages that may quote peer input; they are cut so a
/// hostile frame cannot bloat logs.
pub const MAX_DETAIL_LEN: usize = 160;

/// Shortens `s` to at most [`MAX_DETAIL_LEN`] bytes on a char boundary.
pub(crate) fn short_detail(s: &str) -> String {
    if s.len() <= MAX_DETAIL_LEN {
        return s.to_owned();
    }
    let mut end = MAX_DETAIL_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_detail_cuts_on_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = short_detail(&long);
        assert!(cut.len() <= MAX_DETAIL_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(short_detail("short"), "short");
    }
}
