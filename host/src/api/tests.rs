//! Router tests without a socket: exact JSON shapes, selectors, staleness and errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiState, router};
use crate::clock::Clock;
use crate::core_metrics::Usage;
use crate::sources::cluster::LabelSet;
use crate::store::{ContainerUsage, NodeMetrics, PodMetrics, Snapshot};

/// 2022-01-27T18:48:33Z.
pub(super) const T: i64 = 1_643_309_313_000;

pub(super) fn labels(pairs: &[(&str, &str)]) -> Arc<LabelSet> {
    Arc::new(LabelSet(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

fn pod(ns: &str, name: &str, l: &[(&str, &str)], ts: i64) -> PodMetrics {
    PodMetrics {
        namespace: ns.into(),
        name: name.into(),
        labels: labels(l),
        timestamp_ms: ts,
        window_ms: 17_913,
        containers: vec![ContainerUsage {
            name: "c".into(),
            cpu_nanocores: 0,
            memory_bytes: 4_730_880,
        }],
    }
}

fn state(now_ms: i64) -> ApiState {
    state_with_clock(Arc::new(AtomicI64::new(now_ms)))
}

fn state_with_clock(now: Arc<AtomicI64>) -> ApiState {
    state_from(core_snapshot(), now)
}

/// The core metrics every API test starts from: nodes `minikube` (fresh) and `old` (stale); pods
/// `default/p`, `default/q`, `kube-system/r` (fresh) and `default/stale`.
pub(super) fn core_snapshot() -> Snapshot {
    let mut snap = Snapshot {
        cycle: 1,
        ..Snapshot::default()
    };
    snap.nodes.insert(
        "minikube".into(),
        NodeMetrics {
            name: "minikube".into(),
            labels: labels(&[("zone", "a")]),
            usage: Usage {
                timestamp_ms: T,
                window_ms: 30_000,
                cpu_nanocores: 487_558_164,
                memory_bytes: 749_785_088,
            },
        },
    );
    snap.nodes.insert(
        "old".into(),
        NodeMetrics {
            name: "old".into(),
            labels: labels(&[]),
            usage: Usage {
                timestamp_ms: T - 600_000,
                window_ms: 15_000,
                cpu_nanocores: 1,
                memory_bytes: 1,
            },
        },
    );
    let pods = [
        pod(
            "default",
            "p",
            &[("app", "web"), ("app.kubernetes.io/name", "my-app.v1")],
            T,
        ),
        pod("default", "q", &[("app", "db")], T),
        pod("kube-system", "r", &[("app", "web")], T),
        pod("default", "stale", &[("app", "web")], T - 600_000),
    ];
    let mut by_namespace: BTreeMap<Arc<str>, Vec<PodMetrics>> = BTreeMap::new();
    for p in pods {
        by_namespace.entry(p.namespace.clone()).or_default().push(p);
    }
    for (ns, pods) in by_namespace {
        snap.set_namespace(ns, pods);
    }
    snap
}

/// An API state serving `snap`, with the clock reading `now`.
pub(super) fn state_from(snap: Snapshot, now: Arc<AtomicI64>) -> ApiState {
    ApiState::serving(snap, Clock::from_fn(move || now.load(Ordering::SeqCst)))
}

async fn get(uri: &str) -> (StatusCode, Value) {
    let (status, body) = get_text(uri).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn get_text(uri: &str) -> (StatusCode, String) {
    let resp = router(state(T + 10_000))
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", i["metadata"]["name"].as_str().unwrap()),
            None => i["metadata"]["name"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[tokio::test]
async fn node_get_has_the_exact_metrics_server_shape() {
    let (status, body) = get("/apis/metrics.k8s.io/v1beta1/nodes/minikube").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1",
               "metadata":{"name":"minikube","creationTimestamp":"2022-01-27T18:48:43Z","labels":{"zone":"a"}},
               "timestamp":"2022-01-27T18:48:33Z","window":"30s",
               "usage":{"cpu":"487558164n","memory":"732212Ki"}})
    );
}

#[tokio::test]
async fn pod_get_and_lists_have_the_exact_shapes() {
    let (status, body) = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/q").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1",
               "metadata":{"name":"q","namespace":"default","creationTimestamp":"2022-01-27T18:48:43Z","labels":{"app":"db"}},
               "timestamp":"2022-01-27T18:48:33Z","window":"17.913s",
               "containers":[{"name":"c","usage":{"cpu":"0","memory":"4620Ki"}}]})
    );
    let (_, list) = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").await;
    assert_eq!(list["kind"], "PodMetricsList");
    assert_eq!(list["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(list["metadata"], json!({}));
    assert!(
        list["items"][0].get("kind").is_none(),
        "list items carry no TypeMeta"
    );
    assert_eq!(
        names(&list),
        ["default/p", "default/q"],
        "stale pod left out, sorted by name"
    );
    let (_, all) = get("/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(names(&all), ["default/p", "default/q", "kube-system/r"]);
    let (_, nodes) = get("/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(nodes["kind"], "NodeMetricsList");
    assert_eq!(names(&nodes), ["minikube"]);
}

#[tokio::test]
async fn label_selectors_filter_with_full_syntax() {
    for (selector, want) in [
        ("app=web", vec!["default/p", "kube-system/r"]),
        ("app==web", vec!["default/p", "kube-system/r"]),
        ("app!=web", vec!["default/q"]),
        ("app in (db,cache)", vec!["default/q"]),
        ("app notin (db)", vec!["default/p", "kube-system/r"]),
        ("app.kubernetes.io/name", vec!["default/p"]),
        (
            "!app.kubernetes.io/name",
            vec!["default/q", "kube-system/r"],
        ),
        ("app.kubernetes.io/name=my-app.v1", vec!["default/p"]),
        ("app=web,app.kubernetes.io/name=other", vec![]),
    ] {
        let uri = format!(
            "/apis/metrics.k8s.io/v1beta1/pods?labelSelector={}",
            urlencode(selector)
        );
        let (status, list) = get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{selector}");
        assert_eq!(names(&list), want, "{selector}");
    }
    let (_, nodes) = get("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db").await;
    assert!(names(&nodes).is_empty());
}

#[tokio::test]
async fn field_selectors_on_name_and_namespace() {
    for (selector, want) in [
        ("metadata.name=q", vec!["default/q"]),
        ("metadata.namespace=kube-system", vec!["kube-system/r"]),
        ("metadata.namespace!=default", vec!["kube-system/r"]),
        (
            "metadata.namespace==default,metadata.name!=p",
            vec!["default/q"],
        ),
    ] {
        let uri = format!(
            "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector={}",
            urlencode(selector)
        );
        let (_, list) = get(&uri).await;
        assert_eq!(names(&list), want, "{selector}");
    }
    let (_, nodes) =
        get("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dminikube").await;
    assert_eq!(names(&nodes), ["minikube"]);
}

#[tokio::test]
async fn bad_selectors_are_400_status() {
    for uri in [
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(a",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=%3Da",
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx",
    ] {
        let (status, body) = get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "BadRequest");
        assert_eq!(body["code"], 400);
    }
    let (_, body) = get("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported: spec.nodeName"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_and_stale_objects_are_404_status() {
    let (status, body) = get("/apis/metrics.k8s.io/v1beta1/nodes/old").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "stale node is not served");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("nodemetrics.metrics.k8s.io \"old\" not found: its newest sample is ")
            && message.ends_with("s old, older than the maximum age 45 s"),
        "{message}"
    );
    assert_eq!(body["reason"], "NotFound");
    let (status, body) = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"podmetrics.metrics.k8s.io \"default/nope\" not found","reason":"NotFound",
               "details":{"name":"default/nope","group":"metrics.k8s.io","kind":"podmetrics"},"code":404})
    );
    let (status, body) = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/stale").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "podmetrics.metrics.k8s.io \"default/stale\" not found: its newest sample is "
        ) && message.contains("older than the maximum age 45 s"),
        "{message}"
    );
    let (status, body) = get("/apis/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
}

