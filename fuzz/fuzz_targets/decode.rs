//! Decodes arbitrary bytes as both message types in both encodings, and
//! as a stored record (the server's on-disk format). A
//! decode may fail (with a typed error) but never panic, abort or overflow
//! the stack; whatever decodes must encode again and decode to an equal
//! message.
//!
//! `tests/protocol/fuzz_crashers.rs` in topgun-protocol runs the same
//! checks over the committed crash corpus as an ordinary test.

#![no_main]

use libfuzzer_sys::fuzz_target;
use topgun_protocol::{
    ClientMessage, Codec, Encoding, Message, ServerMessage, decode_stored, encode_stored,
};

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(codec: Codec, data: &[u8]) {
    if let Ok(msg) = codec.decode::<M>(data) {
        let bytes = codec.encode(&msg).unwrap_or_else(|e| {
            panic!(
                "{:?}: decoded {msg:?} does not encode: {e}",
                codec.encoding()
            )
        });
        let back: M = codec.decode(&bytes).unwrap_or_else(|e| {
            panic!(
                "{:?}: re-encoded {msg:?} does not decode: {e}",
                codec.encoding()
            )
        });
        assert_eq!(
            back,
            msg,
            "{:?}: round trip changed the message",
            codec.encoding()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)] {
        round_trip::<ClientMessage>(codec, data);
        round_trip::<ServerMessage>(codec, data);
    }
    if let Ok(record) = decode_stored(data) {
        let bytes = encode_stored(&record)
            .unwrap_or_else(|e| panic!("stored {record:?} does not encode: {e}"));
        assert_eq!(decode_stored(&bytes).as_ref(), Ok(&record));
    }
});
