//! API discovery documents for the groups the gateway serves.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiState;
use super::custom_metrics::{self, CUSTOM_GROUP, CUSTOM_VERSIONS};
use super::external_metrics::{self, EXTERNAL_GROUP, EXTERNAL_VERSION};

/// `metrics.k8s.io`.
pub const METRICS_GROUP: &str = "metrics.k8s.io";
/// The served `metrics.k8s.io` version.
pub const METRICS_VERSION: &str = "v1beta1";

fn group_version(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

/// An `APIGroup` body (without TypeMeta); `versions` are listed preferred first.
fn api_group(group: &str, versions: &[&str]) -> Value {
    json!({
        "name": group,
        "versions": versions.iter().map(|v| group_version(group, v)).collect::<Vec<_>>(),
        "preferredVersion": group_version(group, versions[0]),
    })
}

fn groups() -> [Value; 3] {
    [
        api_group(METRICS_GROUP, &[METRICS_VERSION]),
        api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS),
        api_group(EXTERNAL_GROUP, &[EXTERNAL_VERSION]),
    ]
}

async fn apis() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(),
    }))
}

fn group_document(mut group: Value) -> Json<Value> {
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Json(group)
}

async fn metrics_group() -> Json<Value> {
    group_document(api_group(METRICS_GROUP, &[METRICS_VERSION]))
}

async fn custom_group() -> Json<Value> {
    group_document(api_group(CUSTOM_GROUP, &CUSTOM_VERSIONS))
}

async fn external_group() -> Json<Value> {
    group_document(api_group(EXTERNAL_GROUP, &[EXTERNAL_VERSION]))
}

fn resource(name: &str, namespaced: bool, kind: &str, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs})
}

fn resource_list(group_version: String, resources: Vec<Value>) -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

async fn metrics_resources() -> Json<Value> {
    resource_list(
        format!("{METRICS_GROUP}/{METRICS_VERSION}"),
        vec![
            resource("nodes", false, "NodeMetrics", &["get", "list"]),
            resource("pods", true, "PodMetrics", &["get", "list"]),
        ],
    )
}

/// One entry per (resource, metric) published now, plus the built-ins: never empty, which
/// client-go's discovery cache cannot handle (prometheus-adapter #131).
fn custom_resources(state: &ApiState, version: &str) -> Json<Value> {
    let entries = custom_metrics::discovery_entries(&state.store.load());
    resource_list(
        format!("{CUSTOM_GROUP}/{version}"),
        entries
            .iter()
            .map(|(name, namespaced)| resource(name, *namespaced, "MetricValueList", &["get"]))
            .collect(),
    )
}

async fn custom_resources_v1beta1(State(state): State<ApiState>) -> Json<Value> {
    custom_resources(&state, "v1beta1")
}

async fn custom_resources_v1beta2(State(state): State<ApiState>) -> Json<Value> {
    custom_resources(&state, "v1beta2")
}

async fn external_resources(State(state): State<ApiState>) -> Json<Value> {
    let entries = external_metrics::discovery_entries(&state.store.load());
    resource_list(
        format!("{EXTERNAL_GROUP}/{EXTERNAL_VERSION}"),
        entries
            .iter()
            .map(|(name, namespaced)| {
                resource(name, *namespaced, "ExternalMetricValueList", &["get"])
            })
            .collect(),
    )
}

/// Routes for `/apis`, and for each served group its `APIGroup` and per version its
/// `APIResourceList`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/apis", get(apis))
        .route("/apis/metrics.k8s.io", get(metrics_group))
        .route("/apis/metrics.k8s.io/v1beta1", get(metrics_resources))
        .route("/apis/custom.metrics.k8s.io", get(custom_group))
        .route(
            "/apis/custom.metrics.k8s.io/v1beta1",
            get(custom_resources_v1beta1),
        )
        .route(
            "/apis/custom.metrics.k8s.io/v1beta2",
            get(custom_resources_v1beta2),
        )
        .route("/apis/external.metrics.k8s.io", get(external_group))
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            get(external_resources),
        )
}