#[tokio::test]
async fn discovery_documents() {
    let (_, apis) = get("/apis").await;
    assert_eq!(
        apis,
        json!({"kind":"APIGroupList","apiVersion":"v1","groups":[
            {"name":"metrics.k8s.io",
             "versions":[{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}],
             "preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1","version":"v1beta1"}},
            {"name":"custom.metrics.k8s.io",
             "versions":[{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"},
                         {"groupVersion":"custom.metrics.k8s.io/v1beta1","version":"v1beta1"}],
             "preferredVersion":{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"}},
            {"name":"external.metrics.k8s.io",
             "versions":[{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}],
             "preferredVersion":{"groupVersion":"external.metrics.k8s.io/v1beta1","version":"v1beta1"}}]})
    );
    let (_, group) = get("/apis/metrics.k8s.io").await;
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["name"], "metrics.k8s.io");
    let (_, resources) = get("/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(resources["kind"], "APIResourceList");
    assert_eq!(resources["groupVersion"], "metrics.k8s.io/v1beta1");
    let r: BTreeMap<String, (bool, String)> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                (
                    r["namespaced"].as_bool().unwrap(),
                    r["kind"].as_str().unwrap().into(),
                ),
            )
        })
        .collect();
    assert_eq!(r["nodes"], (false, "NodeMetrics".to_string()));
    assert_eq!(r["pods"], (true, "PodMetrics".to_string()));
}

