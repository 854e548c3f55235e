//! Version and legacy (non-aggregated) discovery documents: `/version`, `/api`, `/api/v1`,
//! `/apis`, `/apis/{group}` and `/apis/{group}/{version}` of the built-in groups and of the
//! groups the stored CRDs define (read on every request, so a CRD shows at once).

use serde_json::{Value, json};

use super::crds::{CRD_GROUP, CRD_GROUP_PRIORITY, CustomResource, version_priority};
use super::objects::Kind;
use super::proxy::Aggregator;
use super::store::STORED;

/// A group served by the fake apiserver itself: name, version, group priority, and its
/// resources: review endpoints (name, singular, kind; verb `create`), watchable kinds, and
/// kinds it only maps.
struct BuiltinGroup {
    name: &'static str,
    version: &'static str,
    priority: u32,
    resources: &'static [(&'static str, &'static str, &'static str)],
    kinds: &'static [Kind],
    mapped: &'static [MappedOnly],
}

/// A resource that discovery lists so kubectl can map manifests of it (`kubectl apply
/// --dry-run=client` of the deploy manifests), but of which the fake stores no object: a GET
/// answers 404, so a client dry run reports each object as created.
struct MappedOnly {
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl MappedOnly {
    const fn new(
        name: &'static str,
        singular: &'static str,
        kind: &'static str,
        namespaced: bool,
    ) -> MappedOnly {
        MappedOnly {
            name,
            singular,
            kind,
            namespaced,
        }
    }

    fn api_resource(&self) -> Value {
        json!({
            "name": self.name,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "get"],
        })
    }
}

/// Core (`v1`) kinds that are only mapped.
const CORE_MAPPED: [MappedOnly; 1] = [MappedOnly::new(
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    true,
)];

const BUILTIN_GROUPS: [BuiltinGroup; 7] = [
    // CustomResourceDefinitions are stored.
    BuiltinGroup {
        name: CRD_GROUP,
        version: "v1",
        priority: 16700,
        resources: &[],
        kinds: &[],
        mapped: &[],
    },
    BuiltinGroup {
        name: "apiregistration.k8s.io",
        version: "v1",
        priority: 17400,
        resources: &[],
        kinds: &[],
        mapped: &[MappedOnly::new(
            "apiservices",
            "apiservice",
            "APIService",
            false,
        )],
    },
    BuiltinGroup {
        name: "apps",
        version: "v1",
        priority: 17800,
        resources: &[],
        kinds: &[Kind::Deployment, Kind::ReplicaSet],
        mapped: &[],
    },
    BuiltinGroup {
        name: "authentication.k8s.io",
        version: "v1",
        priority: 17700,
        resources: &[("tokenreviews", "tokenreview", "TokenReview")],
        kinds: &[],
        mapped: &[],
    },
    BuiltinGroup {
        name: "authorization.k8s.io",
        version: "v1",
        priority: 17600,
        resources: &[(
            "subjectaccessreviews",
            "subjectaccessreview",
            "SubjectAccessReview",
        )],
        kinds: &[],
        mapped: &[],
    },
    BuiltinGroup {
        name: "policy",
        version: "v1",
        priority: 17100,
        resources: &[],
        kinds: &[],
        mapped: &[MappedOnly::new(
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            true,
        )],
    },
    BuiltinGroup {
        name: "rbac.authorization.k8s.io",
        version: "v1",
        priority: 17000,
        resources: &[],
        kinds: &[],
        mapped: &[
            MappedOnly::new(
                "clusterrolebindings",
                "clusterrolebinding",
                "ClusterRoleBinding",
                false,
            ),
            MappedOnly::new("clusterroles", "clusterrole", "ClusterRole", false),
            MappedOnly::new("rolebindings", "rolebinding", "RoleBinding", true),
            MappedOnly::new("roles", "role", "Role", true),
        ],
    },
];

/// `GET /version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": super::objects::KUBE_VERSION,
        "gitCommit": "6f1a4c1e2d7b9c3e8a5f0b4d2c6e8a1f3b5d7c90",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

