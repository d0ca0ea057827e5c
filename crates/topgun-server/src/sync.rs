//! The server side of the Merkle sync exchange: `SYNC_INIT`,
//! `MERKLE_REQ_BUCKET` and `SYNC_REQ_LEAF`, answered from a map's replica.
//!
//! Every answer is computed under the map's lock and sent after it is
//! released. Records the principal may not read are never sent. Large leaf
//! answers are split over several `SYNC_RESP_LEAF` messages so none exceeds
//! the connection's message size limit (measured with its codec); the last
//! one carries the wanted keys and `last: true`.

use std::collections::BTreeMap;

use topgun_core::merkle::{self, MerkleTree};
use topgun_core::{MapKind, MerklePath};
use topgun_protocol::{
    BucketHashes, Codec, ErrorCode, ErrorContext, Hash64, LeafRecords, LwwKeyRecord, OrKeyEntry,
    ServerMessage, WireLeafDigest, WireLwwRecord, WireMapKind, WireMerklePath, WireOrEntry,
};

use crate::authz::{Action, Decision, Policy, Principal, is_reserved_map};
use crate::state::{MapData, Maps, lock};

/// An `ERROR` refusing a sync request of `map` and `kind`: the context
/// lets the client fail exactly that exchange.
fn error(
    code: ErrorCode,
    message: impl Into<String>,
    map: &str,
    kind: WireMapKind,
) -> Vec<ServerMessage> {
    vec![ServerMessage::Error {
        code,
        message: message.into(),
        context: Some(ErrorContext::Sync {
            map: map.to_owned(),
            kind,
        }),
    }]
}

/// Checks that the principal may read the map and that the request's kind
/// matches the map's kind. `Ok(None)` means the map does not exist yet.
fn check_map(
    maps: &Maps,
    policy: &dyn Policy,
    principal: &Principal,
    map: &str,
    kind: WireMapKind,
) -> Result<Option<crate::state::MapHandle>, Vec<ServerMessage>> {
    if is_reserved_map(map) {
        return Err(error(
            ErrorCode::Forbidden,
            format!("map {map:?} is reserved"),
            map,
            kind,
        ));
    }
    if let Decision::Deny(why) = policy.decide(principal, Action::Read, map, None) {
        return Err(error(ErrorCode::Forbidden, why, map, kind));
    }
    let Some(handle) = maps.get(map) else {
        return Ok(None);
    };
    let actual = lock(&handle).kind();
    if MapKind::from(kind) != actual {
        return Err(error(
            ErrorCode::InvalidSyncRequest,
            format!("map {map:?} is a {actual:?} map"),
            map,
            kind,
        ));
    }
    Ok(Some(handle))
}

fn tree_of(data: &MapData) -> &MerkleTree {
    match data {
        MapData::Lww(m) => m.merkle(),
        MapData::Or(m) => m.merkle(),
    }
}

/// `SYNC_INIT`: the server's root hash.
pub(crate) fn init(
    maps: &Maps,
    policy: &dyn Policy,
    principal: &Principal,
    map: String,
    kind: WireMapKind,
) -> Vec<ServerMessage> {
    let handle = match check_map(maps, policy, principal, &map, kind) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let root = handle.map_or(0, |h| tree_of(&lock(&h)).root());
    vec![ServerMessage::SyncRespRoot {
        map,
        kind,
        root: Hash64(root),
    }]
}

/// `MERKLE_REQ_BUCKET`: the child hashes of each requested inner node.
pub(crate) fn buckets(
    maps: &Maps,
    policy: &dyn Policy,
    principal: &Principal,
    map: String,
    kind: WireMapKind,
    paths: Vec<WireMerklePath>,
) -> Vec<ServerMessage> {
    let handle = match check_map(maps, policy, principal, &map, kind) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let empty = MerkleTree::default();
    let guard = handle.as_ref().map(lock);
    let tree = guard.as_deref().map_or(&empty, tree_of);
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        match BucketHashes::from_tree(tree, MerklePath::from(path)) {
            Ok(b) => out.push(b),
            Err(e) => {
                return error(
                    ErrorCode::InvalidSyncRequest,
                    format!("path {}/{}: {e}", path.level, path.index),
                    &map,
                    kind,
                );
            }
        }
    }
    vec![ServerMessage::SyncRespBuckets {
        map,
        kind,
        buckets: out,
    }]
}

