//! Cross-crate end-to-end tests for TopGun-RS: real servers, real sockets,
//! real processes. The tests live in `tests/` beside this file; this library
//! will hold the harness they share (starting servers, minting tokens) once
//! the server exists.
