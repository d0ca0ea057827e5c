//! B1: merging random records into the core CRDT maps, against a plain
//! `HashMap` insert of the same records (goal: at least half its rate).

use std::collections::HashMap;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topgun_benches::{Comparison, Tally, print_header, quick};
use topgun_core::{LwwMap, LwwRecord, NodeId, OrItem, OrMap, Timestamp, Value};

const NODES: u64 = 8;

fn records(n: usize, key_space: usize, rng: &mut ChaCha8Rng) -> Vec<(String, LwwRecord)> {
    (0..n)
        .map(|i| {
            let key = format!("key-{}", rng.random_range(0..key_space));
            let ts = Timestamp::new(
                1_700_000_000_000 + rng.random_range(0..1_000_000),
                u32::try_from(i % 1_000).unwrap_or(0),
                NodeId(rng.random_range(0..NODES)),
            );
            (key, LwwRecord::put(Value::Int(rng.random()), ts))
        })
        .collect()
}

/// An OR-map workload: 70% adds, 30% removes of a tag added earlier.
enum OrOp {
    Add(String, OrItem),
    Remove(String, Timestamp),
}

fn or_ops(n: usize, key_space: usize, rng: &mut ChaCha8Rng) -> Vec<OrOp> {
    let mut added: Vec<(String, Timestamp)> = Vec::new();
    (0..n)
        .map(|i| {
            if !added.is_empty() && rng.random_bool(0.3) {
                let (k, t) = added.swap_remove(rng.random_range(0..added.len()));
                OrOp::Remove(k, t)
            } else {
                let key = format!("key-{}", rng.random_range(0..key_space));
                let tag = Timestamp::new(1_700_000_000_000 + i as u64, 0, NodeId(i as u64 % NODES));
                added.push((key.clone(), tag));
                OrOp::Add(
                    key,
                    OrItem {
                        value: Value::Int(rng.random()),
                        tag,
                        ttl_ms: None,
                    },
                )
            }
        })
        .collect()
}

fn main() {
    let n = if quick() { 100_000 } else { 1_000_000 };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let lww_input = records(n, n / 2, &mut rng);
    let or_input = or_ops(n, n / 4, &mut rng);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(if quick() { 100 } else { 1_000 }))
        .measurement_time(Duration::from_secs(if quick() { 2 } else { 10 }));

    let (lww, or, limit_lww, limit_or) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    {
        let mut g = c.benchmark_group("b1");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("hashmap_insert_lww_records", |b| {
            b.iter_custom(|iters| {
                limit_lww.measure(
                    iters,
                    || lww_input.clone(),
                    |input| {
                        let mut m = HashMap::new();
                        for (k, r) in input {
                            m.insert(k, r);
                        }
                        m
                    },
                )
            })
        });
        g.bench_function("lww_merge", |b| {
            b.iter_custom(|iters| {
                lww.measure(
                    iters,
                    || lww_input.clone(),
                    |input| {
                        let mut m = LwwMap::new();
                        for (k, r) in input {
                            m.merge(k, r);
                        }
                        m
                    },
                )
            })
        });
        g.bench_function("hashmap_insert_or_items", |b| {
            b.iter_custom(|iters| {
                limit_or.measure(
                    iters,
                    || or_ops_clone(&or_input),
                    |input| {
                        let mut m: HashMap<String, Vec<OrItem>> = HashMap::new();
                        for op in input {
                            match op {
                                OrOp::Add(k, item) => m.entry(k).or_default().push(item),
                                OrOp::Remove(k, t) => {
                                    m.insert(
                                        k,
                                        vec![OrItem {
                                            value: Value::Null,
                                            tag: t,
                                            ttl_ms: None,
                                        }],
                                    );
                                }
                            }
                        }
                        m
                    },
                )
            })
        });
        g.bench_function("or_add_remove_mix", |b| {
            b.iter_custom(|iters| {
                or.measure(
                    iters,
                    || or_ops_clone(&or_input),
                    |input| {
                        let mut m = OrMap::new();
                        for op in input {
                            match op {
                                OrOp::Add(k, item) => {
                                    m.add(k, item);
                                }
                                OrOp::Remove(k, t) => {
                                    m.remove(&k, &[t], Timestamp::new(t.millis + 1, 0, t.node));
                                }
                            }
                        }
                        m
                    },
                )
            })
        });
        g.finish();
    }
    c.final_summary();

    print_header(
        "B1",
        &format!("core merge, {n} records (goal: >= 0.5 of HashMap insert)"),
    );
    Comparison {
        subject: "B1 LWW merge (with Merkle upkeep)",
        measured: &lww,
        limit: "HashMap insert",
        limit_measured: &limit_lww,
        elements: n as u64,
        unit: "ops",
        goal_ratio: Some(0.5),
    }
    .print();
    Comparison {
        subject: "B1 OR add/remove mix",
        measured: &or,
        limit: "HashMap insert",
        limit_measured: &limit_or,
        elements: n as u64,
        unit: "ops",
        goal_ratio: Some(0.5),
    }
    .print();
}

fn or_ops_clone(ops: &[OrOp]) -> Vec<OrOp> {
    ops.iter()
        .map(|op| match op {
            OrOp::Add(k, i) => OrOp::Add(k.clone(), i.clone()),
            OrOp::Remove(k, t) => OrOp::Remove(k.clone(), *t),
        })
        .collect()
}
