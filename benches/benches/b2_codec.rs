//! B2: encoding and decoding an `OP_BATCH` of 10 puts with 64-byte values,
//! in bincode and in JSON, against a `memcpy` of the same bytes.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use topgun_benches::{Comparison, Tally, print_header, quick};
use topgun_protocol::{
    ClientMessage, Codec, Encoding, Op, WireNodeId, WireOpKind, WireTimestamp, WireValue,
    WriteConcern,
};

fn batch() -> ClientMessage {
    let ops = (0..10u64)
        .map(|i| Op {
            op_id: 1_000 + i,
            map: "todos".to_owned(),
            key: format!("key-{i:04}"),
            timestamp: WireTimestamp {
                millis: 1_764_000_000_000 + i,
                counter: 0,
                node: WireNodeId(0x0123_4567_89ab_cdef),
            },
            kind: WireOpKind::Put {
                value: WireValue::from("x".repeat(64)),
                ttl_ms: None,
            },
        })
        .collect();
    ClientMessage::OpBatch {
        ops,
        write_concern: WriteConcern::Durable,
    }
}

fn main() {
    let msg = batch();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(if quick() { 10 } else { 50 })
        .warm_up_time(Duration::from_millis(if quick() { 100 } else { 1_000 }))
        .measurement_time(Duration::from_secs(if quick() { 1 } else { 5 }));
    // Messages per routine call, so the per-call overhead of the tally is
    // negligible.
    const PER_CALL: u64 = 1_000;
    let mut rows = Vec::new();
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let codec = Codec::new(encoding);
        let bytes = codec.encode_client(&msg).unwrap_or_default();
        let (subject, limit) = (Tally::default(), Tally::default());
        {
            let mut g = c.benchmark_group(format!("b2_{encoding:?}").to_lowercase());
            g.throughput(Throughput::Elements(PER_CALL));
            g.bench_function("encode_decode", |b| {
                b.iter_custom(|iters| {
                    subject.measure(
                        iters,
                        || (),
                        |()| {
                            for _ in 0..PER_CALL {
                                let frame = codec.encode_client(&msg).unwrap_or_default();
                                let back = codec.decode_client(std::hint::black_box(&frame));
                                std::hint::black_box(back.is_ok());
                            }
                        },
                    )
                })
            });
            g.bench_function("memcpy_same_bytes", |b| {
                b.iter_custom(|iters| {
                    limit.measure(
                        iters,
                        || (),
                        |()| {
                            // Two copies: one for encode, one for decode.
                            for _ in 0..PER_CALL {
                                let copy = std::hint::black_box(&bytes).to_vec();
                                let again = std::hint::black_box(&copy).clone();
                                std::hint::black_box(again);
                            }
                        },
                    )
                })
            });
            g.finish();
        }
        rows.push((encoding, bytes.len(), subject, limit));
    }
    c.final_summary();

    print_header(
        "B2",
        "codec: encode + decode OP_BATCH of 10 puts, 64-byte values (goal: reported)",
    );
    for (encoding, len, subject, limit) in &rows {
        let name = format!("B2 {encoding:?} ({len} B/msg)");
        Comparison {
            subject: &name,
            measured: subject,
            limit: "memcpy x2",
            limit_measured: limit,
            elements: PER_CALL,
            unit: "msgs",
            goal_ratio: None,
        }
        .print();
        let mb = subject.rate(PER_CALL) * *len as f64 / 1e6;
        println!("{:<34} {mb:>10.1} MB/s of frames", "");
    }
}
