//! The server's live policy set: durable in the store's metadata, seeded
//! from a policy file at start (config as code), changed at run time by the
//! admin API without a restart.
//!
//! Rules: at start the persisted set is loaded; a policy file, when given,
//! is then applied on top (a file policy replaces a persisted one with the
//! same id, others are kept), and the result is persisted. Every change is
//! validated as a whole set and persisted before it takes effect, so a crash
//! never leaves a set in force that is not on disk.
//!
//! Until the first policy exists the server behaves as without RBAC: any
//! authenticated principal may read and write every non-reserved map. From
//! the first policy on, anything no policy allows is denied.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use topgun_core::Value;

use super::{
    AccessRequest, PolicyDef, PolicyError, PolicyFile, PolicyLoadError, PolicySet, RbacPolicy,
    Verdict,
};
use crate::authz::{Action, AllowAuthenticated, Decision, Policy, Principal};
use crate::store::{Store, StoreError};

/// The metadata key the policy set is persisted under (JSON, the policy
/// file shape).
pub const POLICIES_META_KEY: &str = "rbac/policies";

/// Why the policy set could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The store failed.
    #[error("policy storage: {0}")]
    Store(#[from] StoreError),
    /// The persisted policies could not be read back.
    #[error("persisted policies are unreadable: {0}")]
    Corrupt(String),
    /// The policy file is unusable.
    #[error(transparent)]
    File(#[from] PolicyLoadError),
    /// The resulting set is invalid (the change is not applied).
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// A policy with this id already exists (create only).
    #[error("a policy with id {0:?} already exists")]
    Exists(String),
    /// No policy has this id.
    #[error("no policy with id {0:?}")]
    NotFound(String),
}

/// The policy set in force, with its persistence.
#[derive(Debug)]
pub struct ManagedPolicies {
    rbac: RbacPolicy,
    store: Arc<dyn Store>,
    /// Serializes changes: read the set, change it, persist, swap.
    changes: tokio::sync::Mutex<()>,
}

impl ManagedPolicies {
    /// Loads the persisted set and applies `file` on top of it.
    pub async fn load(store: Arc<dyn Store>, file: Option<&Path>) -> Result<Self, ManageError> {
        let mut defs: Vec<PolicyDef> = match store.get_meta(POLICIES_META_KEY).await? {
            None => Vec::new(),
            Some(bytes) => {
                serde_json::from_slice::<PolicyFile>(&bytes)
                    .map_err(|e| ManageError::Corrupt(e.to_string()))?
                    .policies
            }
        };
        if let Some(path) = file {
            let from_file = PolicySet::from_file(path)?;
            for def in from_file.defs() {
                match defs.iter_mut().find(|d| d.id == def.id) {
                    Some(existing) => *existing = def.clone(),
                    None => defs.push(def.clone()),
                }
            }
        }
        let set = PolicySet::new(defs)?;
        let managed = ManagedPolicies {
            rbac: RbacPolicy::new(PolicySet::empty()),
            store,
            changes: tokio::sync::Mutex::new(()),
        };
        if file.is_some() {
            managed.persist(&set).await?;
        }
        managed.rbac.replace(set);
        Ok(managed)
    }

    async fn persist(&self, set: &PolicySet) -> Result<(), ManageError> {
        let file = PolicyFile {
            policies: set.defs().to_vec(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| ManageError::Corrupt(e.to_string()))?;
        self.store.put_meta(POLICIES_META_KEY, bytes).await?;
        Ok(())
    }

    /// Validates `defs` as the new set, persists it, then puts it in force.
    async fn install(&self, defs: Vec<PolicyDef>) -> Result<(), ManageError> {
        let set = PolicySet::new(defs)?;
        self.persist(&set).await?;
        self.rbac.replace(set);
        Ok(())
    }

    /// The set in force.
    pub fn current(&self) -> Arc<PolicySet> {
        self.rbac.policies()
    }

    /// Adds a policy; fails if its id exists.
    pub async fn create(&self, def: PolicyDef) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let mut defs = self.current().defs().to_vec();
        if defs.iter().any(|d| d.id == def.id) {
            return Err(ManageError::Exists(def.id));
        }
        defs.push(def);
        self.install(defs).await
    }

    /// Replaces the policy with `def.id`; fails if it does not exist.
    pub async fn replace(&self, def: PolicyDef) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let mut defs = self.current().defs().to_vec();
        let Some(slot) = defs.iter_mut().find(|d| d.id == def.id) else {
            return Err(ManageError::NotFound(def.id));
        };
        *slot = def;
        self.install(defs).await
    }

    /// Deletes the policy `id`; fails if it does not exist.
    pub async fn delete(&self, id: &str) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let mut defs = self.current().defs().to_vec();
        let before = defs.len();
        defs.retain(|d| d.id != id);
        if defs.len() == before {
            return Err(ManageError::NotFound(id.to_owned()));
        }
        self.install(defs).await
    }

    /// The RBAC verdict for a request, with the deciding policies (the
    /// dry-run endpoint). While no policy is defined the server does not
    /// enforce it ([`ManagedPolicies::is_open`]).
    pub fn evaluate(&self, req: &AccessRequest<'_>) -> Verdict {
        self.rbac.evaluate(req)
    }

    /// Whether no policy is defined (the server then behaves as without
    /// RBAC).
    pub fn is_open(&self) -> bool {
        self.current().is_empty()
    }
}

/// Each call decides with one snapshot of the set in force: the built-in
/// [`AllowAuthenticated`] while it is empty, the set's rules otherwise.
impl Policy for ManagedPolicies {
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: Option<&str>,
    ) -> Decision {
        let set = self.current();
        if set.is_empty() {
            AllowAuthenticated.decide(principal, action, map, key)
        } else {
            set.decide(principal, action, map, key)
        }
    }

    fn decide_record(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Decision {
        let set = self.current();
        if set.is_empty() {
            AllowAuthenticated.decide_record(principal, action, map, key, old, new)
        } else {
            set.decide_record(principal, action, map, key, old, new)
        }
    }

    fn read_view<'v>(
        &self,
        principal: &Principal,
        map: &str,
        key: &str,
        value: &'v Value,
    ) -> Option<Cow<'v, Value>> {
        let set = self.current();
        if set.is_empty() {
            AllowAuthenticated.read_view(principal, map, key, value)
        } else {
            set.read_view(principal, map, key, value)
        }
    }

    fn needs_values(&self) -> bool {
        // An empty set needs none, like the built-in policy.
        self.current().needs_values()
    }

    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        let set = self.current();
        if set.is_empty() {
            AllowAuthenticated.uniform_decision(principal, action, map)
        } else {
            set.uniform_decision(principal, action, map)
        }
    }
}

#[cfg(test)]
mod tests;
