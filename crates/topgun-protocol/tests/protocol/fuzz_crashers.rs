//! Replays every input in `tests/fuzz-crashers/`: inputs that once crashed
//! or hung a decoder, or that were written by hand to attack one. Each must
//! decode to a message that round-trips, or fail with a typed error; a
//! panic, an abort or a stack overflow fails the test run.

use std::path::PathBuf;

use topgun_protocol::*;

fn crashers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers")
}

/// What the fuzz target does with one input, as a plain function: decode
/// as both message types in both encodings and as a stored record;
/// whatever decodes must encode and decode back to itself.
pub fn exercise(input: &[u8]) -> Vec<String> {
    let mut outcomes = Vec::new();
    for codec in [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)] {
        outcomes.push(round_trip::<ClientMessage>(codec, input));
        outcomes.push(round_trip::<ServerMessage>(codec, input));
    }
    outcomes.push(match decode_stored(input) {
        Ok(record) => {
            let bytes = encode_stored(&record).expect("a decoded record encodes");
            assert_eq!(decode_stored(&bytes).as_ref(), Ok(&record));
            "stored: ok".to_owned()
        }
        Err(e) => format!("stored: {}", crate::malformed::shape(&e)),
    });
    outcomes
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(codec: Codec, input: &[u8]) -> String {
    match codec.decode::<M>(input) {
        Ok(msg) => {
            let bytes = codec.encode(&msg).expect("a decoded message encodes");
            let back: M = codec.decode(&bytes).expect("an encoded message decodes");
            assert_eq!(back, msg);
            format!("{:?}: ok {}", codec.encoding(), msg.name())
        }
        Err(e) => format!("{:?}: {}", codec.encoding(), crate::malformed::shape(&e)),
    }
}

#[test]
fn fuzz_crashers_are_handled() {
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(crashers_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    entries.sort();
    for path in entries {
        let input = std::fs::read(&path).unwrap();
        let outcomes = exercise(&input);
        // Every input in the corpus is hostile: none of them is a valid
        // message in the encoding it targets, so at least one decode
        // fails, and nothing panicked getting here.
        assert!(
            outcomes.iter().any(|o| !o.contains(": ok")),
            "{}: {outcomes:?}",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 8, "only {count} crashers found");
}
