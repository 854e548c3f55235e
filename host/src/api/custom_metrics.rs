//! `custom.metrics.k8s.io` v1beta1 and v1beta2: metrics describing Kubernetes objects, published
//! by plugins or built in, served from the current snapshot.
//!
//! Paths (after `/apis/custom.metrics.k8s.io/{version}`):
//! - `/namespaces/{ns}/{resource}/{name|*}/{metric}` for namespaced objects (`pods`, `services`,
//!   `deployments.apps`, `ingresses.networking.k8s.io`, any resource the cluster's discovery
//!   lists; a plural without its group is accepted when a published metric of that name has it);
//! - `/{resource}/{name|*}/{metric}` for cluster-scoped objects (`nodes`, `namespaces`, …);
//! - `/namespaces/{ns}/metrics/{metric}` for the Namespace object `ns` itself.
//!
//! `labelSelector` selects objects by their labels on `*` requests; `metricLabelSelector`
//! selects series by their labels, and the values of one object's selected series are summed
//! (as prometheus-adapter's default `sum(…) by (…)` query does), with the oldest timestamp and
//! the longest window among them. Values older than their metric's limit are not served: a
//! single-object request then answers 404, a `*` request leaves the object out. A metric whose
//! plugin failed this cycle answers 500, so the HPA holds rather than scale on a guess.
//! Single-object answers are lists of one item, as custom-metrics-apiserver returns them.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use super::metric_values::{MetricParams, parse_selector, window_seconds};
use super::quantity::Quantity;
use super::selector::{LabelSelector, LabelSelectorObject};
use super::status::ApiError;
use crate::clock::{Rfc3339Seconds, rfc3339_seconds};
use crate::store::Snapshot;
use crate::store::custom::{CustomMetric, MetricState, ObjectResource, ObjectValue, Watched};

/// `custom.metrics.k8s.io`.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";

/// The served versions, preferred first (v1beta2 is registered with the higher priority).
pub const CUSTOM_VERSIONS: [&str; 2] = ["v1beta2", "v1beta1"];

/// Custom metrics served without any plugin, computed from the core (`metrics.k8s.io`) data, so
/// discovery is never empty:
///
/// | resource | metric | value |
/// |---|---|---|
/// | `pods` | `cpu_usage` | CPU of all the pod's containers, in cores (e.g. `250m`), with its rate window |
/// | `pods` | `memory_working_set_bytes` | memory working set of all the pod's containers, bytes |
/// | `nodes` | `cpu_usage` | the node's CPU, in cores, with its rate window |
/// | `nodes` | `memory_working_set_bytes` | the node's memory working set, bytes |
///
/// They have no metric labels, carry the kubelet samples' timestamps, follow `metrics.k8s.io`'s
/// rules (only pods with every container measured) and its staleness limit
/// (`metrics.max_sample_age_secs`). Memory is instantaneous, so it has no window. A plugin
/// metric with the same resource and name takes precedence.
pub const BUILTIN_CUSTOM_METRICS: [(&str, &str); 4] = [
    ("pods", CPU_USAGE),
    ("pods", MEMORY_WORKING_SET),
    ("nodes", CPU_USAGE),
    ("nodes", MEMORY_WORKING_SET),
];

const CPU_USAGE: &str = "cpu_usage";
const MEMORY_WORKING_SET: &str = "memory_working_set_bytes";

/// A served API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1Beta1,
    V1Beta2,
}

impl Version {
    fn group_version(self) -> &'static str {
        match self {
            Version::V1Beta1 => "custom.metrics.k8s.io/v1beta1",
            Version::V1Beta2 => "custom.metrics.k8s.io/v1beta2",
        }
    }
}