/// `GET /api/v1`.
pub(crate) fn core_resources() -> Value {
    let resources: Vec<Value> = [Kind::ConfigMap, Kind::Namespace, Kind::Node, Kind::Pod]
        .iter()
        .map(|k| k.api_resource())
        .chain(CORE_MAPPED.iter().map(MappedOnly::api_resource))
        .chain(
            STORED
                .iter()
                .filter(|k| k.group.is_empty() && k.resource != "configmaps")
                .map(|k| k.api_resource()),
        )
        .collect();
    json!({ "kind": "APIResourceList", "groupVersion": "v1", "resources": resources })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    let mut group = json!({ "name": name, "versions": entries });
    if let Some(preferred) = entries.first() {
        group["preferredVersion"] = preferred.clone();
    }
    group
}

/// Every group: built-in, CRD-defined and aggregated, highest group priority first (then by
/// name), each with its versions in preference order.
fn all_groups(
    aggregator: &Aggregator,
    customs: &[CustomResource],
) -> Vec<(String, u32, Vec<String>)> {
    let mut groups: Vec<(String, u32, Vec<String>)> = BUILTIN_GROUPS
        .iter()
        .map(|g| (g.name.to_string(), g.priority, vec![g.version.to_string()]))
        .collect();
    for kind in STORED.iter().filter(|k| !k.group.is_empty()) {
        if !groups.iter().any(|g| g.0 == kind.group) {
            groups.push((kind.group.to_string(), 1000, vec![kind.version.to_string()]));
        }
    }
    for custom in customs {
        let index = match groups.iter().position(|g| g.0 == custom.group) {
            Some(i) => i,
            None => {
                groups.push((custom.group.clone(), CRD_GROUP_PRIORITY, Vec::new()));
                groups.len() - 1
            }
        };
        let versions = &mut groups[index].2;
        for version in custom.versions() {
            if !versions.iter().any(|v| v == version) {
                versions.push(version.to_string());
            }
        }
        versions.sort_by(|a, b| version_priority(a, b));
    }
    for group in aggregator.groups() {
        match groups.iter_mut().find(|g| g.0 == group.0) {
            Some(existing) => *existing = group,
            None => groups.push(group),
        }
    }
    groups.retain(|g| !g.2.is_empty());
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// `GET /apis`: the legacy `APIGroupList`.
pub(crate) fn group_list(aggregator: &Aggregator, customs: &[CustomResource]) -> Value {
    let groups: Vec<Value> = all_groups(aggregator, customs)
        .iter()
        .map(|(name, _, versions)| group_json(name, versions))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`, served by the aggregator itself for every group it knows.
pub(crate) fn group(
    aggregator: &Aggregator,
    customs: &[CustomResource],
    name: &str,
) -> Option<Value> {
    let groups = all_groups(aggregator, customs);
    let (name, _, versions) = groups.iter().find(|g| g.0 == name)?;
    let mut doc = group_json(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /apis/{group}/{version}` of a built-in or CRD-defined group version.
pub(crate) fn group_resources(
    customs: &[CustomResource],
    group: &str,
    version: &str,
) -> Option<Value> {
    let builtin = BUILTIN_GROUPS
        .iter()
        .find(|g| g.name == group && g.version == version);
    let resources: Vec<Value> = builtin
        .into_iter()
        .flat_map(|g| {
            g.kinds
                .iter()
                .map(|k| k.api_resource())
                .chain(g.resources.iter().map(|(name, singular, kind)| {
                    json!({ "name": name, "singularName": singular, "namespaced": false, "kind": kind, "verbs": ["create"] })
                }))
                .chain(g.mapped.iter().map(MappedOnly::api_resource))
        })
        .chain(
            STORED
                .iter()
                .filter(|k| !k.group.is_empty() && k.group == group && k.version == version)
                .map(|k| k.api_resource()),
        )
        .chain(
            customs
                .iter()
                .filter(|c| c.group == group)
                .flat_map(|c| c.api_resources(version)),
        )
        .collect();
    (builtin.is_some() || !resources.is_empty()).then(|| {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{group}/{version}"),
            "resources": resources,
        })
    })
}
