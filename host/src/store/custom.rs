//! Plugin-published metrics as served by `custom.metrics.k8s.io` and `external.metrics.k8s.io`,
//! and the resource values `metrics.k8s.io` is built from when plugins are its source.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::sources::cluster::LabelSet;
use crate::sources::discovery::ResourceInfo;

/// A resource custom metrics describe: its API group (empty for the core group) and plural
/// name, written `plural` or `plural.group` as in URLs and discovery (`services`,
/// `deployments.apps`, `ingresses.networking.k8s.io`). Scope, kind and version come from the
/// cluster's discovery ([`crate::sources::discovery::ApiTable`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectResource {
    group: Arc<str>,
    plural: Arc<str>,
}

/// The resources the gateway's own watches cover: their objects and labels are always known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// `pods`.
    Pods,
    /// `nodes`.
    Nodes,
    /// `namespaces`.
    Namespaces,
    /// `deployments.apps`.
    Deployments,
}

impl ObjectResource {
    /// The resource `plural` of `group` (empty for core), taken as given.
    pub fn new(group: &str, plural: &str) -> ObjectResource {
        ObjectResource {
            group: group.into(),
            plural: plural.into(),
        }
    }

    /// `pods`.
    pub fn pods() -> ObjectResource {
        ObjectResource::new("", "pods")
    }

    /// `nodes`.
    pub fn nodes() -> ObjectResource {
        ObjectResource::new("", "nodes")
    }

    /// `namespaces`.
    pub fn namespaces() -> ObjectResource {
        ObjectResource::new("", "namespaces")
    }

    /// `deployments.apps`.
    pub fn deployments() -> ObjectResource {
        ObjectResource::new("apps", "deployments")
    }

    /// Parses `plural` or `plural.group` (lower case; a plural has no dot, so the group is
    /// everything after the first one).
    pub fn parse(resource: &str) -> Result<ObjectResource, String> {
        let (plural, group, dotted) = match resource.split_once('.') {
            Some((plural, group)) => (plural, group, true),
            None => (resource, "", false),
        };
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        let group_ok = if dotted {
            group.len() <= 253 && group.split('.').all(&label)
        } else {
            true
        };
        if label(plural) && group_ok {
            Ok(ObjectResource::new(group, plural))
        } else {
            Err(format!(
                "resource {resource:?} is not a plural resource name with its group unless core \
                 (lower case, e.g. \"services\", \"ingresses.networking.k8s.io\")"
            ))
        }
    }

    /// The API group, empty for core.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The plural name.
    pub fn plural(&self) -> &str {
        &self.plural
    }

    /// Which of the gateway's own watches covers it, if one does.
    pub fn watched(&self) -> Option<Watched> {
        Some(match (&*self.group, &*self.plural) {
            ("", "pods") => Watched::Pods,
            ("", "nodes") => Watched::Nodes,
            ("", "namespaces") => Watched::Namespaces,
            ("apps", "deployments") => Watched::Deployments,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ObjectResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.plural)
        } else {
            write!(f, "{}.{}", self.plural, self.group)
        }
    }
}

/// One custom metric value of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectValue {
    /// The object's namespace; empty for cluster-scoped objects.
    pub namespace: Arc<str>,
    /// The object's name.
    pub name: Arc<str>,
    /// The object's labels at the time of the cycle (matched by `labelSelector`).
    pub object_labels: Arc<LabelSet>,
    /// The series labels (matched by `metricLabelSelector`).
    pub metric_labels: Arc<LabelSet>,
    /// The value (finite).
    pub value: f64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms.
    pub window_ms: Option<i64>,
}

/// One external metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalValue {
    /// Its namespace when the metric is namespaced; empty otherwise.
    pub namespace: Arc<str>,
    /// Labels (matched by `labelSelector`, returned as `metricLabels`).
    pub labels: Arc<LabelSet>,
    /// The value (finite).
    pub value: f64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms.
    pub window_ms: Option<i64>,
}

/// One resource value (`cpu` or `memory`) of a pod's container or of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSample {
    /// The pod's namespace; empty for nodes.
    pub namespace: Arc<str>,
    /// The pod or node name.
    pub name: Arc<str>,
    /// The container; empty for nodes.
    pub container: Arc<str>,
    /// Nanocores for `cpu`, bytes for `memory`.
    pub value: u64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms (0: an instant value).
    pub window_ms: i64,
}

/// A published metric's values this cycle, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricState<T> {
    /// The values, sorted by (namespace, name) for custom metrics, by namespace for external.
    Values(Vec<T>),
    /// The publishing plugin failed this cycle; the message names it and the fault.
    Failed(Arc<str>),
    /// The publishing plugin ran but reported it could not compute this metric this cycle
    /// (typically because an input failed); the message is the plugin's.
    Unavailable(Arc<str>),
    /// Custom metrics: the described resource is not one the cluster's API discovery lists, or
    /// not with the scope the metric declares; the message says which.
    Unresolved(Arc<str>),
}

/// One published metric.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedMetric<T> {
    /// Metric name.
    pub name: Arc<str>,
    /// The plugin publishing it.
    pub plugin: Arc<str>,
    /// Custom: the objects are namespaced. External: each value belongs to a namespace.
    pub namespaced: bool,
    /// Values older than this are not served, ms.
    pub max_age_ms: i64,
    /// Custom metrics: the described resource as the cluster's discovery lists it (kind and
    /// version of `describedObject`); `None` for external metrics.
    pub described: Option<Arc<ResourceInfo>>,
    /// Values or failure.
    pub state: MetricState<T>,
}

/// A custom metric.
pub type CustomMetric = PublishedMetric<ObjectValue>;
/// An external metric.
pub type ExternalMetric = PublishedMetric<ExternalValue>;
/// A resource metric.
pub type ResourceMetric = PublishedMetric<ResourceSample>;

/// Everything plugins publish, as of one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginMetrics {
    /// Custom metrics by (resource, metric name).
    pub custom: BTreeMap<(ObjectResource, Arc<str>), CustomMetric>,
    /// External metrics by name.
    pub external: BTreeMap<Arc<str>, ExternalMetric>,
    /// Resource metrics by (`pods` or `nodes`, `cpu` or `memory`); values sorted by (namespace,
    /// name, container).
    pub resource: BTreeMap<(ObjectResource, Arc<str>), ResourceMetric>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_identities_parse_from_the_contract_form() {
        for (text, group, plural) in [
            ("pods", "", "pods"),
            ("services", "", "services"),
            ("deployments.apps", "apps", "deployments"),
            (
                "ingresses.networking.k8s.io",
                "networking.k8s.io",
                "ingresses",
            ),
            ("widgets.example-1.io", "example-1.io", "widgets"),
        ] {
            let r = ObjectResource::parse(text).unwrap();
            assert_eq!((r.group(), r.plural()), (group, plural), "{text}");
            assert_eq!(r.to_string(), text);
        }
        assert_eq!(
            ObjectResource::parse("deployments.apps").unwrap(),
            ObjectResource::deployments()
        );
        assert_eq!(
            ObjectResource::deployments().watched(),
            Some(Watched::Deployments)
        );
        assert_eq!(ObjectResource::parse("services").unwrap().watched(), None);
        for bad in [
            "",
            "Services",
            "pods/log",
            ".apps",
            "deployments.",
            "deployments..apps",
            "-pods",
            "pods.Apps",
            "a b",
        ] {
            let e = ObjectResource::parse(bad).unwrap_err();
            assert!(e.contains("is not a plural resource name"), "{bad}: {e}");
        }
    }
}