/// Discovery entries, `("{resource}/{metric}", namespaced)`: the built-in metrics and every
/// metric plugins publish (failed ones too: they exist, they just answer errors now), sorted.
pub fn discovery_entries(snapshot: &Snapshot) -> Vec<(String, bool)> {
    let builtin = BUILTIN_CUSTOM_METRICS
        .into_iter()
        .map(|(resource, metric)| (format!("{resource}/{metric}"), resource == "pods"));
    let plugin = snapshot
        .plugin_metrics
        .custom
        .iter()
        .map(|((r, m), metric)| (format!("{r}/{m}"), metric.namespaced));
    builtin
        .chain(plugin)
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// The published metric a request names: by its exact resource, or, for a plural without a
/// group, the first published resource of that plural with this metric (core first).
fn find_metric<'s>(
    snapshot: &'s Snapshot,
    target: &Target<'_>,
) -> Option<(ObjectResource, &'s CustomMetric)> {
    let custom = &snapshot.plugin_metrics.custom;
    let key = (target.resource.clone(), Arc::<str>::from(target.metric));
    if let Some(metric) = custom.get(&key) {
        return Some((key.0, metric));
    }
    if !target.resource.group().is_empty() {
        return None;
    }
    custom
        .iter()
        .find(|((r, m), _)| r.plural() == target.resource.plural() && **m == *target.metric)
        .map(|((r, _), metric)| (r.clone(), metric))
}

fn metric_not_found(metric: &str, resource: &str) -> ApiError {
    ApiError::MetricNotFound(format!(
        "the server could not find the metric {metric} for {resource}"
    ))
}

/// What a request asks for.
#[derive(Debug, PartialEq)]
struct Target<'p> {
    resource: ObjectResource,
    /// Empty for cluster-scoped objects.
    namespace: &'p str,
    /// `None` for `*`.
    name: Option<&'p str>,
    metric: &'p str,
}

impl<'p> Target<'p> {
    /// Parses the path after `/apis/custom.metrics.k8s.io/{version}/`.
    fn parse(path: &'p str) -> Result<Target<'p>, ApiError> {
        let segments: Vec<&str> = path.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(ApiError::UnknownPath);
        }
        let (namespace, resource, name, metric) = match segments.as_slice() {
            ["namespaces", ns, "metrics", metric] => ("", "namespaces", *ns, *metric),
            ["namespaces", ns, resource, name, metric] => (*ns, *resource, *name, *metric),
            [resource, name, metric] => ("", *resource, *name, *metric),
            _ => return Err(ApiError::UnknownPath),
        };
        let resource =
            ObjectResource::parse(resource).map_err(|_| metric_not_found(metric, resource))?;
        Ok(Target {
            resource,
            namespace,
            name: (name != "*").then_some(name),
            metric,
        })
    }

    /// As custom-metrics-apiserver: a namespaced path means namespaced objects, a root path
    /// cluster-scoped ones; the other combination names no metric.
    fn check_scope(&self, namespaced: bool) -> Result<(), ApiError> {
        if namespaced == self.namespace.is_empty() {
            return Err(metric_not_found(self.metric, &self.resource.to_string()));
        }
        Ok(())
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::MetricNotFound(format!(
            "the server could not find the metric {} for {} {name}",
            self.metric, self.resource
        ))
    }
}

/// One object's value, ready to render.
#[derive(Debug)]
struct Item<'s> {
    namespace: &'s str,
    name: &'s str,
    value: Quantity,
    timestamp_ms: i64,
    window_ms: Option<i64>,
}

/// Why a single-object request found no value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Miss {
    /// No value for the object at all.
    Absent,
    /// Values exist, but none matches `metricLabelSelector`.
    Selector,
    /// The newest matching value (measured at this time, ms) is past the limit (ms).
    Stale { newest_ms: i64, max_age_ms: i64 },
}

impl Miss {
    fn stale(self, timestamp_ms: i64, max_age_ms: i64) -> Miss {
        match self {
            Miss::Stale { newest_ms, .. } if newest_ms >= timestamp_ms => self,
            _ => Miss::Stale {
                newest_ms: timestamp_ms,
                max_age_ms,
            },
        }
    }
}

/// The selectors of one request.
struct Selectors {
    objects: LabelSelector,
    series: LabelSelector,
}

/// The values a request selects, and why a single object has none.
struct Collected<'s> {
    items: Vec<Item<'s>>,
    miss: Miss,
}

impl Collected<'_> {
    fn new() -> Self {
        Collected {
            items: Vec::new(),
            miss: Miss::Absent,
        }
    }
}

