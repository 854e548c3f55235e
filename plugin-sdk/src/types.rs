//! Plain Rust mirrors of the WIT contract's types (`plugin-sdk/wit/plugin.wit`), usable natively.

use serde::{Deserialize, Serialize};

use crate::object::ObjectRef;

/// One label: name and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

impl Label {
    /// A label from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Labels from `(name, value)` pairs, sorted by name as the contract wants them.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut labels: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    labels.sort();
    labels
}

/// The value of label `name` in `labels`.
pub fn label<'a>(labels: &'a [Label], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
}

/// Where the host reads an input from. In configs it is written in kebab case
/// (`kubelet-resource`, `cluster`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Kubelet `/metrics/resource` (CPU, memory, swap of nodes, pods and containers).
    KubeletResource,
    /// Kubelet `/stats/summary`, flattened into samples (network, filesystem, ephemeral storage).
    KubeletSummary,
    /// Kubelet `/metrics/cadvisor`: scraped only while some plugin asks for it.
    KubeletCadvisor,
    /// Cluster state from the watches, named as kube-state-metrics names it.
    Cluster,
    /// A PromQL instant query on a configured Prometheus backend. A result series' name is its
    /// `__name__` label (removed from its labels), empty when it has none; samples carry
    /// Prometheus' own timestamps.
    Prometheus,
    /// Series discovery on a Prometheus backend: the input's name is a series selector
    /// (`match[]` of `/api/v1/series`), re-run at the backend's discovery interval. Its series
    /// arrive in `added`/`removed` and carry no samples.
    PrometheusSeries,
    /// Label-name discovery on a Prometheus backend (`/api/v1/labels`): the input's name is an
    /// optional series selector (`match[]`; empty: every series), re-run at the backend's
    /// discovery interval. Each label name arrives as one series named after it, without labels
    /// or samples, in `added` (and in `removed` once the backend no longer lists it).
    PrometheusLabels,
    /// Series discovery by shape: run as [`Source::PrometheusSeries`] (its selector, interval
    /// and `max_series` cap, counted in series), but each distinct metric name and set of label
    /// names arrives once, as one series whose labels carry those names with empty values. For
    /// mappings that need to know which metrics exist with which labels, not every label value.
    PrometheusSeriesShapes,
    /// Samples derived by a plugin that runs earlier in the cycle.
    Derived,
}

/// One input a plugin wants every cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputSpec {
    /// Where from.
    pub source: Source,
    /// The metric name (a trailing `*` matches a prefix), the PromQL query for `prometheus`, the
    /// series selector for `prometheus-series` and `prometheus-series-shapes`, or the optional
    /// series selector for `prometheus-labels` (empty: every series).
    pub name: String,
    /// Prometheus sources only: the backend's name, empty for the default backend.
    pub backend: String,
}

impl InputSpec {
    /// Metric `name` (or `prefix*`) from `source`.
    pub fn new(source: Source, name: impl Into<String>) -> InputSpec {
        InputSpec {
            source,
            name: name.into(),
            backend: String::new(),
        }
    }

    /// A PromQL instant `query` on `backend` (empty: the default backend).
    pub fn prometheus(backend: impl Into<String>, query: impl Into<String>) -> InputSpec {
        InputSpec {
            source: Source::Prometheus,
            name: query.into(),
            backend: backend.into(),
        }
    }

    /// Series discovery with `selector` (e.g. `{__name__=~"http_.*",namespace!=""}`) on
    /// `backend` (empty: the default backend).
    pub fn prometheus_series(backend: impl Into<String>, selector: impl Into<String>) -> InputSpec {
        InputSpec {
            source: Source::PrometheusSeries,
            name: selector.into(),
            backend: backend.into(),
        }
    }

    /// Series discovery by shape with `selector` on `backend` (empty: the default backend): one
    /// series per distinct metric name and set of label names, label values empty.
    pub fn prometheus_series_shapes(
        backend: impl Into<String>,
        selector: impl Into<String>,
    ) -> InputSpec {
        InputSpec {
            source: Source::PrometheusSeriesShapes,
            name: selector.into(),
            backend: backend.into(),
        }
    }