/// `SYNC_REQ_LEAF`: the server's records for the keys whose entry hash
/// differs from the client's digests, and the keys whose client state the
/// server wants, as `SYNC_RESP_LEAF` messages that each encode within
/// `codec`'s message size limit (see [`pack`]).
pub(crate) fn leaves(
    maps: &Maps,
    policy: &dyn Policy,
    principal: &Principal,
    map: String,
    kind: WireMapKind,
    leaves: Vec<WireLeafDigest>,
    codec: &Codec,
) -> Vec<ServerMessage> {
    let handle = match check_map(maps, policy, principal, &map, kind) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let empty = MerkleTree::default();
    // The client's digests, sorted and deduplicated per bucket (the diff
    // needs sorted input; the client's order is not trusted).
    let mut client: BTreeMap<MerklePath, Vec<(String, u64)>> = BTreeMap::new();
    for leaf in leaves {
        let path = MerklePath::from(leaf.path);
        if !empty.is_leaf(path) {
            return error(
                ErrorCode::InvalidSyncRequest,
                format!("path {}/{} is not a leaf bucket", path.level, path.index),
                &map,
                kind,
            );
        }
        let entries = client.entry(path).or_default();
        entries.extend(leaf.entries.into_iter().map(|e| (e.key, e.hash.0)));
    }
    for entries in client.values_mut() {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
    }
    let paths: Vec<MerklePath> = client.keys().copied().collect();

    let mut lww: Vec<LwwKeyRecord> = Vec::new();
    let mut or: Vec<OrKeyEntry> = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    if let Some(handle) = &handle {
        let data = lock(handle);
        let server = match &*data {
            MapData::Lww(m) => m.leaf_digests(&paths),
            MapData::Or(m) => m.leaf_digests(&paths),
        };
        for digest in server {
            let theirs = client.get(&digest.path).map_or(&[][..], Vec::as_slice);
            for key in merkle::diff_leaf(&digest.entries, theirs) {
                if theirs.binary_search_by(|e| e.0.as_str().cmp(&key)).is_ok() {
                    wanted.push(key.clone());
                }
                // Only what the principal may read leaves the server, with
                // denied fields stripped (the same rule as live queries).
                match &*data {
                    MapData::Lww(m) => {
                        let Some(record) = m.get(&key) else { continue };
                        let Some(visible) =
                            crate::live::visible_record(policy, principal, &map, &key, record)
                        else {
                            continue;
                        };
                        if let Ok(wire) = WireLwwRecord::try_from(visible.as_ref()) {
                            lww.push(LwwKeyRecord { key, record: wire });
                        }
                    }
                    MapData::Or(m) => {
                        let Some(entry) = m.get(&key) else { continue };
                        let items: Vec<topgun_core::OrItem> = entry
                            .items()
                            .filter_map(|item| {
                                let value = policy.read_view(principal, &map, &key, &item.value)?;
                                Some(topgun_core::OrItem {
                                    value: value.into_owned(),
                                    tag: item.tag,
                                    ttl_ms: item.ttl_ms,
                                })
                            })
                            .collect();
                        // Tombstones alone carry no values: they go out when
                        // the key itself may be read.
                        let key_readable = matches!(
                            policy.decide_record(principal, Action::Read, &map, &key, None, None),
                            Decision::Allow
                        );
                        if items.is_empty() && !key_readable {
                            continue;
                        }
                        let visible = topgun_core::OrEntry::from_parts(items, entry.tombstones());
                        if let Ok(wire) = WireOrEntry::try_from(&visible) {
                            or.push(OrKeyEntry { key, entry: wire });
                        }
                    }
                }
            }
        }
    } else {
        // The server holds nothing: it wants every key the client has.
        wanted.extend(client.into_values().flatten().map(|(k, _)| k));
    }

    match MapKind::from(kind) {
        MapKind::Lww => pack(codec, map, lww, wanted, LeafRecords::Lww),
        MapKind::Or => pack(codec, map, or, wanted, LeafRecords::Or),
    }
}

