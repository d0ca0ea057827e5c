//! Durable storage behind the `Store` seam (being written).
