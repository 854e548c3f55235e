//! Version and legacy (non-aggregated) discovery documents: `/version`, `/api`, `/api/v1`,
//! `/apis`, `/apis/{group}` and the built-in groups' `/apis/{group}/{version}`.

use serde_json::{Value, json};

use super::objects::Kind;
use super::proxy::Aggregator;

/// A group served by the fake apiserver itself: name, version, group priority, and its
/// resources: either review endpoints (name, singular, kind; verb `create`) or watchable kinds.
struct BuiltinGroup {
    name: &'static str,
    version: &'static str,
    priority: u32,
    resources: &'static [(&'static str, &'static str, &'static str)],
    kinds: &'static [Kind],
}

const BUILTIN_GROUPS: [BuiltinGroup; 3] = [
    BuiltinGroup {
        name: "apps",
        version: "v1",
        priority: 17800,
        resources: &[],
        kinds: &[Kind::Deployment, Kind::ReplicaSet],
    },
    BuiltinGroup {
        name: "authentication.k8s.io",
        version: "v1",
        priority: 17700,
        resources: &[("tokenreviews", "tokenreview", "TokenReview")],
        kinds: &[],
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

/// Every group: built-in and aggregated, highest group priority first (then by name), each
/// with its versions in preference order.
fn all_groups(aggregator: &Aggregator) -> Vec<(String, u32, Vec<String>)> {
    let mut groups: Vec<(String, u32, Vec<String>)> = BUILTIN_GROUPS
        .iter()
        .map(|g| (g.name.to_string(), g.priority, vec![g.version.to_string()]))
        .collect();
    for group in aggregator.groups() {
        match groups.iter_mut().find(|g| g.0 == group.0) {
            Some(existing) => *existing = group,
            None => groups.push(group),
        }
    }
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// `GET /apis`: the legacy `APIGroupList`.
pub(crate) fn group_list(aggregator: &Aggregator) -> Value {
    let groups: Vec<Value> = all_groups(aggregator)
        .iter()
        .map(|(name, _, versions)| group_json(name, versions))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`, served by the aggregator itself for every group it knows.
pub(crate) fn group(aggregator: &Aggregator, name: &str) -> Option<Value> {
    let groups = all_groups(aggregator);
    let (name, _, versions) = groups.iter().find(|g| g.0 == name)?;
    let mut doc = group_json(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /apis/{group}/{version}` of a built-in group.
pub(crate) fn builtin_resources(group: &str, version: &str) -> Option<Value> {
    let g = BUILTIN_GROUPS
        .iter()
        .find(|g| g.name == group && g.version == version)?;
    let resources: Vec<Value> = g
        .kinds
        .iter()
        .map(|k| k.api_resource())
        .chain(g.resources.iter().map(|(name, singular, kind)| {
            json!({ "name": name, "singularName": singular, "namespaced": false, "kind": kind, "verbs": ["create"] })
        }))
        .collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": resources,
    }))
}
