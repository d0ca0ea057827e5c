//! The server side of the Merkle sync exchange: `SYNC_INIT`,
//! `MERKLE_REQ_BUCKET` and `SYNC_REQ_LEAF`, answered from a map's replica.
//!
//! Every answer is computed under the map's lock and sent after it is
//! released. Records the principal may not read are never sent. Large leaf
//! answers are split over several `SYNC_RESP_LEAF` messages so none exceeds
//! the message size limit.

use std::collections::BTreeMap;

use topgun_core::merkle::{self, MerkleTree};
use topgun_core::{MapKind, MerklePath};
use topgun_protocol::{
    BucketHashes, ErrorCode, Hash64, LeafRecords, LwwKeyRecord, OrKeyEntry, ServerMessage,
    WireLeafDigest, WireLwwRecord, WireMapKind, WireMerklePath, WireOrEntry,
};

use crate::authz::{Action, Decision, Policy, Principal, is_reserved_map};
use crate::state::{MapData, Maps, lock};

fn error(code: ErrorCode, message: impl Into<String>) -> Vec<ServerMessage> {
    vec![ServerMessage::Error {
        code,
        message: message.into(),
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
        ));
    }
    if let Decision::Deny(why) = policy.decide(principal, Action::Read, map, None) {
        return Err(error(ErrorCode::Forbidden, why));
    }
    let Some(handle) = maps.get(map) else {
        return Ok(None);
    };
    let actual = lock(&handle).kind();
    if MapKind::from(kind) != actual {
        return Err(error(
            ErrorCode::InvalidSyncRequest,
            format!("map {map:?} is a {actual:?} map"),
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
/// server wants. `max_bytes` bounds each answer message (approximately:
/// record sizes are estimated, not encoded).
pub(crate) fn leaves(
    maps: &Maps,
    policy: &dyn Policy,
    principal: &Principal,
    map: String,
    kind: WireMapKind,
    leaves: Vec<WireLeafDigest>,
    max_bytes: usize,
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
    let mut sizes: Vec<usize> = Vec::new();
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
                if !matches!(
                    policy.decide(principal, Action::Read, &map, Some(&key)),
                    Decision::Allow
                ) {
                    continue;
                }
                match &*data {
                    MapData::Lww(m) => {
                        if let Some(record) = m.get(&key) {
                            if let Ok(wire) = WireLwwRecord::try_from(record) {
                                sizes.push(
                                    key.len()
                                        + 32
                                        + record.value.as_ref().map_or(0, |v| v.approx_size()),
                                );
                                lww.push(LwwKeyRecord { key, record: wire });
                            }
                        }
                    }
                    MapData::Or(m) => {
                        if let Some(entry) = m.get(&key) {
                            if let Ok(wire) = WireOrEntry::try_from(entry) {
                                sizes.push(
                                    key.len()
                                        + entry
                                            .items()
                                            .map(|i| 48 + i.value.approx_size())
                                            .sum::<usize>()
                                        + 32 * entry.tombstones().len(),
                                );
                                or.push(OrKeyEntry { key, entry: wire });
                            }
                        }
                    }
                }
            }
        }
    } else {
        // The server holds nothing: it wants every key the client has.
        wanted.extend(client.into_values().flatten().map(|(k, _)| k));
    }

    // Split into messages of at most about `max_bytes` each.
    let budget = (max_bytes / 2).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let total = lww.len().max(or.len());
    while start < total || out.is_empty() {
        let mut end = start;
        let mut used = 0;
        while end < total && (end == start || used + sizes[end] <= budget) {
            used += sizes[end];
            end += 1;
        }
        let records = if MapKind::from(kind) == MapKind::Lww {
            LeafRecords::Lww(lww.drain(..end - start).collect())
        } else {
            LeafRecords::Or(or.drain(..end - start).collect())
        };
        out.push(ServerMessage::SyncRespLeaf {
            map: map.clone(),
            records,
            wanted_keys: Vec::new(),
        });
        start = end;
    }
    // Wanted keys travel in the last message: when it arrives, the client
    // has every record of this answer.
    if let Some(ServerMessage::SyncRespLeaf { wanted_keys, .. }) = out.last_mut() {
        *wanted_keys = wanted;
    }
    out
}
