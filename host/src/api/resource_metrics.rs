//! `metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics, get and list, with label and field
//! selectors, served from the current snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::discovery::METRICS_GROUP;
use super::quantity::Quantity;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use crate::clock::{go_duration, rfc3339_seconds};
use crate::store::{NodeMetrics, PodMetrics, Snapshot};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// List options the API honours (others, such as `resourceVersion`, are accepted and ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// Selects objects by their labels.
    pub label_selector: Option<String>,
    /// Selects objects by `metadata.name` / `metadata.namespace`.
    pub field_selector: Option<String>,
}

struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl ListParams {
    fn selectors(&self) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let fields = FieldSelector::parse(
            self.field_selector.as_deref().unwrap_or(""),
            &["metadata.name", "metadata.namespace"],
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    creation_timestamp: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ResourceUsage {
    cpu: Quantity,
    memory: Quantity,
}

impl ResourceUsage {
    fn new(cpu_nanocores: u64, memory_bytes: u64) -> Self {
        ResourceUsage {
            cpu: Quantity::from_nanocores(cpu_nanocores),
            memory: Quantity::from_bytes(memory_bytes),
        }
    }
}

/// What every metrics object has; `B` adds `usage` (nodes) or `containers` (pods).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricsJson<'a, B> {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    metadata: Meta<'a>,
    timestamp: String,
    window: String,
    #[serde(flatten)]
    body: B,
}

impl<'a, B> MetricsJson<'a, B> {
    /// `kind` and `apiVersion` are only set on single objects, not on list items.
    fn new(
        kind: &'static str,
        single: bool,
        metadata: Meta<'a>,
        (timestamp_ms, window_ms): (i64, i64),
        body: B,
    ) -> Self {
        MetricsJson {
            kind: single.then_some(kind),
            api_version: single.then_some(API_VERSION),
            metadata,
            timestamp: rfc3339_seconds(timestamp_ms),
            window: go_duration(window_ms),
            body,
        }
    }
}

#[derive(Serialize)]
struct NodeBody {
    usage: ResourceUsage,
}

#[derive(Serialize)]
struct ContainerJson<'a> {
    name: &'a str,
    usage: ResourceUsage,
}

#[derive(Serialize)]
struct PodBody<'a> {
    containers: Vec<ContainerJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson<T> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, serde_json::Value>,
    items: Vec<T>,
}

fn list<T>(kind: &'static str, items: Vec<T>) -> ListJson<T> {
    ListJson {
        kind,
        api_version: API_VERSION,
        metadata: serde_json::Map::new(),
        items,
    }
}

fn node_json<'a>(n: &'a NodeMetrics, now: &'a str, single: bool) -> MetricsJson<'a, NodeBody> {
    let meta = Meta {
        name: &n.name,
        namespace: None,
        creation_timestamp: now,
        labels: &n.labels.0,
    };
    let usage = ResourceUsage::new(n.usage.cpu_nanocores, n.usage.memory_bytes);
    let time = (n.usage.timestamp_ms, n.usage.window_ms);
    MetricsJson::new("NodeMetrics", single, meta, time, NodeBody { usage })
}

fn pod_json<'a>(p: &'a PodMetrics, now: &'a str, single: bool) -> MetricsJson<'a, PodBody<'a>> {
    let meta = Meta {
        name: &p.name,
        namespace: Some(&p.namespace),
        creation_timestamp: now,
        labels: &p.labels.0,
    };
    let containers = p
        .containers
        .iter()
        .map(|c| ContainerJson {
            name: &c.name,
            usage: ResourceUsage::new(c.cpu_nanocores, c.memory_bytes),
        })
        .collect();
    let time = (p.timestamp_ms, p.window_ms);
    MetricsJson::new("PodMetrics", single, meta, time, PodBody { containers })
}