/// What one more element costs on top of its own encoding: JSON's comma.
const SEPARATOR: usize = 1;

/// How much a sequence's length prefix can grow past the one of an empty
/// sequence: a bincode varint takes 1 to 9 bytes.
const LENGTH_GROWTH: usize = 8;

/// Splits one answer into `SYNC_RESP_LEAF` messages that each encode within
/// `codec`'s `max_message_bytes`: greedily, in order, with each record's
/// size measured by encoding it in a message of its own (a record's bytes
/// do not depend on its neighbours in either encoding, so the sum bounds a
/// message's size). The wanted keys go into the last message, which alone
/// has `last: true`; when they do not fit beside the remaining records, the
/// records end one message earlier. An answer with nothing to send is one
/// message with empty lists.
///
/// A record that does not fit any message by itself (a value nearly as
/// large as the limit) cannot be sent: it is left out and logged, and the
/// client stays behind on that key until the limit is raised. Wanted keys
/// always fit: the client's request listed each of them with its hash
/// under the same limit (should they not, they are spread over the final
/// messages, which a client accumulates until `last`).
fn pack<T: Clone>(
    codec: &Codec,
    map: String,
    records: Vec<T>,
    wanted: Vec<String>,
    wrap: fn(Vec<T>) -> LeafRecords,
) -> Vec<ServerMessage> {
    let max = codec.max_message_bytes();
    // The encoded size of one message, or `usize::MAX` when it cannot be
    // encoded (too large, or a value the wire refuses).
    let size = |records: Vec<T>, wanted_keys: Vec<String>| -> usize {
        let msg = ServerMessage::SyncRespLeaf {
            map: map.clone(),
            records: wrap(records),
            wanted_keys,
            last: false,
        };
        codec
            .encode_server(&msg)
            .map_or(usize::MAX, |bytes| bytes.len())
    };
    let message =
        |records: Vec<T>, wanted_keys: Vec<String>, last: bool| ServerMessage::SyncRespLeaf {
            map: map.clone(),
            records: wrap(records),
            wanted_keys,
            last,
        };
    // A message with empty lists, and the most its records' length prefix
    // can add.
    let base = size(Vec::new(), Vec::new());
    let empty = base.saturating_add(LENGTH_GROWTH);
    // What an element adds to a message: its own bytes and a separator.
    let cost_of = |records: Vec<T>, wanted_keys: Vec<String>| {
        size(records, wanted_keys)
            .saturating_sub(base)
            .saturating_add(SEPARATOR)
    };

    let mut out = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut used = empty;
    for record in records {
        let cost = cost_of(vec![record.clone()], Vec::new());
        if empty.saturating_add(cost) > max {
            tracing::warn!(
                map = %map,
                max_message_bytes = max,
                "a sync record does not fit in any message; it is left out of the answer"
            );
            continue;
        }
        if used.saturating_add(cost) > max {
            out.push(message(std::mem::take(&mut current), Vec::new(), false));
            used = empty;
        }
        used += cost;
        current.push(record);
    }

    // The wanted keys as a whole: exact, separators and length prefix
    // included.
    let wanted_cost = size(Vec::new(), wanted.clone()).saturating_sub(base);
    if used.saturating_add(wanted_cost) <= max {
        out.push(message(current, wanted, true));
        return out;
    }
    if !current.is_empty() {
        out.push(message(current, Vec::new(), false));
    }
    if empty.saturating_add(wanted_cost) <= max {
        out.push(message(Vec::new(), wanted, true));
        return out;
    }
    // Not reached with a well-formed request (see above); kept so that an
    // answer never exceeds the limit.
    let keys_empty = empty.saturating_add(LENGTH_GROWTH);
    let mut keys: Vec<String> = Vec::new();
    let mut used = keys_empty;
    for key in wanted {
        let cost = cost_of(Vec::new(), vec![key.clone()]);
        if !keys.is_empty() && used.saturating_add(cost) > max {
            out.push(message(Vec::new(), std::mem::take(&mut keys), false));
            used = keys_empty;
        }
        used = used.saturating_add(cost);
        keys.push(key);
    }
    out.push(message(Vec::new(), keys, true));
    out
}

#[cfg(test)]
mod tests;
