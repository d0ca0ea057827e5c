//! B2: encoding and decoding `OP_BATCH` (being written with the protocol crate).
fn main() {}
