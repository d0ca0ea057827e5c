//! The stored form of records: what the server writes to its store, one row
//! per key. It reuses the wire mirrors and bincode, behind a format version
//! byte, so the encoding lives in this crate like every other one.

use serde::{Deserialize, Serialize};

use crate::record::{WireLwwRecord, WireOrEntry};

/// The first byte of every stored record: the storage format version.
pub const STORED_FORMAT_VERSION: u8 = 1;

/// One stored row: a key's whole state in one map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StoredRecord {
    /// A last-writer-wins record (tombstones included).
    Lww(WireLwwRecord),
    /// An observed-remove key's items and tombstones.
    Or(WireOrEntry),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_stored, encode_stored};
    use crate::error::DecodeError;
    use crate::ids::{WireNodeId, WireTimestamp};
    use crate::record::RecordValue;

    #[test]
    fn stored_records_round_trip_and_reject_unknown_versions() {
        let lww = StoredRecord::Lww(WireLwwRecord {
            value: RecordValue::Tombstone,
            timestamp: WireTimestamp {
                millis: 5,
                counter: 1,
                node: WireNodeId(9),
            },
            ttl_ms: None,
        });
        let bytes = encode_stored(&lww).unwrap();
        assert_eq!(bytes[0], STORED_FORMAT_VERSION);
        assert_eq!(decode_stored(&bytes).unwrap(), lww);
        let or = StoredRecord::Or(WireOrEntry::default());
        assert_eq!(decode_stored(&encode_stored(&or).unwrap()).unwrap(), or);

        assert_eq!(decode_stored(&[]), Err(DecodeError::Truncated));
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            decode_stored(&future),
            Err(DecodeError::UnknownVariant { .. })
        ));
        let mut trailing = bytes;
        trailing.push(0);
        assert_eq!(decode_stored(&trailing), Err(DecodeError::TrailingBytes));
    }
}
