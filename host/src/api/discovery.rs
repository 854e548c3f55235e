//! API discovery documents for the groups the gateway serves.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiState;

/// `metrics.k8s.io`.
pub const METRICS_GROUP: &str = "metrics.k8s.io";
/// The served `metrics.k8s.io` version.
pub const METRICS_VERSION: &str = "v1beta1";

fn group_version(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn api_group(group: &str, version: &str) -> Value {
    json!({
        "name": group,
        "versions": [group_version(group, version)],
        "preferredVersion": group_version(group, version),
    })
}

async fn apis() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(METRICS_GROUP, METRICS_VERSION)],
    }))
}

async fn metrics_group() -> Json<Value> {
    let mut group = api_group(METRICS_GROUP, METRICS_VERSION);
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Json(group)
}

async fn metrics_resources() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{METRICS_GROUP}/{METRICS_VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    }))
}

/// Routes for `/apis`, `/apis/metrics.k8s.io` and `/apis/metrics.k8s.io/v1beta1`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/apis", get(apis))
        .route("/apis/metrics.k8s.io", get(metrics_group))
        .route("/apis/metrics.k8s.io/v1beta1", get(metrics_resources))
}