/// The sub-slice of `values` (sorted by namespace, then name) in `namespace`, and with `name`
/// when given.
fn object_range<'v>(
    values: &'v [ObjectValue],
    namespace: &str,
    name: Option<&str>,
) -> &'v [ObjectValue] {
    fn key(v: &ObjectValue, by_name: bool) -> (&str, Option<&str>) {
        (&v.namespace, by_name.then_some(&*v.name))
    }
    let by_name = name.is_some();
    let key = |v: &ObjectValue| key(v, by_name).cmp(&(namespace, name));
    let start = values.partition_point(|v| key(v).is_lt());
    let len = values[start..].partition_point(|v| key(v).is_eq());
    &values[start..start + len]
}

fn collect_plugin<'s>(
    metric: &'s CustomMetric,
    target: &Target<'_>,
    sel: &Selectors,
    now_ms: i64,
) -> Result<Collected<'s>, ApiError> {
    let values = match &metric.state {
        MetricState::Values(values) => values,
        MetricState::Failed(reason) => {
            return Err(ApiError::Internal(format!(
                "metric {} for {} is unavailable: plugin {} failed: {reason}",
                metric.name, target.resource, metric.plugin
            )));
        }
        MetricState::Unavailable(reason) => {
            return Err(ApiError::Internal(format!(
                "metric {} for {} is unavailable: plugin {} could not compute it: {reason}",
                metric.name, target.resource, metric.plugin
            )));
        }
        MetricState::Unresolved(reason) => {
            return Err(ApiError::MetricNotFound(format!(
                "the server could not find the metric {} for {}: plugin {}: {reason}",
                metric.name, target.resource, metric.plugin
            )));
        }
    };
    let oldest_ms = now_ms.saturating_sub(metric.max_age_ms);
    let mut out = Collected::new();
    let range = object_range(values, target.namespace, target.name);
    for series in range.chunk_by(|a, b| a.namespace == b.namespace && a.name == b.name) {
        let first = &series[0];
        if target.name.is_none() && !sel.objects.matches(&*first.object_labels) {
            continue;
        }
        let mut sum = 0.0;
        let mut fresh: Option<(i64, Option<i64>)> = None;
        let mut matched = false;
        for v in series
            .iter()
            .filter(|v| sel.series.matches(&*v.metric_labels))
        {
            matched = true;
            if v.timestamp_ms < oldest_ms {
                out.miss = out.miss.stale(v.timestamp_ms, metric.max_age_ms);
                continue;
            }
            sum += v.value;
            fresh = Some(match fresh {
                None => (v.timestamp_ms, v.window_ms),
                Some((ts, window)) => (ts.min(v.timestamp_ms), window.max(v.window_ms)),
            });
        }
        if !matched && out.miss == Miss::Absent {
            out.miss = Miss::Selector;
        }
        let Some((timestamp_ms, window_ms)) = fresh else {
            continue;
        };
        let Some(value) = Quantity::from_f64_milli(sum) else {
            tracing::warn!(
                metric = %metric.name,
                plugin = %metric.plugin,
                object = %first.name,
                value = sum,
                "value not representable as a Quantity; not served"
            );
            continue;
        };
        out.items.push(Item {
            namespace: &first.namespace,
            name: &first.name,
            value,
            timestamp_ms,
            window_ms,
        });
    }
    Ok(out)
}

