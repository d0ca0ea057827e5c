//! Field rules for reads: which fields of a record may leave the server, how the rules of several allowing policies combine, and redaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use topgun_core::Value;

use super::def::FieldsDef;
use super::error::InvalidFieldPath;

/// The effective field rules of an allowed read: an optional allow-list
/// (only these fields leave the server) and a deny-list (these are
/// stripped), both of dotted field paths. A path covers everything under
/// it: allowing or denying `address` allows or denies `address.city`.
///
/// Cheap to clone (shared).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRules {
    inner: Arc<Rules>,
}

#[derive(Debug, PartialEq)]
struct Rules {
    allow: Option<PathSet>,
    deny: PathSet,
}

/// A minimal set of paths (no path covers another), sorted, with a trie
/// for redaction.
#[derive(Debug, Default, PartialEq)]
struct PathSet {
    paths: Vec<String>,
    tree: PathTree,
}

/// A trie of path segments; `whole` marks the end of a path, which covers
/// everything below it.
#[derive(Debug, Default, PartialEq)]
struct PathTree {
    whole: bool,
    children: BTreeMap<String, PathTree>,
}

impl FieldRules {
    /// Rules from an optional allow-list and a deny-list.
    pub fn new(allow: Option<Vec<String>>, deny: Vec<String>) -> Result<Self, InvalidFieldPath> {
        let allow = allow.map(PathSet::from_paths).transpose()?;
        let deny = PathSet::from_paths(deny)?;
        Ok(FieldRules {
            inner: Arc::new(Rules { allow, deny }),
        })
    }

    /// The rules a policy's `fields` entry stands for.
    pub fn from_def(def: &FieldsDef) -> Result<Self, InvalidFieldPath> {
        match def {
            FieldsDef::Allow(paths) => FieldRules::new(Some(paths.clone()), Vec::new()),
            FieldsDef::Deny(paths) => FieldRules::new(None, paths.clone()),
        }
    }

    /// The allow-list, minimal and sorted, or `None` when every field not
    /// denied may be sent.
    pub fn allow(&self) -> Option<&[String]> {
        self.inner.allow.as_ref().map(|set| set.paths.as_slice())
    }

    /// The deny-list, minimal and sorted.
    pub fn deny(&self) -> &[String] {
        &self.inner.deny.paths
    }

    /// Whether these rules restrict nothing (no allow-list, empty
    /// deny-list).
    pub fn is_unrestricted(&self) -> bool {
        self.inner.allow.is_none() && self.inner.deny.paths.is_empty()
    }

    /// Whether the field at `path`, with everything under it, leaves the
    /// server unchanged: covered by the allow-list (if any) and neither
    /// denied nor containing a denied field. The integration uses this to
    /// refuse queries that filter or sort on a hidden field.
    pub fn is_visible(&self, path: &str) -> bool {
        if let Some(allow) = &self.inner.allow {
            if !allow.tree.covers(path) {
                return false;
            }
        }
        !self.inner.deny.tree.covers(path) && !self.inner.deny.tree.has_below(path)
    }

    /// Combines the field rules of every allowing policy that applies to a
    /// read: the fields a principal sees are those that *every* such policy
    /// lets through. The allow-lists intersect (a field passes only if each
    /// allow-list covers it; policies without an allow-list do not
    /// constrain), the deny-lists unite. `None` when nothing restricts.
    pub fn combine<'a>(rules: impl IntoIterator<Item = &'a FieldRules>) -> Option<FieldRules> {
        let rules: Vec<&FieldRules> = rules.into_iter().filter(|r| !r.is_unrestricted()).collect();
        match rules.as_slice() {
            [] => None,
            [only] => Some((*only).clone()),
            many => {
                let allows: Vec<&PathSet> =
                    many.iter().filter_map(|r| r.inner.allow.as_ref()).collect();
                let allow = (!allows.is_empty()).then(|| {
                    let kept = allows
                        .iter()
                        .flat_map(|set| set.paths.iter())
                        .filter(|path| allows.iter().all(|set| set.tree.covers(path)))
                        .cloned()
                        .collect();
                    PathSet::from_valid(kept)
                });
                let deny = PathSet::from_valid(
                    many.iter()
                        .flat_map(|r| r.inner.deny.paths.iter().cloned())
                        .collect(),
                );
                Some(FieldRules {
                    inner: Arc::new(Rules { allow, deny }),
                })
            }
        }
    }

    /// Applies the rules to a record's value: keeps what the allow-list
    /// covers (when there is one), then strips what the deny-list covers.
    ///
    /// Paths go through maps only. Fail-closed rules for everything else:
    /// - A value that is not a map is dropped whole (`None`) unless the rules
    ///   are unrestricted: its contents can not be checked against field
    ///   paths.
    /// - An allowed path that runs into a non-map before its end keeps
    ///   nothing of it; a map emptied that way is left out.
    /// - A denied path that runs into a non-map (an array, a string, ...)
    ///   before its end strips that value whole, since what the path names
    ///   might be inside it.
    pub fn redact(&self, value: &Value) -> Option<Value> {
        if self.is_unrestricted() {
            return Some(value.clone());
        }
        let Value::Map(fields) = value else {
            return None;
        };
        let mut out = match &self.inner.allow {
            Some(allow) => keep(fields, &allow.tree),
            None => fields.clone(),
        };
        strip(&mut out, &self.inner.deny.tree);
        Some(Value::Map(out))
    }
}

