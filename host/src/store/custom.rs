//! Plugin-published metrics as served by `custom.metrics.k8s.io` and `external.metrics.k8s.io`,
//! and the resource values `metrics.k8s.io` is built from when plugins are its source.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::sources::cluster::LabelSet;

/// The Kubernetes resources custom metrics may describe: what the gateway can check exist and
/// whose labels it knows from its watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectResource {
    /// `pods` (namespaced).
    Pods,
    /// `nodes`.
    Nodes,
    /// `namespaces`.
    Namespaces,
    /// `deployments.apps` (namespaced).
    Deployments,
}

impl ObjectResource {
    /// Every supported resource.
    pub const ALL: [ObjectResource; 4] = [
        ObjectResource::Pods,
        ObjectResource::Nodes,
        ObjectResource::Namespaces,
        ObjectResource::Deployments,
    ];

    /// Parses the plural resource with its group unless core (`pods`, `deployments.apps`).
    pub fn parse(resource: &str) -> Option<ObjectResource> {
        Some(match resource {
            "pods" => ObjectResource::Pods,
            "nodes" => ObjectResource::Nodes,
            "namespaces" => ObjectResource::Namespaces,
            "deployments.apps" => ObjectResource::Deployments,
            _ => return None,
        })
    }

    /// The plural resource with its group unless core, as in URLs and discovery.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectResource::Pods => "pods",
            ObjectResource::Nodes => "nodes",
            ObjectResource::Namespaces => "namespaces",
            ObjectResource::Deployments => "deployments.apps",
        }
    }

    /// The object kind (`describedObject.kind`).
    pub fn kind(self) -> &'static str {
        match self {
            ObjectResource::Pods => "Pod",
            ObjectResource::Nodes => "Node",
            ObjectResource::Namespaces => "Namespace",
            ObjectResource::Deployments => "Deployment",
        }
    }

    /// The object's API version (`describedObject.apiVersion`): `/v1` for core objects, as the
    /// reference implementation renders it.
    pub fn api_version(self) -> &'static str {
        match self {
            ObjectResource::Deployments => "apps/v1",
            _ => "/v1",
        }
    }

    /// Objects of this resource live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(self, ObjectResource::Pods | ObjectResource::Deployments)
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