/// The built-in metrics' values (see [`BUILTIN_CUSTOM_METRICS`]).
fn collect_builtin<'s>(
    snapshot: &'s Snapshot,
    target: &Target<'_>,
    sel: &Selectors,
    now_ms: i64,
    max_age_ms: i64,
) -> Collected<'s> {
    let oldest_ms = now_ms.saturating_sub(max_age_ms);
    let cpu = target.metric == CPU_USAGE;
    let mut out = Collected::new();
    // No metric labels: a series selector either keeps every value or none.
    if !sel.series.matches(&[] as &[(&str, &str)]) {
        out.miss = Miss::Selector;
        return out;
    }
    let mut offer = |object: Item<'s>, labels: &crate::sources::cluster::LabelSet| {
        if target.name.is_none() && !sel.objects.matches(labels) {
            return;
        }
        if object.timestamp_ms < oldest_ms {
            out.miss = out.miss.stale(object.timestamp_ms, max_age_ms);
            return;
        }
        out.items.push(object);
    };
    match target.resource.watched() {
        Some(Watched::Pods) => {
            let pods = match target.name {
                Some(name) => snapshot
                    .pod(target.namespace, name)
                    .map(std::slice::from_ref),
                None => Some(snapshot.pods_in(target.namespace)),
            };
            for p in pods.unwrap_or_default() {
                let (value, window_ms) = if cpu {
                    let nanocores = p.containers.iter().map(|c| c.cpu_nanocores).sum();
                    (Quantity::from_nanocores(nanocores), Some(p.window_ms))
                } else {
                    let bytes = p.containers.iter().map(|c| c.memory_bytes).sum();
                    (Quantity::from_bytes(bytes), None)
                };
                let item = Item {
                    namespace: &p.namespace,
                    name: &p.name,
                    value,
                    timestamp_ms: p.timestamp_ms,
                    window_ms,
                };
                offer(item, &p.labels);
            }
        }
        Some(Watched::Nodes) => {
            let nodes: Box<dyn Iterator<Item = _>> = match target.name {
                Some(name) => Box::new(snapshot.nodes.get(name).into_iter()),
                None => Box::new(snapshot.nodes.values()),
            };
            for n in nodes {
                let (value, window_ms) = if cpu {
                    let q = Quantity::from_nanocores(n.usage.cpu_nanocores);
                    (q, Some(n.usage.window_ms))
                } else {
                    (Quantity::from_bytes(n.usage.memory_bytes), None)
                };
                let item = Item {
                    namespace: "",
                    name: &n.name,
                    value,
                    timestamp_ms: n.usage.timestamp_ms,
                    window_ms,
                };
                offer(item, &n.labels);
            }
        }
        _ => {}
    }
    out
}

/// `describedObject`'s kind and API version.
struct Described<'a> {
    kind: &'a str,
    api_version: String,
}

