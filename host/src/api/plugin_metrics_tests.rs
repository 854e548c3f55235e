//! Router tests of `custom.metrics.k8s.io` (v1beta1, v1beta2) and `external.metrics.k8s.io`
//! over a hand-built snapshot: exact JSON, selectors, staleness, failures, discovery, methods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::router;
use super::tests::{T, core_snapshot, labels, state_from, urlencode};
use crate::sources::cluster::LabelSet;
use crate::sources::discovery::ApiTable;
use crate::store::Snapshot;
use crate::store::custom::{
    CustomMetric, ExternalMetric, ExternalValue, MetricState, ObjectResource, ObjectValue,
    PublishedMetric,
};

const CUSTOM: &str = "/apis/custom.metrics.k8s.io";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";
/// The clock of every request: 10 s after the samples.
const NOW: i64 = T + 10_000;
/// 2022-01-27T18:48:33Z, the samples' time.
const TS: &str = "2022-01-27T18:48:33Z";

fn published<V>(
    plugin: &str,
    name: &str,
    namespaced: bool,
    state: MetricState<V>,
) -> PublishedMetric<V> {
    PublishedMetric {
        name: name.into(),
        plugin: plugin.into(),
        namespaced,
        max_age_ms: 60_000,
        described: None,
        state,
    }
}

fn object(
    (namespace, name): (&str, &str),
    object_labels: &Arc<LabelSet>,
    metric_labels: &[(&str, &str)],
    value: f64,
    timestamp_ms: i64,
    window_ms: Option<i64>,
) -> ObjectValue {
    ObjectValue {
        namespace: namespace.into(),
        name: name.into(),
        object_labels: object_labels.clone(),
        metric_labels: labels(metric_labels),
        value,
        timestamp_ms,
        window_ms,
    }
}

fn external(
    namespace: &str,
    l: &[(&str, &str)],
    value: f64,
    ts: i64,
    window_ms: Option<i64>,
) -> ExternalValue {
    ExternalValue {
        namespace: namespace.into(),
        labels: labels(l),
        value,
        timestamp_ms: ts,
        window_ms,
    }
}

