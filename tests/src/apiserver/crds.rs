//! CustomResourceDefinitions as kube-apiserver's apiextensions server handles them: a stored CRD
//! is validated (`metadata.name` is `<plural>.<group>`, names and one storage version given),
//! established at once (`status.conditions` `NamesAccepted` and `Established`, `acceptedNames`,
//! `storedVersions`), and from then on its group and served versions are in discovery and its
//! objects are stored and served like the built-in stored kinds (no conversion: an object reads
//! back at whichever served version is asked for, as with the `None` strategy).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Value, json};

use super::objects::rfc3339;
use super::store::StoredKind;

/// The group of CustomResourceDefinitions.
pub(crate) const CRD_GROUP: &str = "apiextensions.k8s.io";
/// Their resource.
pub(crate) const CRD_RESOURCE: &str = "customresourcedefinitions";
/// The group priority kube-apiserver gives every CRD group in discovery.
pub(crate) const CRD_GROUP_PRIORITY: u32 = 1000;

/// One served version of a custom resource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServedVersion {
    name: String,
    status_subresource: bool,
}

/// The resource a stored CRD defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomResource {
    pub(crate) group: String,
    pub(crate) plural: String,
    singular: String,
    kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    pub(crate) namespaced: bool,
    /// Served versions, highest version priority first.
    versions: Vec<ServedVersion>,
}

impl CustomResource {
    /// The resource a CRD object defines, if it is well formed.
    pub(crate) fn of(crd: &Value) -> Option<CustomResource> {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut versions: Vec<ServedVersion> = spec["versions"]
            .as_array()?
            .iter()
            .filter(|v| v["served"].as_bool().unwrap_or(false))
            .map(|v| ServedVersion {
                name: text(&v["name"]),
                status_subresource: v["subresources"].get("status").is_some(),
            })
            .collect();
        versions.sort_by(|a, b| version_priority(&a.name, &b.name));
        let kind = text(&names["kind"]);
        let resource = CustomResource {
            group: text(&spec["group"]),
            plural: text(&names["plural"]),
            singular: names["singular"]
                .as_str()
                .map_or_else(|| kind.to_ascii_lowercase(), str::to_string),
            kind,
            short_names: list(&names["shortNames"]),
            categories: list(&names["categories"]),
            namespaced: spec["scope"] == "Namespaced",
            versions,
        };
        (!resource.group.is_empty() && !resource.plural.is_empty() && !resource.kind.is_empty())
            .then_some(resource)
    }

    /// Served versions, preferred first.
    pub(crate) fn versions(&self) -> impl Iterator<Item = &str> {
        self.versions.iter().map(|v| v.name.as_str())
    }

    /// The stored kind at `version`, if served.
    pub(crate) fn kind_at(&self, version: &str) -> Option<StoredKind> {
        let served = self.versions.iter().find(|v| v.name == version)?;
        Some(StoredKind {
            group: Cow::Owned(self.group.clone()),
            version: Cow::Owned(served.name.clone()),
            resource: Cow::Owned(self.plural.clone()),
            kind: Cow::Owned(self.kind.clone()),
            namespaced: self.namespaced,
            status_subresource: served.status_subresource,
        })
    }

    /// The discovery entries at `version`: the resource, and its status subresource if any.
    pub(crate) fn api_resources(&self, version: &str) -> Vec<Value> {
        let Some(served) = self.versions.iter().find(|v| v.name == version) else {
            return Vec::new();
        };
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if served.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// A CustomResourceDefinition of `plural.group` serving (and storing) `version` with a status
/// subresource and an open schema, as a test puts it with
/// [`FakeApiServer::put_object`](super::FakeApiServer::put_object).
pub fn custom_resource_definition(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.{group}") },
        "spec": {
            "group": group,
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "kind": kind,
                "listKind": format!("{kind}List"),
            },
            "versions": [{
                "name": version,
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                } },
            }],
        },
    })
}

/// Why a CRD is invalid, as kube-apiserver's validation words it; `None` when it is valid.
pub(crate) fn invalid(crd: &Value) -> Option<String> {
    let spec = &crd["spec"];
    let (group, plural) = (
        spec["group"].as_str().unwrap_or_default(),
        spec["names"]["plural"].as_str().unwrap_or_default(),
    );
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if group.is_empty() {
        return Some("spec.group: Required value".into());
    }
    if plural.is_empty()
        || spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    {
        return Some("spec.names.plural, spec.names.kind: Required value".into());
    }
    if name != format!("{plural}.{group}") {
        return Some(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        return Some("spec.scope: Unsupported value: must be Namespaced or Cluster".into());
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool().unwrap_or(false))
        .count();
    if storage != 1 {
        return Some(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    None
}

/// The status the apiextensions controllers give a new CRD: names accepted, established,
/// its storage version stored.
pub(crate) fn established_status(crd: &Value, now_ms: i64) -> Value {
    let storage: Vec<&str> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool().unwrap_or(false))
        .filter_map(|v| v["name"].as_str())
        .collect();
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": "True",
            "lastTransitionTime": rfc3339(now_ms),
            "reason": reason,
            "message": message,
        })
    };
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": storage,
    })
}

/// Kubernetes version priority (`v1` > `v1beta2` > `v1beta1` > `v1alpha1` > other names,
/// those alphabetically): `Less` when `a` comes first.
pub(crate) fn version_priority(a: &str, b: &str) -> Ordering {
    /// (stability: 2 GA, 1 beta, 0 alpha; major; minor), or None for a non-Kubernetes name.
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else {
            (0, tail.strip_prefix("alpha")?)
        };
        Some((stability, major, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(versions: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": versions,
            },
        })
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec![
            "v1alpha1", "foo", "v2", "v1beta1", "v1", "v1beta2", "v10", "bar",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }

    #[test]
    fn served_versions_and_status_subresource_reach_discovery() {
        let c = crd(json!([
            {"name": "v1beta1", "served": true, "storage": false},
            {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
            {"name": "v1alpha1", "served": false, "storage": false},
        ]));
        assert_eq!(invalid(&c), None);
        let r = CustomResource::of(&c).unwrap();
        assert_eq!(r.versions().collect::<Vec<_>>(), ["v1", "v1beta1"]);
        assert!(r.kind_at("v1alpha1").is_none());
        assert!(r.kind_at("v1").unwrap().status_subresource);
        assert!(!r.kind_at("v1beta1").unwrap().status_subresource);
        let names: Vec<Value> = r
            .api_resources("v1")
            .iter()
            .map(|e| e["name"].clone())
            .collect();
        assert_eq!(names, [json!("widgets"), json!("widgets/status")]);
        assert_eq!(r.api_resources("v1")[0]["shortNames"], json!(["wd"]));
        let status = established_status(&c, 0);
        assert_eq!(status["storedVersions"], json!(["v1"]));
        assert_eq!(status["conditions"][1]["type"], "Established");
    }

    #[test]
    fn a_misnamed_crd_or_one_without_a_storage_version_is_invalid() {
        let mut c = crd(json!([{"name": "v1", "served": true, "storage": true}]));
        c["metadata"]["name"] = json!("widgets.other.com");
        assert!(invalid(&c).unwrap().contains("metadata.name"));
        let c = crd(json!([{"name": "v1", "served": true, "storage": false}]));
        assert!(invalid(&c).unwrap().contains("storage version"));
    }
}
