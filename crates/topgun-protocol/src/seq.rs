//! Sequence decoding that reserves memory for what arrives, not for what a
//! length prefix claims.
//!
//! serde's own `Vec` impl trusts a format's length hint up to 1 MiB per
//! sequence; in bincode that hint is the peer's length prefix, so a frame of
//! a dozen bytes could make the decoder reserve a megabyte per nested
//! sequence. Every `Vec` in a wire type decodes through [`bounded`] instead,
//! which reserves at most [`PREALLOC_BYTES`] up front and grows as elements
//! actually decode.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

/// The most memory a sequence reserves before its elements arrive.
pub(crate) const PREALLOC_BYTES: usize = 4096;

/// The initial capacity for a sequence of `T` whose format claims `hint`
/// elements.
pub(crate) fn capacity<T>(hint: Option<usize>) -> usize {
    let per = std::mem::size_of::<T>().max(1);
    hint.unwrap_or(0).min(PREALLOC_BYTES / per)
}

/// Decodes a `Vec<T>` with bounded preallocation; use as
/// `#[serde(deserialize_with = "crate::seq::bounded")]`.
pub(crate) fn bounded<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct BoundedVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(capacity::<T>(seq.size_hint()));
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }

    d.deserialize_seq(BoundedVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_ignores_huge_hints() {
        assert_eq!(capacity::<u64>(Some(1 << 40)), PREALLOC_BYTES / 8);
        assert_eq!(capacity::<u64>(Some(3)), 3);
        assert_eq!(capacity::<u64>(None), 0);
        assert_eq!(capacity::<()>(Some(1 << 40)), PREALLOC_BYTES);
    }
}
