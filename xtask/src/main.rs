//! Project chores: `cargo xtask <command>`.
fn main() {}