/// The core snapshot plus what plugins publish: custom metrics on pods (two series for `p`, one
/// stale pod `s`), a deployment, namespaces and a failed node metric; external metrics cluster-wide,
/// namespaced and failed.
fn plugin_snapshot() -> Snapshot {
    let mut snap = core_snapshot();
    let p = labels(&[
        ("app", "web"),
        ("app.kubernetes.io/name", "my-app.v1"),
        ("tier", "front-end.v2"),
    ]);
    let q = labels(&[("app", "db")]);
    let r = labels(&[("app", "web")]);
    let custom: Vec<CustomMetric> = vec![
        published(
            "rate",
            "http_requests_per_second",
            true,
            MetricState::Values(vec![
                object(
                    ("default", "p"),
                    &p,
                    &[("code", "200"), ("handler", "api")],
                    1.5,
                    T,
                    Some(60_000),
                ),
                object(
                    ("default", "p"),
                    &p,
                    &[("code", "200"), ("handler", "health")],
                    0.25,
                    T,
                    Some(30_000),
                ),
                object(
                    ("default", "q"),
                    &q,
                    &[("code", "500"), ("handler", "api")],
                    2.0,
                    T,
                    Some(60_000),
                ),
                object(
                    ("default", "s"),
                    &r,
                    &[("code", "200"), ("handler", "api")],
                    9.0,
                    T - 120_000,
                    Some(60_000),
                ),
                object(
                    ("kube-system", "r"),
                    &r,
                    &[("code", "200"), ("handler", "api")],
                    3.0,
                    T,
                    Some(60_000),
                ),
            ]),
        ),
        published(
            "queue",
            "queue_depth",
            true,
            MetricState::Values(vec![object(("default", "web"), &r, &[], 42.0, T, None)]),
        ),
        published(
            "queue",
            "pending_pods",
            false,
            MetricState::Values(vec![
                object(("", "default"), &Arc::default(), &[], 3.0, T, None),
                object(("", "kube-system"), &Arc::default(), &[], 0.0, T, None),
            ]),
        ),
        published(
            "load",
            "load_average",
            false,
            MetricState::Failed("trap in process: wasm `unreachable` instruction executed".into()),
        ),
    ];
    let resources = [
        ObjectResource::pods(),
        ObjectResource::deployments(),
        ObjectResource::namespaces(),
        ObjectResource::nodes(),
    ];
    let table = ApiTable::builtin();
    for (resource, mut metric) in resources.into_iter().zip(custom) {
        metric.described = table.get(&resource).cloned();
        snap.plugin_metrics
            .custom
            .insert((resource, metric.name.clone()), metric);
    }
    let externals: Vec<ExternalMetric> = vec![
        published(
            "queue",
            "queue_messages_ready",
            false,
            MetricState::Values(vec![
                external(
                    "",
                    &[("queue", "billing-events.v1")],
                    120.0,
                    T,
                    Some(30_000),
                ),
                external("", &[("queue", "orders")], 7.5, T, None),
                external("", &[("queue", "stale")], 1.0, T - 600_000, None),
            ]),
        ),
        published(
            "tenants",
            "tenant_requests",
            true,
            MetricState::Values(vec![
                external("default", &[("tenant", "a")], 10.0, T, None),
                external("team-b", &[("tenant", "b")], 20.0, T, None),
            ]),
        ),
        published(
            "broken",
            "broken",
            false,
            MetricState::Failed("deadline exceeded after 100 ms".into()),
        ),
        published(
            "lag",
            "consumer_lag",
            false,
            MetricState::Unavailable("prometheus \"main\": connection refused".into()),
        ),
    ];
    for metric in externals {
        snap.plugin_metrics
            .external
            .insert(metric.name.clone(), metric);
    }
    snap
}

