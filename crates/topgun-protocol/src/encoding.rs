//! The encodings a connection can speak, named by WebSocket subprotocol.

use std::fmt;

/// The subprotocol for bincode in binary frames.
pub const SUBPROTOCOL_BINCODE: &str = "topgun.v1.bincode";
/// The subprotocol for JSON in text frames.
pub const SUBPROTOCOL_JSON: &str = "topgun.v1.json";

/// How messages are encoded on one connection, chosen once per connection
/// by WebSocket subprotocol negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// bincode 2 (standard config: varint integers, little endian) in
    /// binary WebSocket frames.
    Bincode,
    /// JSON (UTF-8) in text WebSocket frames.
    Json,
}

impl Encoding {
    /// Every encoding, in the server's order of preference.
    pub const ALL: [Encoding; 2] = [Encoding::Bincode, Encoding::Json];

    /// The WebSocket subprotocol name.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Bincode => SUBPROTOCOL_BINCODE,
            Encoding::Json => SUBPROTOCOL_JSON,
        }
    }

    /// The encoding a subprotocol name stands for (exact, case-sensitive
    /// match).
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.subprotocol() == name)
    }

    /// Picks the first of the client's offered subprotocols (in the order
    /// offered) that this protocol supports.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Encoding> {
        offered
            .into_iter()
            .find_map(|name| Encoding::from_subprotocol(name.trim()))
    }

    /// Whether frames are binary (`true`) or text (`false`).
    pub const fn is_binary(self) -> bool {
        match self {
            Encoding::Bincode => true,
            Encoding::Json => false,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subprotocol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_map_both_ways() {
        for e in Encoding::ALL {
            assert_eq!(Encoding::from_subprotocol(e.subprotocol()), Some(e));
        }
        assert_eq!(Encoding::Bincode.subprotocol(), "topgun.v1.bincode");
        assert_eq!(Encoding::Json.subprotocol(), "topgun.v1.json");
        assert_eq!(Encoding::from_subprotocol("topgun.v1.JSON"), None);
        assert_eq!(Encoding::from_subprotocol("topgun.v2.json"), None);
    }

    #[test]
    fn negotiation_takes_the_first_supported_offer() {
        assert_eq!(
            Encoding::negotiate(["graphql-ws", " topgun.v1.json", "topgun.v1.bincode"]),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::negotiate(["graphql-ws"]), None);
        assert_eq!(Encoding::negotiate([]), None);
    }
}