fn json<T: Serialize>(body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("metrics objects always serialise");
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// What one request may see: the snapshot and the oldest sample time still served.
struct View {
    snapshot: Arc<Snapshot>,
    now_ms: i64,
    oldest_ms: i64,
    now: String,
}

impl View {
    fn new(state: &ApiState) -> View {
        let now_ms = state.clock.now_ms();
        View {
            snapshot: state.store.load(),
            now_ms,
            oldest_ms: now_ms - state.max_sample_age_ms(),
            now: rfc3339_seconds(now_ms),
        }
    }

    /// Nodes (or pods) have metrics this cycle, or a 500 naming the plugin and the cause (the
    /// resource source is plugins and one failed, or none publishes what is needed).
    fn available(&self, nodes: bool) -> Result<(), ApiError> {
        let unavailable = &self.snapshot.unavailable;
        let (which, message) = if nodes {
            ("nodes", &unavailable.nodes)
        } else {
            ("pods", &unavailable.pods)
        };
        match message {
            None => Ok(()),
            Some(m) => Err(ApiError::Internal(format!(
                "{METRICS_GROUP} {which} unavailable: {m}"
            ))),
        }
    }

    /// A single object's sample is still served, or a 404 saying how old it is.
    fn fresh(
        &self,
        timestamp_ms: i64,
        resource: &'static str,
        name: String,
    ) -> Result<(), ApiError> {
        if timestamp_ms >= self.oldest_ms {
            return Ok(());
        }
        Err(ApiError::Stale {
            group: METRICS_GROUP,
            resource,
            name,
            age_secs: (self.now_ms - timestamp_ms) / 1000,
            max_age_secs: (self.now_ms - self.oldest_ms) / 1000,
        })
    }
}

async fn list_nodes(
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let sel = params.selectors()?;
    let view = View::new(&state);
    view.available(true)?;
    let items: Vec<_> = view
        .snapshot
        .nodes
        .values()
        .filter(|n| n.usage.timestamp_ms >= view.oldest_ms)
        .filter(|n| sel.labels.matches(&*n.labels))
        .filter(|n| {
            sel.fields
                .matches(|f| (f == "metadata.name").then_some(&*n.name))
        })
        .map(|n| node_json(n, &view.now, false))
        .collect();
    Ok(json(&list("NodeMetricsList", items)))
}

async fn get_node(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = View::new(&state);
    view.available(true)?;
    let Some(node) = view.snapshot.nodes.get(name.as_str()) else {
        return Err(ApiError::NotFound {
            group: METRICS_GROUP,
            resource: "nodemetrics",
            name,
        });
    };
    view.fresh(node.usage.timestamp_ms, "nodemetrics", name.clone())?;
    Ok(json(&node_json(node, &view.now, true)))
}

fn pods_matching<'a>(
    view: &'a View,
    namespace: Option<&'a str>,
    sel: &'a Selectors,
) -> impl Iterator<Item = &'a PodMetrics> + 'a {
    let namespace = namespace.or_else(|| sel.fields.required_value("metadata.namespace"));
    let namespaces: Box<dyn Iterator<Item = &[PodMetrics]>> = match namespace {
        Some(ns) => Box::new(std::iter::once(view.snapshot.pods_in(ns))),
        None => Box::new(view.snapshot.pods.values().map(Vec::as_slice)),
    };
    namespaces
        .flatten()
        .filter(move |p| p.timestamp_ms >= view.oldest_ms)
        .filter(move |p| sel.labels.matches(&*p.labels))
        .filter(move |p| {
            sel.fields.matches(|f| match f {
                "metadata.name" => Some(&*p.name),
                "metadata.namespace" => Some(&*p.namespace),
                _ => None,
            })
        })
}

async fn list_pods(
    state: ApiState,
    namespace: Option<String>,
    params: ListParams,
) -> Result<Response, ApiError> {
    let sel = params.selectors()?;
    let view = View::new(&state);
    view.available(false)?;
    let items: Vec<_> = pods_matching(&view, namespace.as_deref(), &sel)
        .map(|p| pod_json(p, &view.now, false))
        .collect();
    Ok(json(&list("PodMetricsList", items)))
}

async fn list_all_pods(
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    list_pods(state, None, params).await
}

async fn list_namespace_pods(
    State(state): State<ApiState>,
    Path(namespace): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    list_pods(state, Some(namespace), params).await
}

async fn get_pod(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let view = View::new(&state);
    let full_name = format!("{namespace}/{name}");
    view.available(false)?;
    let Some(pod) = view.snapshot.pod(&namespace, &name) else {
        return Err(ApiError::NotFound {
            group: METRICS_GROUP,
            resource: "podmetrics",
            name: full_name,
        });
    };
    view.fresh(pod.timestamp_ms, "podmetrics", full_name)?;
    Ok(json(&pod_json(pod, &view.now, true)))
}

/// The `metrics.k8s.io/v1beta1` routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(list_nodes))
        .route("/apis/metrics.k8s.io/v1beta1/nodes/{name}", get(get_node))
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(list_all_pods))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            get(list_namespace_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            get(get_pod),
        )
}
