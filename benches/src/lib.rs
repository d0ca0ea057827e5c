//! Shared pieces of the TopGun-RS benchmarks (B1-B8 in the performance
//! guide): reading criterion's estimates back and printing each figure next
//! to the limit it is measured against.