async fn request_in(snap: Snapshot, method: Method, uri: &str) -> (StatusCode, Value) {
    let app = router(state_from(snap, Arc::new(AtomicI64::new(NOW))));
    let resp = app
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(uri: &str) -> (StatusCode, Value) {
    request_in(plugin_snapshot(), Method::GET, uri).await
}

/// `get` that must succeed.
async fn ok(uri: &str) -> Value {
    let (status, body) = get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

/// `get` that must fail with `code`; returns the Status message.
async fn fails(uri: &str, code: StatusCode) -> String {
    let (status, body) = get(uri).await;
    assert_eq!(status, code, "{uri}: {body}");
    assert_eq!(body["kind"], "Status", "{uri}");
    assert_eq!(body["code"], code.as_u16(), "{uri}");
    body["message"].as_str().unwrap().to_string()
}

/// `namespace/name` of each item's described object, in order.
fn objects(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let o = &i["describedObject"];
            match o["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", o["name"].as_str().unwrap()),
                None => o["name"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn values(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect()
}

fn pod_v1beta2(name: &str, value: &str, selector: Value) -> Value {
    json!({"describedObject":{"kind":"Pod","namespace":"default","name":name,"apiVersion":"/v1"},
           "metric":{"name":"http_requests_per_second","selector":selector},
           "timestamp":TS,"windowSeconds":60,"value":value})
}

#[tokio::test]
async fn pods_list_has_the_exact_v1beta2_shape() {
    let body = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/*/http_requests_per_second"
    ))
    .await;
    assert_eq!(
        body,
        json!({"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
               "items":[pod_v1beta2("p", "1750m", Value::Null), pod_v1beta2("q", "2", Value::Null)]}),
        "p sums its two series with the longest window; the stale pod is left out"
    );
}

#[tokio::test]
async fn pods_list_has_the_exact_v1beta1_shape() {
    let body = ok(&format!(
        "{CUSTOM}/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?metricLabelSelector=code%3D200"
    ))
    .await;
    assert_eq!(
        body,
        json!({"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},
               "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"p","apiVersion":"/v1"},
                         "metricName":"http_requests_per_second","timestamp":TS,"window":60,
                         "value":"1750m","selector":{"matchLabels":{"code":"200"}}}]})
    );
}

#[tokio::test]
async fn single_objects_are_lists_of_one() {
    let body = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/p/http_requests_per_second?metricLabelSelector=handler%20in%20(api)"
    ))
    .await;
    let selector = json!({"matchExpressions":[{"key":"handler","operator":"In","values":["api"]}]});
    assert_eq!(body["items"], json!([pod_v1beta2("p", "1500m", selector)]));

    for path in ["deployments.apps", "deployments"] {
        let body = ok(&format!(
            "{CUSTOM}/v1beta1/namespaces/default/{path}/web/queue_depth"
        ))
        .await;
        assert_eq!(
            body["items"],
            json!([{"describedObject":{"kind":"Deployment","namespace":"default","name":"web","apiVersion":"apps/v1"},
                    "metricName":"queue_depth","timestamp":TS,"value":"42","selector":null}]),
            "{path}: no window when the value has none"
        );
    }

    let body = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/metrics/pending_pods"
    ))
    .await;
    assert_eq!(
        body["items"],
        json!([{"describedObject":{"kind":"Namespace","name":"default","apiVersion":"/v1"},
                "metric":{"name":"pending_pods","selector":null},"timestamp":TS,"value":"3"}])
    );
    let body = ok(&format!("{CUSTOM}/v1beta2/namespaces/*/pending_pods")).await;
    assert_eq!(objects(&body), ["default", "kube-system"]);
    assert_eq!(values(&body), ["3", "0"]);
}

#[tokio::test]
async fn built_in_metrics_come_from_the_core_snapshot() {
    let body = ok(&format!("{CUSTOM}/v1beta2/nodes/minikube/cpu_usage")).await;
    assert_eq!(
        body["items"],
        json!([{"describedObject":{"kind":"Node","name":"minikube","apiVersion":"/v1"},
                "metric":{"name":"cpu_usage","selector":null},"timestamp":TS,"windowSeconds":30,
                "value":"487558164n"}])
    );
    let body = ok(&format!(
        "{CUSTOM}/v1beta1/nodes/*/memory_working_set_bytes"
    ))
    .await;
    assert_eq!(objects(&body), ["minikube"], "the stale node is left out");
    assert_eq!(values(&body), ["732212Ki"]);
    assert!(
        body["items"][0].get("window").is_none(),
        "memory is instantaneous"
    );

    let body = ok(&format!(
        "{CUSTOM}/v1beta1/namespaces/default/pods/*/cpu_usage"
    ))
    .await;
    assert_eq!(objects(&body), ["default/p", "default/q"]);
    assert_eq!(values(&body), ["0", "0"]);
    assert_eq!(body["items"][0]["window"], 18, "17.913 s rounds to 18 s");
    let body = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/*/memory_working_set_bytes?labelSelector=app%3Ddb"
    ))
    .await;
    assert_eq!(objects(&body), ["default/q"]);
    assert_eq!(values(&body), ["4620Ki"]);

    // Built-ins have no series labels: a series selector keeps all or nothing.
    let all = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/*/cpu_usage?metricLabelSelector=%21code"
    ))
    .await;
    assert_eq!(objects(&all), ["default/p", "default/q"]);
    let none = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/*/cpu_usage?metricLabelSelector=code"
    ))
    .await;
    assert_eq!(objects(&none), Vec::<String>::new());

    let msg = fails(
        &format!("{CUSTOM}/v1beta2/nodes/old/cpu_usage"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        msg.contains("s old, older than the maximum age 45 s"),
        "{msg}"
    );
}

#[tokio::test]
async fn object_label_selectors_filter_wildcard_requests() {
    for (selector, want) in [
        ("app in (web,db)", vec!["default/p", "default/q"]),
        ("app notin (web)", vec!["default/q"]),
        ("!tier", vec!["default/q"]),
        ("tier", vec!["default/p"]),
        ("tier=front-end.v2", vec!["default/p"]),
        ("app.kubernetes.io/name=my-app.v1", vec!["default/p"]),
        ("app=web,tier!=front-end.v2", vec![]),
        ("app!=web", vec!["default/q"]),
    ] {
        let uri = format!(
            "{CUSTOM}/v1beta2/namespaces/default/pods/*/http_requests_per_second?labelSelector={}",
            urlencode(selector)
        );
        assert_eq!(objects(&ok(&uri).await), want, "{selector}");
    }
    // labelSelector applies to `*` requests only, as in custom-metrics-apiserver.
    let uri = format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/q/http_requests_per_second?labelSelector=app%3Dweb"
    );
    assert_eq!(objects(&ok(&uri).await), ["default/q"]);
}