/// Renders the `MetricValueList` of `items` by hand rather than through serde: a request over
/// a 2,000-replica workload renders 2,000 items, and serde's generic path (every key and string
/// escaped field by field, the buffer grown by doubling) was most of the request's CPU. The
/// request's constant parts are encoded once; per item only the object's namespace and name
/// (escaped only when they need it), the time, window and value are written. The tests check
/// it byte for byte against the serde definitions of the API types.
fn render(
    version: Version,
    target: &Target<'_>,
    described: &Described<'_>,
    items: &[Item<'_>],
    selector: Option<&LabelSelectorObject>,
) -> Result<Response, ApiError> {
    let body = render_list(version, target, described, items, selector)
        .map_err(|e| ApiError::Internal(format!("encoding the response: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn render_list(
    version: Version,
    target: &Target<'_>,
    described: &Described<'_>,
    items: &[Item<'_>],
    selector: Option<&LabelSelectorObject>,
) -> std::io::Result<Vec<u8>> {
    let kind = serde_json::to_vec(described.kind)?;
    let api_version = serde_json::to_vec(&described.api_version)?;
    let metric = serde_json::to_vec(target.metric)?;
    let selector = serde_json::to_vec(&selector)?;
    // An item is ~130 bytes of keys, its constant parts and its object, time, window and
    // value: over-estimated, so that the buffer never grows (and copies) halfway.
    let per_item = 256 + kind.len() + api_version.len() + metric.len() + selector.len();
    let mut out = Vec::with_capacity(128 + items.len() * per_item);
    write!(
        out,
        r#"{{"kind":"MetricValueList","apiVersion":"{}","metadata":{{}},"items":["#,
        version.group_version()
    )?;
    // Values of one cycle share their time: format it once.
    let mut stamp = (i64::MIN, Rfc3339Seconds::new(0));
    let mut digits = itoa::Buffer::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"describedObject":{"kind":"#);
        out.extend_from_slice(&kind);
        if !item.namespace.is_empty() {
            out.extend_from_slice(br#","namespace":"#);
            push_str(&mut out, item.namespace)?;
        }
        out.extend_from_slice(br#","name":"#);
        push_str(&mut out, item.name)?;
        out.extend_from_slice(br#","apiVersion":"#);
        out.extend_from_slice(&api_version);
        out.push(b'}');
        match version {
            Version::V1Beta1 => {
                out.extend_from_slice(br#","metricName":"#);
                out.extend_from_slice(&metric);
            }
            Version::V1Beta2 => {
                out.extend_from_slice(br#","metric":{"name":"#);
                out.extend_from_slice(&metric);
                out.extend_from_slice(br#","selector":"#);
                out.extend_from_slice(&selector);
                out.push(b'}');
            }
        }
        let secs = item.timestamp_ms.div_euclid(1000);
        if stamp.0 != secs {
            stamp = (secs, Rfc3339Seconds::new(item.timestamp_ms));
        }
        out.extend_from_slice(br#","timestamp":""#);
        out.extend_from_slice(stamp.1.as_str().as_bytes());
        out.push(b'"');
        if let Some(window) = window_seconds(item.window_ms) {
            out.extend_from_slice(match version {
                Version::V1Beta1 => br#","window":"#,
                Version::V1Beta2 => br#","windowSeconds":"#,
            });
            out.extend_from_slice(digits.format(window).as_bytes());
        }
        write!(out, r#","value":"{}""#, item.value)?;
        if version == Version::V1Beta1 {
            out.extend_from_slice(br#","selector":"#);
            out.extend_from_slice(&selector);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Appends `s` as a JSON string: copied as is when nothing in it needs escaping (object names
/// never do), escaped by serde_json otherwise.
fn push_str(out: &mut Vec<u8>, s: &str) -> std::io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        Ok(serde_json::to_writer(out, s)?)
    }
}

async fn serve(
    version: Version,
    state: ApiState,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path.map_err(|e| ApiError::BadRequest(format!("invalid path: {e}")))?;
    let params = MetricParams::from_query(query)?;
    let sel = Selectors {
        objects: parse_selector("labelSelector", params.label_selector.as_deref())?,
        series: parse_selector(
            "metricLabelSelector",
            params.metric_label_selector.as_deref(),
        )?,
    };
    // Echoed in every value, as the reference adapters do (null without a selector).
    let echo = (!sel.series.is_empty())
        .then(|| sel.series.to_object())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("invalid metricLabelSelector: {e}")))?;
    let mut target = Target::parse(&path)?;
    let snapshot = state.store.load();
    let now_ms = state.clock.now_ms();
    let (collected, described) = match find_metric(&snapshot, &target) {
        Some((resource, metric)) => {
            target.check_scope(metric.namespaced)?;
            target.resource = resource;
            let described = match &metric.described {
                Some(info) => Described {
                    kind: &info.kind,
                    api_version: info.api_version(),
                },
                None => Described {
                    kind: "",
                    api_version: String::new(),
                },
            };
            (collect_plugin(metric, &target, &sel, now_ms)?, described)
        }
        None => {
            let resource = target.resource.to_string();
            let builtin = BUILTIN_CUSTOM_METRICS.contains(&(resource.as_str(), target.metric));
            let kind = match target.resource.watched() {
                Some(Watched::Pods) if builtin => "Pod",
                Some(Watched::Nodes) if builtin => "Node",
                _ => return Err(metric_not_found(target.metric, &resource)),
            };
            target.check_scope(kind == "Pod")?;
            let collected =
                collect_builtin(&snapshot, &target, &sel, now_ms, state.max_sample_age_ms());
            let described = Described {
                kind,
                api_version: "/v1".to_owned(),
            };
            (collected, described)
        }
    };
    if let Some(name) = target.name
        && collected.items.is_empty()
    {
        let base = target.not_found(name);
        return Err(match collected.miss {
            Miss::Absent => base,
            Miss::Selector => {
                ApiError::MetricNotFound(format!("{base} with selector {}", sel.series))
            }
            Miss::Stale {
                newest_ms,
                max_age_ms,
            } => ApiError::MetricNotFound(format!(
                "{base}: its newest value ({}) is {} s old, older than the maximum age {} s",
                rfc3339_seconds(newest_ms),
                (now_ms - newest_ms) / 1000,
                max_age_ms / 1000
            )),
        });
    }
    render(
        version,
        &target,
        &described,
        &collected.items,
        echo.as_ref(),
    )
}

async fn serve_v1beta1(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    serve(Version::V1Beta1, state, path, query).await
}

async fn serve_v1beta2(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    serve(Version::V1Beta2, state, path, query).await
}

/// The `custom.metrics.k8s.io` value routes (discovery is in [`super::discovery`]).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/apis/custom.metrics.k8s.io/v1beta1/{*path}",
            get(serve_v1beta1),
        )
        .route(
            "/apis/custom.metrics.k8s.io/v1beta2/{*path}",
            get(serve_v1beta2),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_targets() {
        let t = |path| Target::parse(path).map_err(|e| e.to_string());
        assert_eq!(
            t("namespaces/default/pods/*/rps"),
            Ok(Target {
                resource: ObjectResource::pods(),
                namespace: "default",
                name: None,
                metric: "rps",
            })
        );
        assert_eq!(
            t("namespaces/default/deployments.apps/web/rps").map(|t| (t.resource, t.name)),
            Ok((ObjectResource::deployments(), Some("web")))
        );
        assert_eq!(
            t("namespaces/default/ingresses.networking.k8s.io/web/rps").map(|t| t.resource),
            Ok(ObjectResource::new("networking.k8s.io", "ingresses"))
        );
        assert_eq!(
            t("namespaces/team-a/metrics/queue"),
            Ok(Target {
                resource: ObjectResource::namespaces(),
                namespace: "",
                name: Some("team-a"),
                metric: "queue",
            })
        );
        assert_eq!(
            t("nodes/n1/load").map(|t| (t.resource, t.namespace, t.name)),
            Ok((ObjectResource::nodes(), "", Some("n1")))
        );
        assert_eq!(
            t("namespaces/default/Services/s/rps").unwrap_err(),
            "the server could not find the metric rps for Services"
        );
        let pods = Target::parse("pods/*/rps").unwrap();
        assert_eq!(
            pods.check_scope(true).unwrap_err().to_string(),
            "the server could not find the metric rps for pods"
        );
        let nodes = Target::parse("namespaces/default/nodes/n1/load").unwrap();
        assert!(nodes.check_scope(false).is_err());
        assert!(nodes.check_scope(true).is_ok());
        for bad in [
            "namespaces/default/pods/p",
            "pods/p",
            "nodes/n1/load/",
            "a/b/c/d/e/f",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(ApiError::UnknownPath)),
                "{bad}"
            );
        }
    }

    use crate::api::metric_values::{EmptyMeta, List, Time};
    use serde::Serialize;

    /// The API types as serde defines them: the oracle of the hand-written rendering.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ObjectReference<'a> {
        kind: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        namespace: &'a str,
        name: &'a str,
        api_version: &'a str,
    }

    /// `custom_metrics/v1beta1.MetricValue`.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ValueV1Beta1<'a> {
        described_object: ObjectReference<'a>,
        metric_name: &'a str,
        timestamp: Time,
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<i64>,
        value: Quantity,
        selector: Option<&'a LabelSelectorObject>,
    }

    /// `custom_metrics/v1beta2.MetricIdentifier`.
    #[derive(Serialize)]
    struct MetricIdentifier<'a> {
        name: &'a str,
        selector: Option<&'a LabelSelectorObject>,
    }

    /// `custom_metrics/v1beta2.MetricValue`.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ValueV1Beta2<'a> {
        described_object: ObjectReference<'a>,
        metric: MetricIdentifier<'a>,
        timestamp: Time,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_seconds: Option<i64>,
        value: Quantity,
    }

    fn serde_list<'a>(
        version: Version,
        target: &Target<'_>,
        described: &'a Described<'_>,
        items: &'a [Item<'_>],
        selector: Option<&LabelSelectorObject>,
    ) -> Vec<u8> {
        let reference = |item: &'a Item<'_>| ObjectReference {
            kind: described.kind,
            namespace: item.namespace,
            name: item.name,
            api_version: &described.api_version,
        };
        fn list<T>(version: Version, items: Vec<T>) -> List<'static, T> {
            List {
                kind: "MetricValueList",
                api_version: version.group_version(),
                metadata: EmptyMeta {},
                items,
            }
        }
        match version {
            Version::V1Beta1 => serde_json::to_vec(&list(
                version,
                items
                    .iter()
                    .map(|item| ValueV1Beta1 {
                        described_object: reference(item),
                        metric_name: target.metric,
                        timestamp: Time(item.timestamp_ms),
                        window: window_seconds(item.window_ms),
                        value: item.value,
                        selector,
                    })
                    .collect::<Vec<_>>(),
            )),
            Version::V1Beta2 => serde_json::to_vec(&list(
                version,
                items
                    .iter()
                    .map(|item| ValueV1Beta2 {
                        described_object: reference(item),
                        metric: MetricIdentifier {
                            name: target.metric,
                            selector,
                        },
                        timestamp: Time(item.timestamp_ms),
                        window_seconds: window_seconds(item.window_ms),
                        value: item.value,
                    })
                    .collect::<Vec<_>>(),
            )),
        }
        .unwrap()
    }

    #[test]
    fn hand_rendered_lists_equal_serde_byte_for_byte() {
        let item = |namespace, name, value, timestamp_ms, window_ms| Item {
            namespace,
            name,
            value: Quantity::from_f64_milli(value).unwrap(),
            timestamp_ms,
            window_ms,
        };
        let items = [
            item(
                "default",
                "web-7d4b9c8f6d-x2x9z",
                1.5,
                1_643_309_313_999,
                Some(60_000),
            ),
            item("", "node-1", 0.0, 0, None),
            item("q\"uote", "back\\slash\u{1}tab\t", -2.25, -1, Some(200)),
            item("ns", "ünï.cödé-名前", 1e12, 253_402_300_799_000, Some(0)),
        ];
        let selector = LabelSelector::parse("app in (a,b),!legacy,tier=front-end.v2")
            .unwrap()
            .to_object()
            .unwrap();
        let described = [
            Described {
                kind: "Pod",
                api_version: "v1".into(),
            },
            Described {
                kind: "",
                api_version: String::new(),
            },
            Described {
                kind: "Wid\"get",
                api_version: "example.com/v1alpha1".into(),
            },
        ];
        for version in [Version::V1Beta1, Version::V1Beta2] {
            for metric in ["http_requests_per_second", "odd\"metric"] {
                let target = Target {
                    resource: ObjectResource::pods(),
                    namespace: "default",
                    name: None,
                    metric,
                };
                for described in &described {
                    for selector in [None, Some(&selector)] {
                        for items in [&items[..], &items[..1], &[]] {
                            let ours =
                                render_list(version, &target, described, items, selector).unwrap();
                            let theirs = serde_list(version, &target, described, items, selector);
                            assert_eq!(
                                String::from_utf8(ours).unwrap(),
                                String::from_utf8(theirs).unwrap(),
                                "{version:?}, {metric}, {} items",
                                items.len()
                            );
                        }
                    }
                }
            }
        }
    }

    fn value(ns: &str, name: &str) -> ObjectValue {
        ObjectValue {
            namespace: ns.into(),
            name: name.into(),
            object_labels: Arc::default(),
            metric_labels: Arc::default(),
            value: 1.0,
            timestamp_ms: 0,
            window_ms: None,
        }
    }

    #[test]
    fn object_ranges_use_the_sort_order() {
        let values = [
            value("a", "x"),
            value("b", "p"),
            value("b", "q"),
            value("b", "q"),
            value("b", "r"),
            value("c", "p"),
        ];
        let names = |r: &[ObjectValue]| {
            r.iter()
                .map(|v| format!("{}/{}", v.namespace, v.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(object_range(&values, "b", None)),
            ["b/p", "b/q", "b/q", "b/r"]
        );
        assert_eq!(names(object_range(&values, "b", Some("q"))), ["b/q", "b/q"]);
        assert!(object_range(&values, "b", Some("z")).is_empty());
        assert!(object_range(&values, "", None).is_empty());
    }
}
