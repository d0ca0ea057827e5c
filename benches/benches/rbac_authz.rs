//! RBAC: the per-op cost of an authorization decision with 100 and 1,000
//! policies, against the decision of the built-in policy that allows every
//! authenticated principal (no rules to evaluate).

#[allow(dead_code)] // each bench target uses a part of it
mod harness;

use std::time::Duration;

use criterion::{Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topgun_benches::{Comparison, Tally, print_header, quick};
use topgun_core::Value;
use topgun_server::authz::{Action, AllowAuthenticated, Decision, Policy, Principal};
use topgun_server::rbac::{PolicySet, RbacPolicy};

/// An engine enforcing [`harness::policy_mix`] of `n` rules.
fn policies(n: usize) -> RbacPolicy {
    RbacPolicy::new(
        PolicySet::new(harness::policy_mix(n)).unwrap_or_else(|e| panic!("bench policies: {e}")),
    )
}

struct Request {
    principal: Principal,
    map: String,
    key: String,
    old: Value,
}

fn requests(n: usize, policies: usize, rng: &mut ChaCha8Rng) -> Vec<Request> {
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..policies);
            let sub = format!("user{}", rng.random_range(0..100));
            let mut claims = serde_json::Map::new();
            claims.insert("tenant".into(), serde_json::Value::from("acme"));
            let map = match i % 4 {
                0 => format!("app{i}:docs:x"),
                1 => format!("notes{i}:{sub}"),
                2 => format!("acme:t{i}:k"),
                _ => format!("app{}:secret:x", i - 3),
            };
            Request {
                principal: Principal {
                    sub: sub.clone(),
                    roles: vec![format!("role{}", i % 10)],
                    claims,
                    authenticated: true,
                },
                map,
                key: "k1".into(),
                old: Value::Map(
                    [("owner".to_owned(), Value::from(sub.as_str()))]
                        .into_iter()
                        .collect(),
                ),
            }
        })
        .collect()
}

fn main() {
    harness::echo_child_or_continue();
    let n = if quick() { 10_000 } else { 100_000 };
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(if quick() { 100 } else { 500 }))
        .measurement_time(Duration::from_secs(if quick() { 1 } else { 3 }));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut rows = Vec::new();
    let limit = Tally::default();
    let reqs = requests(n, 100, &mut rng);
    {
        let mut g = c.benchmark_group("rbac");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("allow_authenticated", |b| {
            b.iter_custom(|iters| {
                limit.measure(
                    iters,
                    || (),
                    |()| {
                        let p = AllowAuthenticated;
                        reqs.iter()
                            .filter(|r| {
                                p.decide_record(
                                    &r.principal,
                                    Action::Write,
                                    &r.map,
                                    &r.key,
                                    Some(&r.old),
                                    None,
                                ) == Decision::Allow
                            })
                            .count()
                    },
                )
            })
        });
        g.finish();
    }
    for size in [100usize, 1_000] {
        let policy = policies(size);
        let reqs = requests(n, size, &mut rng);
        let tally = Tally::default();
        {
            let mut g = c.benchmark_group(format!("rbac_{size}"));
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function("decide_record_write", |b| {
                b.iter_custom(|iters| {
                    tally.measure(
                        iters,
                        || (),
                        |()| {
                            reqs.iter()
                                .filter(|r| {
                                    policy.decide_record(
                                        &r.principal,
                                        Action::Write,
                                        &r.map,
                                        &r.key,
                                        Some(&r.old),
                                        None,
                                    ) == Decision::Allow
                                })
                                .count()
                        },
                    )
                })
            });
            g.finish();
        }
        rows.push((size, tally));
    }
    c.final_summary();

    print_header(
        "RBAC",
        "per-op authorization cost (write with a stored value)",
    );
    for (size, tally) in &rows {
        let name = format!(
            "RBAC {size} policies ({:.0} ns/op)",
            tally.mean().as_nanos() as f64 / n as f64
        );
        Comparison {
            subject: &name,
            measured: tally,
            limit: "no rules",
            limit_measured: &limit,
            elements: n as u64,
            unit: "ops",
            goal_ratio: None,
        }
        .print();
    }
}
