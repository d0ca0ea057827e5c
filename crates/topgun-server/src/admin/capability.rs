//! Admin capabilities: what an admin token allows, one name per area.

use std::fmt;

/// One thing an admin token may do. Every admin endpoint requires exactly
/// one capability; a token carries an explicit list (`caps`), never a role
/// that implies them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `policy.admin`: read and change the RBAC policies.
    PolicyAdmin,
    /// `keys.admin`: list, add, rotate and deactivate JWT verification keys.
    KeysAdmin,
    /// `cluster.read`: read the node's status.
    ClusterRead,
    /// `cluster.admin`: change the cluster (no endpoint yet).
    ClusterAdmin,
    /// `data.read`: read data-plane metadata such as the list of maps.
    DataRead,
}

impl Capability {
    /// Every capability, in a fixed order.
    pub const ALL: [Capability; 5] = [
        Capability::PolicyAdmin,
        Capability::KeysAdmin,
        Capability::ClusterRead,
        Capability::ClusterAdmin,
        Capability::DataRead,
    ];

    /// The name used in tokens and in the API, e.g. `"keys.admin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PolicyAdmin => "policy.admin",
            Self::KeysAdmin => "keys.admin",
            Self::ClusterRead => "cluster.read",
            Self::ClusterAdmin => "cluster.admin",
            Self::DataRead => "data.read",
        }
    }

    /// Parses a name (exact match); unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