    /// Label-name discovery on `backend` (empty: the default backend): the label names of the
    /// series matching `selector` (e.g. `{__name__="queue_depth"}`), or of every series when it
    /// is empty.
    pub fn prometheus_labels(backend: impl Into<String>, selector: impl Into<String>) -> InputSpec {
        InputSpec {
            source: Source::PrometheusLabels,
            name: selector.into(),
            backend: backend.into(),
        }
    }

    /// Whether the input is read from a Prometheus backend (a query or a discovery).
    pub fn is_prometheus(&self) -> bool {
        matches!(
            self.source,
            Source::Prometheus
                | Source::PrometheusSeries
                | Source::PrometheusLabels
                | Source::PrometheusSeriesShapes
        )
    }

    /// Whether a series named `name` answers this input (exact name, or prefix for `prefix*`).
    /// Prometheus inputs are queries and selectors, not names: every series they return answers
    /// them.
    pub fn matches_name(&self, name: &str) -> bool {
        if self.is_prometheus() {
            return true;
        }
        match self.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.name == name,
        }
    }
}

/// Which metrics API serves a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    /// `custom.metrics.k8s.io`: a value per Kubernetes object.
    Custom,
    /// `external.metrics.k8s.io`: values not tied to an object in the cluster.
    External,
    /// `metrics.k8s.io`: `cpu` (cores) and `memory` (bytes) of `pods` or `nodes`, published as
    /// [`ResourceValue`]s. Served only when the gateway's resource-metrics source is plugins.
    Resource,
}

/// A metric the plugin publishes, listed in discovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    /// Metric name, as clients ask for it.
    pub name: String,
    /// The API serving it.
    pub kind: MetricKind,
    /// Custom metrics: the plural resource with its group unless core (`pods`,
    /// `deployments.apps`, `ingresses.networking.k8s.io`). Resource metrics: `pods` or `nodes`.
    /// Empty for external metrics.
    pub resource: String,
    /// Custom and resource: the objects are namespaced. External: each value belongs to one
    /// namespace.
    pub namespaced: bool,
    /// How long a value stays servable after its timestamp, ms; 0 for the host's default.
    pub max_age_ms: u64,
}

impl MetricSpec {
    /// A custom metric on `resource`; namespaced unless the resource is cluster-scoped
    /// (see [`crate::object::is_cluster_scoped`]).
    pub fn custom(name: impl Into<String>, resource: impl Into<String>) -> MetricSpec {
        let resource = resource.into();
        MetricSpec {
            name: name.into(),
            kind: MetricKind::Custom,
            namespaced: !crate::object::is_cluster_scoped(&resource),
            resource,
            max_age_ms: 0,
        }
    }

    /// A custom metric on a resource whose scope the caller knows (e.g. from a
    /// [`crate::ResourceMapper`]), for resources the SDK does not know itself.
    pub fn custom_scoped(
        name: impl Into<String>,
        resource: impl Into<String>,
        namespaced: bool,
    ) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            kind: MetricKind::Custom,
            resource: resource.into(),
            namespaced,
            max_age_ms: 0,
        }
    }

    /// A resource metric (`cpu` or `memory`) of `pods` or `nodes`.
    pub fn resource(name: impl Into<String>, resource: impl Into<String>) -> MetricSpec {
        let resource = resource.into();
        MetricSpec {
            name: name.into(),
            kind: MetricKind::Resource,
            namespaced: resource == "pods",
            resource,
            max_age_ms: 0,
        }
    }

    /// An external metric, `namespaced` when each value belongs to one namespace.
    pub fn external(name: impl Into<String>, namespaced: bool) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            kind: MetricKind::External,
            resource: String::new(),
            namespaced,
            max_age_ms: 0,
        }
    }

    /// The same spec with values servable for `max_age_ms` after their timestamp.
    pub fn with_max_age_ms(mut self, max_age_ms: u64) -> MetricSpec {
        self.max_age_ms = max_age_ms;
        self
    }
}

