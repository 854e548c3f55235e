//! `external.metrics.k8s.io/v1beta1`: metrics not tied to a Kubernetes object, published by
//! plugins or built in, served from the current snapshot.
//!
//! `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=…` lists
//! the metric's series whose labels match, ordered by labels: for a namespaced metric those of
//! namespace `ns`, otherwise all of them (`ns` is then ignored). Values older than the metric's
//! limit are left out; an empty list is a 200 (the HPA treats it as an error and holds). A metric
//! whose plugin failed this cycle answers 500.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::ApiState;
use super::metric_values::{
    EmptyMeta, List, MetricParams, Time, json_response, parse_selector, window_seconds,
};
use super::quantity::{Format, Quantity};
use super::selector::LabelSelector;
use super::status::ApiError;
use crate::sources::cluster::LabelSet;
use crate::store::Snapshot;
use crate::store::custom::{ExternalMetric, ExternalValue, MetricState};

/// `external.metrics.k8s.io`.
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
/// The served `external.metrics.k8s.io` version.
pub const EXTERNAL_VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// External metrics served without any plugin, computed from the core (`metrics.k8s.io`) data,
/// so discovery is never empty:
///
/// | metric | namespaced | series | value |
/// |---|---|---|---|
/// | `cluster_pods_served` | no | one per namespace, label `namespace` | pods whose `metrics.k8s.io` metrics are served (fresh, every container measured) |
///
/// The HPA sums the items it gets, so without a selector the value is the cluster's total, and
/// `labelSelector=namespace=team-a` narrows it to one namespace. Each series is stamped with the
/// newest pod sample it counts; namespaces with no served pod have no series.
pub const BUILTIN_EXTERNAL_METRICS: [&str; 1] = [CLUSTER_PODS_SERVED];

const CLUSTER_PODS_SERVED: &str = "cluster_pods_served";

/// Discovery entries, `(metric, namespaced)`: the built-in metrics and every external metric
/// plugins publish (failed ones too), sorted.
pub fn discovery_entries(snapshot: &Snapshot) -> Vec<(String, bool)> {
    let mut entries: Vec<(String, bool)> = BUILTIN_EXTERNAL_METRICS
        .iter()
        .filter(|m| !snapshot.plugin_metrics.external.contains_key(**m))
        .map(|m| (m.to_string(), false))
        .chain(
            snapshot
                .plugin_metrics
                .external
                .values()
                .map(|m| (m.name.to_string(), m.namespaced)),
        )
        .collect();
    entries.sort();
    entries
}

/// A series' labels as rendered in `metricLabels`.
#[derive(Clone, Copy)]
enum MetricLabels<'s> {
    Set(&'s LabelSet),
    /// The single label `namespace`.
    Namespace(&'s str),
}

impl Serialize for MetricLabels<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetricLabels::Set(set) => set.0.serialize(serializer),
            MetricLabels::Namespace(ns) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("namespace", ns)?;
                map.end()
            }
        }
    }
}

/// `external_metrics/v1beta1.ExternalMetricValue`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValueJson<'s> {
    metric_name: &'s str,
    metric_labels: MetricLabels<'s>,
    timestamp: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<i64>,
    value: Quantity,
}

/// The values of `namespace` in `values` (sorted by namespace, then labels).
fn namespace_range<'v>(values: &'v [ExternalValue], namespace: &str) -> &'v [ExternalValue] {
    let start = values.partition_point(|v| &*v.namespace < namespace);
    let len = values[start..].partition_point(|v| &*v.namespace == namespace);
    &values[start..start + len]
}

fn collect_plugin<'s>(
    metric: &'s ExternalMetric,
    namespace: &str,
    selector: &LabelSelector,
    now_ms: i64,
) -> Result<Vec<ValueJson<'s>>, ApiError> {
    let values = match &metric.state {
        MetricState::Values(values) => values.as_slice(),
        MetricState::Failed(reason) => {
            return Err(ApiError::Internal(format!(
                "external metric {} is unavailable: plugin {} failed: {reason}",
                metric.name, metric.plugin
            )));
        }
        MetricState::Unavailable(reason) | MetricState::Unresolved(reason) => {
            return Err(ApiError::Internal(format!(
                "external metric {} is unavailable: plugin {} could not compute it: {reason}",
                metric.name, metric.plugin
            )));
        }
    };
    let values = if metric.namespaced {
        namespace_range(values, namespace)
    } else {
        values
    };
    let oldest_ms = now_ms.saturating_sub(metric.max_age_ms);
    Ok(values
        .iter()
        .filter(|v| v.timestamp_ms >= oldest_ms && selector.matches(&*v.labels))
        .filter_map(|v| {
            let Some(value) = Quantity::from_f64_milli(v.value) else {
                tracing::warn!(
                    metric = %metric.name,
                    plugin = %metric.plugin,
                    value = v.value,
                    "value not representable as a Quantity; not served"
                );
                return None;
            };
            Some(ValueJson {
                metric_name: &metric.name,
                metric_labels: MetricLabels::Set(&v.labels),
                timestamp: Time(v.timestamp_ms),
                window: window_seconds(v.window_ms),
                value,
            })
        })
        .collect())
}

/// `cluster_pods_served` (see [`BUILTIN_EXTERNAL_METRICS`]).
fn pods_served<'s>(
    snapshot: &'s Snapshot,
    selector: &LabelSelector,
    oldest_ms: i64,
) -> Vec<ValueJson<'s>> {
    snapshot
        .pods
        .iter()
        .filter(|(ns, _)| selector.matches(&[("namespace", &***ns)]))
        .filter_map(|(ns, pods)| {
            let (count, newest_ms) = pods
                .iter()
                .filter(|p| p.timestamp_ms >= oldest_ms)
                .fold((0u64, i64::MIN), |(n, newest), p| {
                    (n + 1, newest.max(p.timestamp_ms))
                });
            (count > 0).then(|| ValueJson {
                metric_name: CLUSTER_PODS_SERVED,
                metric_labels: MetricLabels::Namespace(ns),
                timestamp: Time(newest_ms),
                window: None,
                value: Quantity::new(
                    i64::try_from(count).unwrap_or(i64::MAX),
                    0,
                    Format::DecimalSI,
                ),
            })
        })
        .collect()
}

async fn get_external(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((namespace, metric)) =
        path.map_err(|e| ApiError::BadRequest(format!("invalid path: {e}")))?;
    let params = MetricParams::from_query(query)?;
    let selector = parse_selector("labelSelector", params.label_selector.as_deref())?;
    let snapshot: Arc<Snapshot> = state.store.load();
    let now_ms = state.clock.now_ms();
    let items = match snapshot.plugin_metrics.external.get(metric.as_str()) {
        Some(m) => collect_plugin(m, &namespace, &selector, now_ms)?,
        None if metric == CLUSTER_PODS_SERVED => {
            pods_served(&snapshot, &selector, now_ms - state.max_sample_age_ms())
        }
        None => {
            return Err(ApiError::MetricNotFound(format!(
                "the server could not find the external metric {metric}"
            )));
        }
    };
    json_response(&List {
        kind: "ExternalMetricValueList",
        api_version: GROUP_VERSION,
        metadata: EmptyMeta {},
        items,
    })
}

/// The `external.metrics.k8s.io` value routes (discovery is in [`super::discovery`]).
pub fn routes() -> Router<ApiState> {
    Router::new().route(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}",
        get(get_external),
    )
}