#[tokio::test]
async fn health_endpoints_report_checks() {
    let (status, body) = get_text("/livez").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, body) = get_text("/livez?verbose").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "[+]ping ok\n[+]collection-timely ok\nlivez check passed\n"
    );
    // No watch synced and no cycle done: not ready, and it says why.
    let (status, body) = get_text("/readyz").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("[-]cluster-synced failed"), "{body}");
    assert!(body.contains("[-]first-cycle-done failed"), "{body}");
    assert!(body.ends_with("readyz check failed\n"), "{body}");
}

#[tokio::test]
async fn liveness_fails_when_collection_stalls() {
    let now = Arc::new(AtomicI64::new(T));
    let app = router(state_with_clock(now.clone()));
    let livez = || Request::get("/livez").body(Body::empty()).unwrap();
    assert_eq!(
        app.clone().oneshot(livez()).await.unwrap().status(),
        StatusCode::OK
    );
    now.fetch_add(61_000, Ordering::SeqCst);
    let resp = app.oneshot(livez()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body)
            .contains("[-]collection-timely failed: no collection cycle started for 61 s")
    );
}

#[tokio::test]
async fn self_metrics_count_requests_by_route() {
    let app = router(state(T + 10_000));
    app.clone()
        .oneshot(
            Request::get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/q")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let resp = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(r#"metrics_gateway_api_request_duration_seconds_count{route="/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",code="200"} 1"#),
        "{text}"
    );
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn unavailable_resource_metrics_are_500_naming_the_plugin() {
    let mut snap = core_snapshot();
    snap.unavailable.pods =
        Some("resource metric cpu of pods is unavailable: plugin adapter failed".into());
    let state = state_from(snap, Arc::new(AtomicI64::new(T + 10_000)));
    let app = router(state);
    for uri in [
        "/apis/metrics.k8s.io/v1beta1/pods",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1",
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["reason"], "InternalError");
        assert_eq!(
            body["message"],
            "Internal error occurred: metrics.k8s.io pods unavailable: resource metric cpu of \
             pods is unavailable: plugin adapter failed"
        );
    }
    // Nodes are not affected.
    let resp = app
        .oneshot(
            Request::get("/apis/metrics.k8s.io/v1beta1/nodes")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