/// What a configured plugin needs and publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Inputs read every cycle; a series names its input by index into this list.
    pub inputs: Vec<InputSpec>,
    /// Metrics published.
    pub metrics: Vec<MetricSpec>,
    /// Names of the derived series this plugin emits, readable by later plugins.
    pub derived: Vec<String>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds `input` unless an equal one is listed, and returns its index (what
    /// [`Series::input`] holds for the series answering it).
    pub fn add_input(&mut self, input: InputSpec) -> u32 {
        let index = match self.inputs.iter().position(|i| *i == input) {
            Some(i) => i,
            None => {
                self.inputs.push(input);
                self.inputs.len() - 1
            }
        };
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// Adds `metric` unless an equal one is listed. Two specs with one name and resource but
    /// different settings are an error.
    pub fn add_metric(&mut self, metric: MetricSpec) -> Result<(), String> {
        match self.metrics.iter().find(|m| {
            m.name == metric.name && m.kind == metric.kind && m.resource == metric.resource
        }) {
            Some(existing) if *existing == metric => Ok(()),
            Some(existing) => Err(format!(
                "metric {:?} is published twice with different settings ({existing:?} and {metric:?})",
                metric.name
            )),
            None => {
                self.metrics.push(metric);
                Ok(())
            }
        }
    }

    /// Adds a derived series name unless listed.
    pub fn add_derived(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.derived.contains(&name) {
            self.derived.push(name);
        }
    }

    /// The metric published under `name` with `kind` (on any resource).
    pub fn metric(&self, name: &str, kind: MetricKind) -> Option<&MetricSpec> {
        self.metrics
            .iter()
            .find(|m| m.name == name && m.kind == kind)
    }
}

/// One series: a metric name and its labels, under an id stable for the series' lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Series {
    /// Id, unique among live series.
    pub id: u64,
    /// Index into [`Plan::inputs`] of the input it answers (0 in derived output).
    pub input: u32,
    /// Metric name.
    pub name: String,
    /// Labels, sorted by name.
    pub labels: Vec<Label>,
}

impl Series {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        label(&self.labels, name)
    }
}

/// One sample of a [`CycleInput`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The series' id.
    pub id: u64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

/// One resource the cluster's API discovery lists (core group: empty `group`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiResource {
    /// API group, empty for the core group.
    pub group: String,
    /// The group version it was read from (the preferred one).
    pub version: String,
    /// Plural, lower case: `deployments`.
    pub resource: String,
    /// Singular, lower case: `deployment`.
    pub singular: String,
    /// Kind: `Deployment`.
    pub kind: String,
    /// Its objects live in namespaces.
    pub namespaced: bool,
}

impl ApiResource {
    /// The name the contract uses for it: the plural, with `.group` unless core
    /// (`pods`, `deployments.apps`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// An input the host could not read this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputFailure {
    /// Index into [`Plan::inputs`].
    pub input: u32,
    /// Why, with the backend and query.
    pub message: String,
}

/// One cycle's input, as columns: series are announced once in `added`, then referenced by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleInput {
    /// When the cycle started, ms since the epoch (plugins have no clock of their own).
    pub timestamp_ms: i64,
    /// The collection interval, ms.
    pub interval_ms: u64,
    /// Series first seen by this instance this cycle.
    pub added: Vec<Series>,
    /// Series gone since the previous cycle.
    pub removed: Vec<u64>,
    /// Series id of each sample.
    pub ids: Vec<u64>,
    /// Timestamp of each sample, ms since the epoch.
    pub timestamps_ms: Vec<i64>,
    /// Value of each sample.
    pub values: Vec<f64>,
    /// Inputs that could not be read this cycle; their series are neither sent nor removed.
    pub failures: Vec<InputFailure>,
    /// The cluster's API resources: `Some` on an instance's first cycle and whenever the list
    /// changed, `None` otherwise.
    pub api_resources: Option<Vec<ApiResource>>,
}

impl CycleInput {
    /// Why input `input` (an index into [`Plan::inputs`]) could not be read this cycle, if it
    /// failed.
    pub fn failure(&self, input: u32) -> Option<&str> {
        self.failures
            .iter()
            .find(|f| f.input == input)
            .map(|f| f.message.as_str())
    }

    /// The samples, row by row (rows beyond the shortest column are ignored).
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.ids
            .iter()
            .zip(&self.timestamps_ms)
            .zip(&self.values)
            .map(|((&id, &timestamp_ms), &value)| Sample {
                id,
                timestamp_ms,
                value,
            })
    }
}

/// A custom metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomValue {
    /// A metric of [`Plan::metrics`] with kind custom.
    pub metric: String,
    /// The object described.
    pub object: ObjectRef,
    /// Series labels, matched by `metricLabelSelector`.
    pub labels: Vec<Label>,
    /// The value (finite).
    pub value: f64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms; 0 when it is an instant value.
    pub window_ms: u64,
}

