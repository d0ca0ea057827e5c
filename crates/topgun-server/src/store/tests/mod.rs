//! Tests of the storage layer: one conformance suite run against every backend,
//! model-based property tests, sled durability and group commit, fault
//! injection, and a `kill -9` crash test.

mod conformance;
mod crash;
mod faulty;
mod model;
mod sled;

use std::{collections::BTreeMap, sync::Arc};

use super::{Record, SledConfig, SledStore, Store, Write};

/// Map names that must all round-trip untouched: map names are data.
pub(super) const WEIRD_MAPS: &[&str] = &[
    "",
    "plain",
    "notes.v2",
    "notes:alice",
    "a/b/c",
    "ünïcødé/地图/🗺️",
    " leading space",
    "\u{0}meta",
    "meta",
    "__sled__default",
    "\u{1}",
    "\u{0}",
];

/// The expected contents: (map, key) -> value.
pub(super) type Model = BTreeMap<(String, String), Vec<u8>>;

/// Applies `batch` to `model` the way a store must.
pub(super) fn apply(model: &mut Model, batch: &[Write]) {
    for write in batch {
        match write {
            Write::Put { map, key, value } => {
                model.insert((map.clone(), key.clone()), value.clone());
            }
            Write::Delete { map, key } => {
                model.remove(&(map.clone(), key.clone()));
            }
        }
    }
}

/// Asserts that `store` holds exactly `model`: scan, per-map loads and the
/// map list.
pub(super) async fn check(store: &dyn Store, model: &Model) {
    let mut scanned = store
        .scan_all()
        .collect_all()
        .await
        .unwrap_or_else(|e| panic!("scan_all failed: {e}"));
    scanned.sort();
    let expected: Vec<Record> = model
        .iter()
        .map(|((map, key), value)| Record {
            map: map.clone(),
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    assert_eq!(scanned, expected, "scan_all differs from the model");

    let mut maps: Vec<String> = model.keys().map(|(map, _)| map.clone()).collect();
    maps.dedup();
    let mut listed = store
        .list_maps()
        .await
        .unwrap_or_else(|e| panic!("list_maps failed: {e}"));
    listed.sort();
    assert_eq!(listed, maps, "list_maps differs from the model");

    for map in maps
        .iter()
        .map(String::as_str)
        .chain(WEIRD_MAPS.iter().copied())
    {
        let mut loaded = store
            .load_map(map)
            .collect_all()
            .await
            .unwrap_or_else(|e| panic!("load_map({map:?}) failed: {e}"));
        loaded.sort();
        let want: Vec<Record> = expected.iter().filter(|r| r.map == map).cloned().collect();
        assert_eq!(loaded, want, "load_map({map:?}) differs from the model");
    }
}

/// Opens a sled store in `dir` with default limits.
pub(super) fn open_sled(dir: &std::path::Path) -> Arc<SledStore> {
    Arc::new(SledStore::open(SledConfig::new(dir)).unwrap_or_else(|e| panic!("open {dir:?}: {e}")))
}

/// A fresh temporary directory.
pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}
