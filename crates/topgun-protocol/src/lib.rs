//! TopGun-RS wire protocol (being written).