/// An external metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalValue {
    /// A metric of [`Plan::metrics`] with kind external.
    pub metric: String,
    /// Its namespace when the metric is namespaced; empty otherwise.
    pub namespace: String,
    /// Labels, matched by the request's `labelSelector`.
    pub labels: Vec<Label>,
    /// The value (finite).
    pub value: f64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms; 0 when it is an instant value.
    pub window_ms: u64,
}

/// A resource metric value (metrics.k8s.io): CPU in cores, memory in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceValue {
    /// `cpu` or `memory`.
    pub metric: String,
    /// A pod or a node ([`ObjectRef::pod`], [`ObjectRef::node`]).
    pub object: ObjectRef,
    /// Pods: the container. Nodes: empty.
    pub container: String,
    /// The value (finite, not negative).
    pub value: f64,
    /// When it was measured, ms since the epoch.
    pub timestamp_ms: i64,
    /// The window it was computed over, ms; 0 when it is an instant value.
    pub window_ms: u64,
}

/// A metric the plugin could not compute this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricFailure {
    /// A metric of [`Plan::metrics`] (every metric of that name fails).
    pub metric: String,
    /// Why, served to clients in the error.
    pub message: String,
}

/// One cycle's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleOutput {
    /// Custom metric values.
    pub custom: Vec<CustomValue>,
    /// External metric values.
    pub external: Vec<ExternalValue>,
    /// Derived series first emitted this cycle (ids chosen by the plugin).
    pub derived_added: Vec<Series>,
    /// Derived series the plugin will not emit again.
    pub derived_removed: Vec<u64>,
    /// Series id of each derived sample.
    pub derived_ids: Vec<u64>,
    /// Timestamp of each derived sample, ms since the epoch.
    pub derived_timestamps_ms: Vec<i64>,
    /// Value of each derived sample.
    pub derived_values: Vec<f64>,
    /// Resource metric values (metric kind [`MetricKind::Resource`]).
    pub resource: Vec<ResourceValue>,
    /// Metrics of the plan that could not be computed this cycle: served as errors until a
    /// later cycle publishes them again.
    pub failed: Vec<MetricFailure>,
    /// A new plan, applied by the host from the next cycle (every series is announced again
    /// under the new input indices). Refused whole, the old plan kept, when invalid or when it
    /// takes another plugin's metric.
    pub replan: Option<Plan>,
}

impl CycleOutput {
    /// An empty output.
    pub fn new() -> CycleOutput {
        CycleOutput::default()
    }

    /// Appends an instant custom value (no labels, window 0).
    pub fn push_custom(
        &mut self,
        metric: impl Into<String>,
        object: ObjectRef,
        value: f64,
        timestamp_ms: i64,
    ) -> &mut CustomValue {
        self.custom.push(CustomValue {
            metric: metric.into(),
            object,
            labels: Vec::new(),
            value,
            timestamp_ms,
            window_ms: 0,
        });
        let last = self.custom.len() - 1;
        &mut self.custom[last]
    }

    /// Reports `metric` as not computable this cycle, with why.
    pub fn fail(&mut self, metric: impl Into<String>, message: impl Into<String>) {
        self.failed.push(MetricFailure {
            metric: metric.into(),
            message: message.into(),
        });
    }

    /// Appends a resource metric value of `object`'s `container` (empty for nodes).
    pub fn push_resource(
        &mut self,
        metric: impl Into<String>,
        object: ObjectRef,
        container: impl Into<String>,
        value: f64,
        timestamp_ms: i64,
    ) -> &mut ResourceValue {
        self.resource.push(ResourceValue {
            metric: metric.into(),
            object,
            container: container.into(),
            value,
            timestamp_ms,
            window_ms: 0,
        });
        let last = self.resource.len() - 1;
        &mut self.resource[last]
    }

    /// Appends an instant external value (no labels, window 0); `namespace` is empty unless the
    /// metric is namespaced.
    pub fn push_external(
        &mut self,
        metric: impl Into<String>,
        namespace: impl Into<String>,
        value: f64,
        timestamp_ms: i64,
    ) -> &mut ExternalValue {
        self.external.push(ExternalValue {
            metric: metric.into(),
            namespace: namespace.into(),
            labels: Vec::new(),
            value,
            timestamp_ms,
            window_ms: 0,
        });
        let last = self.external.len() - 1;
        &mut self.external[last]
    }
}
