//! Model-based property tests: random commit sequences against a `BTreeMap`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Model, WEIRD_MAPS, apply, check, open_sled, tempdir};
use crate::store::{MemoryStore, Store, Write};

#[derive(Debug, Clone)]
enum Step {
    Commit(Vec<Write>),
    Meta(String, Option<Vec<u8>>),
}

fn write() -> impl Strategy<Value = Write> {
    let map = prop::sample::select(&WEIRD_MAPS[..7]);
    let key = prop::sample::select(&["", "a", "b", "ü/ß:.", "\u{0}"][..]);
    let value = prop::collection::vec(any::<u8>(), 0..16);
    prop_oneof![
        3 => (map.clone(), key.clone(), value).prop_map(|(m, k, v)| Write::put(m, k, v)),
        1 => (map, key).prop_map(|(m, k)| Write::delete(m, k)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let meta_key = prop::sample::select(&["node_id", "policies", ""][..]);
    prop_oneof![
        6 => prop::collection::vec(write(), 0..8).prop_map(Step::Commit),
        1 => (meta_key, prop::option::of(prop::collection::vec(any::<u8>(), 0..8)))
            .prop_map(|(k, v)| Step::Meta(k.to_owned(), v)),
    ]
}

type MetaModel = BTreeMap<String, Vec<u8>>;

async fn run(store: &dyn Store, steps: &[Step], model: &mut Model, meta: &mut MetaModel) {
    for step in steps {
        match step {
            Step::Commit(batch) => {
                apply(model, batch);
                store.commit(batch.clone()).await.expect("commit");
            }
            Step::Meta(key, Some(value)) => {
                meta.insert(key.clone(), value.clone());
                store.put_meta(key, value.clone()).await.expect("put_meta");
            }
            Step::Meta(key, None) => {
                meta.remove(key);
                store.delete_meta(key).await.expect("delete_meta");
            }
        }
    }
}

async fn check_meta(store: &dyn Store, meta: &MetaModel) {
    for key in ["node_id", "policies", ""] {
        assert_eq!(
            store.get_meta(key).await.expect("get_meta"),
            meta.get(key).cloned(),
            "meta {key:?}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #[test]
    fn memory_store_matches_model(steps in prop::collection::vec(step(), 0..24)) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let (mut model, mut meta) = (Model::new(), MetaModel::new());
            run(&store, &steps, &mut model, &mut meta).await;
            check(&store, &model).await;
            check_meta(&store, &meta).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Also closes and reopens the directory: everything acknowledged is
    /// still there.
    #[test]
    fn sled_store_matches_model_across_reopen(steps in prop::collection::vec(step(), 0..24)) {
        runtime().block_on(async {
            let dir = tempdir();
            let (mut model, mut meta) = (Model::new(), MetaModel::new());
            let store = open_sled(dir.path());
            run(&*store, &steps, &mut model, &mut meta).await;
            check(&*store, &model).await;
            check_meta(&*store, &meta).await;
            store.flush_and_close().await.expect("close");
            drop(store);

            let store = open_sled(dir.path());
            check(&*store, &model).await;
            check_meta(&*store, &meta).await;
            store.flush_and_close().await.expect("close");
        });
    }
}
