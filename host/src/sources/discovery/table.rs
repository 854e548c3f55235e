//! The cluster's API resources as discovery lists them: group, preferred version, plural,
//! singular, kind and scope, looked up by resource identity.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plugins::wit::types;
use crate::store::custom::ObjectResource;

/// One resource of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// Group and plural.
    pub resource: ObjectResource,
    /// The group version it was read from (the group's preferred one).
    pub version: Arc<str>,
    /// Singular, lower case (`deployment`); empty when discovery gives none.
    pub singular: Arc<str>,
    /// Kind (`Deployment`).
    pub kind: Arc<str>,
    /// Its objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceInfo {
    /// A resource of `group` (empty for core) at `version`.
    pub fn new(
        group: &str,
        version: &str,
        plural: &str,
        singular: &str,
        kind: &str,
        namespaced: bool,
    ) -> ResourceInfo {
        ResourceInfo {
            resource: ObjectResource::new(group, plural),
            version: version.into(),
            singular: singular.into(),
            kind: kind.into(),
            namespaced,
        }
    }

    /// `describedObject.apiVersion`: `group/version`, or `/v1` for the core group as the
    /// reference implementation renders it.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.resource.group(), self.version)
    }

    /// The contract's form, as plugins get it.
    pub fn to_wit(&self) -> types::ApiResource {
        types::ApiResource {
            group: self.resource.group().to_owned(),
            version: self.version.to_string(),
            resource: self.resource.plural().to_owned(),
            singular: self.singular.to_string(),
            kind: self.kind.to_string(),
            namespaced: self.namespaced,
        }
    }
}

/// Where a table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSource {
    /// The built-in resources every cluster has: no discovery has succeeded yet (or there is
    /// no cluster).
    Builtin,
    /// The cluster's discovery.
    Discovered,
}

/// The API resources, in discovery order (core first, then groups by priority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTable {
    entries: Vec<Arc<ResourceInfo>>,
    index: HashMap<ObjectResource, usize>,
    source: TableSource,
}

impl ApiTable {
    /// A table of `entries` (the first of two with the same identity wins).
    pub fn new(entries: Vec<ResourceInfo>, source: TableSource) -> ApiTable {
        let mut table = ApiTable {
            entries: Vec::with_capacity(entries.len()),
            index: HashMap::with_capacity(entries.len()),
            source,
        };
        for entry in entries {
            if table.index.contains_key(&entry.resource) {
                continue;
            }
            table
                .index
                .insert(entry.resource.clone(), table.entries.len());
            table.entries.push(Arc::new(entry));
        }
        table
    }

    /// The core resources the gateway relies on and the common built-in workload resources,
    /// used until discovery answers.
    pub fn builtin() -> ApiTable {
        let r = ResourceInfo::new;
        ApiTable::new(
            vec![
                r("", "v1", "pods", "pod", "Pod", true),
                r("", "v1", "nodes", "node", "Node", false),
                r("", "v1", "namespaces", "namespace", "Namespace", false),
                r("", "v1", "services", "service", "Service", true),
                r(
                    "",
                    "v1",
                    "persistentvolumeclaims",
                    "persistentvolumeclaim",
                    "PersistentVolumeClaim",
                    true,
                ),
                r(
                    "apps",
                    "v1",
                    "deployments",
                    "deployment",
                    "Deployment",
                    true,
                ),
                r(
                    "apps",
                    "v1",
                    "statefulsets",
                    "statefulset",
                    "StatefulSet",
                    true,
                ),
                r("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true),
                r(
                    "apps",
                    "v1",
                    "replicasets",
                    "replicaset",
                    "ReplicaSet",
                    true,
                ),
                r("batch", "v1", "jobs", "job", "Job", true),
                r("batch", "v1", "cronjobs", "cronjob", "CronJob", true),
                r(
                    "networking.k8s.io",
                    "v1",
                    "ingresses",
                    "ingress",
                    "Ingress",
                    true,
                ),
            ],
            TableSource::Builtin,
        )
    }

    /// Whether the table is the cluster's (not the built-in one).
    pub fn is_discovered(&self) -> bool {
        self.source == TableSource::Discovered
    }

    /// The resource with this identity.
    pub fn get(&self, resource: &ObjectResource) -> Option<&Arc<ResourceInfo>> {
        self.index.get(resource).map(|&i| &self.entries[i])
    }

    /// Every resource, in discovery order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.entries.iter()
    }

    /// The resources of `group`.
    pub fn group<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Arc<ResourceInfo>> {
        self.entries
            .iter()
            .filter(move |e| e.resource.group() == group)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No resources.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The list plugins get in `cycle-input.api-resources`.
    pub fn to_wit(&self) -> Vec<types::ApiResource> {
        self.entries.iter().map(|e| e.to_wit()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_identity_and_the_first_entry_wins() {
        let table = ApiTable::new(
            vec![
                ResourceInfo::new("", "v1", "services", "service", "Service", true),
                ResourceInfo::new("example.io", "v1", "widgets", "widget", "Widget", true),
                ResourceInfo::new("example.io", "v2", "widgets", "widget", "Widget", false),
            ],
            TableSource::Discovered,
        );
        assert_eq!(table.len(), 2);
        assert!(table.is_discovered());
        let w = table
            .get(&ObjectResource::new("example.io", "widgets"))
            .unwrap();
        assert_eq!((&*w.version, w.namespaced), ("v1", true));
        assert_eq!(w.api_version(), "example.io/v1");
        let s = table.get(&ObjectResource::new("", "services")).unwrap();
        assert_eq!(s.api_version(), "/v1");
        assert!(table.get(&ObjectResource::new("", "widgets")).is_none());
        assert_eq!(table.group("example.io").count(), 1);
        let wit = table.to_wit();
        assert_eq!(wit[1].group, "example.io");
        assert_eq!(wit[1].resource, "widgets");
        assert_eq!(wit[1].singular, "widget");
    }

    #[test]
    fn the_builtin_table_has_what_the_watches_cover() {
        let table = ApiTable::builtin();
        assert!(!table.is_discovered());
        for (group, plural, namespaced) in [
            ("", "pods", true),
            ("", "nodes", false),
            ("", "namespaces", false),
            ("apps", "deployments", true),
            ("", "services", true),
        ] {
            let r = table.get(&ObjectResource::new(group, plural)).unwrap();
            assert_eq!(r.namespaced, namespaced, "{plural}");
        }
    }
}
