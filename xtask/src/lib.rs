//! Library half of `xtask`: chores that tests reuse (the development PKI).

pub mod certs;