impl PathSet {
    /// Validates and minimizes paths.
    fn from_paths(paths: Vec<String>) -> Result<PathSet, InvalidFieldPath> {
        if let Some(bad) = paths.iter().find(|p| !is_valid_path(p)) {
            return Err(InvalidFieldPath { path: bad.clone() });
        }
        Ok(PathSet::from_valid(paths))
    }

    /// Minimizes valid paths: the trie drops duplicates and paths covered
    /// by another, and lists the rest in segment order.
    fn from_valid(paths: Vec<String>) -> PathSet {
        let mut tree = PathTree::default();
        for path in &paths {
            tree.insert(path);
        }
        let mut kept = Vec::new();
        tree.collect(&mut String::new(), &mut kept);
        PathSet { paths: kept, tree }
    }
}

/// A non-empty path of non-empty, dot-separated names.
pub(crate) fn is_valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|name| !name.is_empty())
}

impl PathTree {
    /// Adds a path; a path that is covered already changes nothing, and a
    /// covering path drops what is below it.
    fn insert(&mut self, path: &str) {
        let mut node = self;
        for name in path.split('.') {
            if node.whole {
                return;
            }
            node = node.children.entry(name.to_owned()).or_default();
        }
        node.whole = true;
        node.children.clear();
    }

    /// The minimal paths, sorted by segments.
    fn collect(&self, prefix: &mut String, out: &mut Vec<String>) {
        for (name, child) in &self.children {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(name);
            if child.whole {
                out.push(prefix.clone());
            } else {
                child.collect(prefix, out);
            }
            prefix.truncate(len);
        }
    }

    /// Whether some path in the tree equals `path` or is a prefix of it.
    fn covers(&self, path: &str) -> bool {
        let mut node = self;
        for name in path.split('.') {
            match node.children.get(name) {
                Some(child) if child.whole => return true,
                Some(child) => node = child,
                None => return false,
            }
        }
        false
    }

    /// Whether some path in the tree lies strictly below `path`.
    fn has_below(&self, path: &str) -> bool {
        let mut node = self;
        for name in path.split('.') {
            match node.children.get(name) {
                Some(child) => node = child,
                None => return false,
            }
        }
        !node.children.is_empty()
    }
}

/// The fields of `fields` that `tree` covers.
fn keep(fields: &BTreeMap<String, Value>, tree: &PathTree) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (name, child) in &tree.children {
        let Some(value) = fields.get(name) else {
            continue;
        };
        if child.whole {
            out.insert(name.clone(), value.clone());
        } else if let Value::Map(inner) = value {
            let kept = keep(inner, child);
            if !kept.is_empty() {
                out.insert(name.clone(), Value::Map(kept));
            }
        }
    }
    out
}

/// Removes from `fields` what `tree` covers.
fn strip(fields: &mut BTreeMap<String, Value>, tree: &PathTree) {
    for (name, child) in &tree.children {
        if child.whole {
            fields.remove(name);
            continue;
        }
        match fields.get_mut(name) {
            Some(Value::Map(inner)) => strip(inner, child),
            Some(_) => {
                fields.remove(name);
            }
            None => {}
        }
    }
}