#[tokio::test]
async fn metric_label_selectors_pick_and_sum_series() {
    for (selector, want) in [
        ("code=200", vec![("default/p", "1750m")]),
        (
            "handler in (api)",
            vec![("default/p", "1500m"), ("default/q", "2")],
        ),
        (
            "handler notin (health)",
            vec![("default/p", "1500m"), ("default/q", "2")],
        ),
        ("code!=500,handler", vec![("default/p", "1750m")]),
        ("!code", vec![]),
        ("handler=health", vec![("default/p", "250m")]),
    ] {
        let uri = format!(
            "{CUSTOM}/v1beta1/namespaces/default/pods/*/http_requests_per_second?metricLabelSelector={}",
            urlencode(selector)
        );
        let body = ok(&uri).await;
        let got: Vec<(String, String)> = objects(&body).into_iter().zip(values(&body)).collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(o, v)| (o.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{selector}");
    }
    let body = ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/default/pods/*/http_requests_per_second?metricLabelSelector={}",
        urlencode("code!=500,handler")
    ))
    .await;
    assert_eq!(
        body["items"][0]["metric"]["selector"],
        json!({"matchExpressions":[{"key":"code","operator":"NotIn","values":["500"]},
                                   {"key":"handler","operator":"Exists"}]})
    );
}

#[tokio::test]
async fn bad_selectors_are_400_naming_the_parameter() {
    let base = format!("{CUSTOM}/v1beta2/namespaces/default/pods/*/http_requests_per_second");
    for (query, needle) in [
        (
            "labelSelector=app%20in%20(a",
            "invalid labelSelector \"app in (a\"",
        ),
        (
            "metricLabelSelector=%3Da",
            "invalid metricLabelSelector \"=a\"",
        ),
        (
            "metricLabelSelector=n%3E3",
            "\"gt\" isn't supported in label selectors",
        ),
    ] {
        let msg = fails(&format!("{base}?{query}"), StatusCode::BAD_REQUEST).await;
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    let msg = fails(
        &format!("{EXTERNAL}/namespaces/default/queue_messages_ready?labelSelector=a%20notin"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        msg.starts_with("invalid labelSelector \"a notin\""),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_metrics_objects_and_stale_values_are_404() {
    let v2 = format!("{CUSTOM}/v1beta2");
    for (path, message) in [
        (
            "namespaces/default/pods/*/nope",
            "the server could not find the metric nope for pods",
        ),
        (
            "pods/*/http_requests_per_second",
            "the server could not find the metric http_requests_per_second for pods",
        ),
        (
            "namespaces/default/services/s/x",
            "the server could not find the metric x for services",
        ),
        (
            "namespaces/default/pods/zzz/http_requests_per_second",
            "the server could not find the metric http_requests_per_second for pods zzz",
        ),
        (
            "namespaces/default/pods/q/http_requests_per_second?metricLabelSelector=code%3D200",
            "the server could not find the metric http_requests_per_second for pods q with selector code=200",
        ),
        (
            "namespaces/default/pods/s/http_requests_per_second",
            "the server could not find the metric http_requests_per_second for pods s: its newest value (2022-01-27T18:46:33Z) is 130 s old, older than the maximum age 60 s",
        ),
        (
            "namespaces/default/metrics/queue_depth",
            "the server could not find the metric queue_depth for namespaces",
        ),
    ] {
        let (status, body) = get(&format!("{v2}/{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":message,"reason":"NotFound","code":404}),
            "{path}"
        );
    }
    // A wildcard with no match is an empty list, not an error.
    let body = ok(&format!(
        "{v2}/namespaces/empty/pods/*/http_requests_per_second"
    ))
    .await;
    assert_eq!(body["items"], json!([]));
    // Malformed paths are plain unknown paths.
    fails(
        &format!("{v2}/namespaces/default/pods/p"),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn failed_metrics_are_500_with_the_plugin_reason() {
    for uri in [
        format!("{CUSTOM}/v1beta2/nodes/n1/load_average"),
        format!("{CUSTOM}/v1beta1/nodes/*/load_average"),
    ] {
        let (status, body) = get(&uri).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(body["reason"], "InternalError");
        assert_eq!(
            body["message"],
            "Internal error occurred: metric load_average for nodes is unavailable: plugin load failed: trap in process: wasm `unreachable` instruction executed"
        );
    }
    let msg = fails(
        &format!("{EXTERNAL}/namespaces/default/broken"),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert!(
        msg.ends_with("plugin broken failed: deadline exceeded after 100 ms"),
        "{msg}"
    );
    // A metric the plugin itself reported failed (contract 0.2.0): 500 with its message.
    let msg = fails(
        &format!("{EXTERNAL}/namespaces/default/consumer_lag"),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert!(
        msg.ends_with(
            "external metric consumer_lag is unavailable: plugin lag could not compute it: prometheus \"main\": connection refused"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn external_metrics_have_the_exact_shape_and_filter_by_labels() {
    let body = ok(&format!(
        "{EXTERNAL}/namespaces/default/queue_messages_ready"
    ))
    .await;
    assert_eq!(
        body,
        json!({"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},
               "items":[
                 {"metricName":"queue_messages_ready","metricLabels":{"queue":"billing-events.v1"},
                  "timestamp":TS,"window":30,"value":"120"},
                 {"metricName":"queue_messages_ready","metricLabels":{"queue":"orders"},
                  "timestamp":TS,"value":"7500m"}]}),
        "the stale series is left out"
    );
    for (selector, want) in [
        ("queue in (orders)", vec!["7500m"]),
        ("queue notin (orders)", vec!["120"]),
        ("queue=billing-events.v1", vec!["120"]),
        ("queue!=billing-events.v1", vec!["7500m"]),
        ("queue", vec!["120", "7500m"]),
        ("!queue", vec![]),
    ] {
        let uri = format!(
            "{EXTERNAL}/namespaces/any/queue_messages_ready?labelSelector={}",
            urlencode(selector)
        );
        assert_eq!(values(&ok(&uri).await), want, "{selector}");
    }
    // A namespaced metric serves the request's namespace only.
    assert_eq!(
        values(&ok(&format!("{EXTERNAL}/namespaces/default/tenant_requests")).await),
        ["10"]
    );
    assert_eq!(
        values(&ok(&format!("{EXTERNAL}/namespaces/team-b/tenant_requests")).await),
        ["20"]
    );
    assert_eq!(
        values(&ok(&format!("{EXTERNAL}/namespaces/other/tenant_requests")).await),
        Vec::<String>::new()
    );

    let msg = fails(
        &format!("{EXTERNAL}/namespaces/default/nope"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(msg, "the server could not find the external metric nope");
}

#[tokio::test]
async fn built_in_external_metric_counts_served_pods_per_namespace() {
    let body = ok(&format!(
        "{EXTERNAL}/namespaces/default/cluster_pods_served"
    ))
    .await;
    assert_eq!(
        body["items"],
        json!([
            {"metricName":"cluster_pods_served","metricLabels":{"namespace":"default"},"timestamp":TS,"value":"2"},
            {"metricName":"cluster_pods_served","metricLabels":{"namespace":"kube-system"},"timestamp":TS,"value":"1"}]),
        "default/stale is not counted"
    );
    let body = ok(&format!(
        "{EXTERNAL}/namespaces/default/cluster_pods_served?labelSelector=namespace%3Dkube-system"
    ))
    .await;
    assert_eq!(values(&body), ["1"]);
}

fn discovered(body: &Value) -> BTreeMap<String, bool> {
    body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn discovery_lists_published_and_built_in_metrics() {
    for version in ["v1beta1", "v1beta2"] {
        let body = ok(&format!("{CUSTOM}/{version}")).await;
        assert_eq!(body["kind"], "APIResourceList");
        assert_eq!(
            body["groupVersion"],
            format!("custom.metrics.k8s.io/{version}")
        );
        assert_eq!(
            body["resources"][0],
            json!({"name":"deployments.apps/queue_depth","singularName":"","namespaced":true,
                   "kind":"MetricValueList","verbs":["get"]})
        );
        let want: BTreeMap<String, bool> = [
            ("deployments.apps/queue_depth", true),
            ("namespaces/pending_pods", false),
            ("nodes/cpu_usage", false),
            ("nodes/load_average", false),
            ("nodes/memory_working_set_bytes", false),
            ("pods/cpu_usage", true),
            ("pods/http_requests_per_second", true),
            ("pods/memory_working_set_bytes", true),
        ]
        .into_iter()
        .map(|(n, ns)| (n.to_string(), ns))
        .collect();
        assert_eq!(discovered(&body), want, "{version}");
    }
    let body = ok(EXTERNAL).await;
    assert_eq!(body["groupVersion"], "external.metrics.k8s.io/v1beta1");
    assert_eq!(body["resources"][0]["kind"], "ExternalMetricValueList");
    let want: BTreeMap<String, bool> = [
        ("broken", false),
        ("cluster_pods_served", false),
        ("consumer_lag", false),
        ("queue_messages_ready", false),
        ("tenant_requests", true),
    ]
    .into_iter()
    .map(|(n, ns)| (n.to_string(), ns))
    .collect();
    assert_eq!(discovered(&body), want);

    // Without plugins, the built-ins keep both lists non-empty.
    let (_, custom) = request_in(core_snapshot(), Method::GET, &format!("{CUSTOM}/v1beta2")).await;
    assert_eq!(
        discovered(&custom).into_keys().collect::<Vec<_>>(),
        [
            "nodes/cpu_usage",
            "nodes/memory_working_set_bytes",
            "pods/cpu_usage",
            "pods/memory_working_set_bytes"
        ]
    );
    let (_, ext) = request_in(core_snapshot(), Method::GET, EXTERNAL).await;
    assert_eq!(
        discovered(&ext).into_keys().collect::<Vec<_>>(),
        ["cluster_pods_served"]
    );

    let (_, group) = get(CUSTOM).await;
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["preferredVersion"]["version"], "v1beta2");
    let (_, group) = get("/apis/external.metrics.k8s.io").await;
    assert_eq!(group["name"], "external.metrics.k8s.io");
}

#[tokio::test]
async fn other_methods_are_405_status() {
    for uri in [
        format!("{CUSTOM}/v1beta2/namespaces/default/pods/*/http_requests_per_second"),
        format!("{CUSTOM}/v1beta1"),
        format!("{EXTERNAL}/namespaces/default/queue_messages_ready"),
        "/apis/metrics.k8s.io/v1beta1/nodes".to_string(),
    ] {
        for method in [Method::POST, Method::DELETE] {
            let (status, body) = request_in(plugin_snapshot(), method.clone(), &uri).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_eq!(body["reason"], "MethodNotAllowed", "{method} {uri}");
        }
    }
}
