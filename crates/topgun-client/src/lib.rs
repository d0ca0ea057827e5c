//! The native TopGun-RS client: an offline replica of the maps an
//! application uses, the connection layer, storage adapters and the
//! `EncryptedStorageAdapter`.
//!
//! Not built yet: this crate root only reserves the name and its place in the
//! dependency graph (`core <- protocol <- client`). See `ARCHITECTURE.md`.
