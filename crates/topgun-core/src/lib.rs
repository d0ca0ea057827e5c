//! The pure heart of TopGun-RS: a hybrid logical clock, the two replicated
//! map types (last-writer-wins and observed-remove), the Merkle trees that
//! let two replicas find what differs between them, and the record and op
//! vocabulary the other crates share.
//!
//! Main types: [`Hlc`] and [`Timestamp`]; [`LwwMap`] and [`OrMap`]; [`MerkleTree`];
//! [`Value`], [`LwwRecord`], [`OrItem`], [`OrTombstone`], [`OpKind`] and
//! [`CallerOrigin`].
//!
//! Non-goals: this crate performs no I/O, never reads a clock (time is always
//! a parameter), spawns no tasks and knows nothing of the wire format; it has
//! no serde derives, so the protocol can change without touching it.

pub mod hlc;
pub mod lww;
pub mod merkle;
pub mod or;
pub mod query;
pub mod record;
pub mod value;

pub use hlc::{Hlc, HlcError, NodeId, Timestamp};
pub use lww::LwwMap;
pub use merkle::{MerklePath, MerkleTree};
pub use or::{OrEntry, OrMap};
pub use query::{CmpOp, Filter, Query, SortKey};
pub use record::{CallerOrigin, LwwRecord, MapKind, OpKind, OrItem, OrTombstone};
pub use value::{MAX_VALUE_DEPTH, Value};
