//! Cost of answering the HPA's `custom.metrics.k8s.io` request from the snapshot
//! (`cargo bench -p metrics-gateway --bench api`): the router (path, selectors, collection,
//! JSON) and the body, without TLS or authentication, for a pods metric over 2,000 pods (every
//! pod selected, as for a 2,000-replica workload) and over one Deployment's 40.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt as _;
use metrics_gateway::api::{ApiState, router};
use metrics_gateway::clock::Clock;
use metrics_gateway::sources::cluster::LabelSet;
use metrics_gateway::sources::discovery::ResourceInfo;
use metrics_gateway::store::Snapshot;
use metrics_gateway::store::custom::{MetricState, ObjectResource, ObjectValue, PublishedMetric};
use tower::ServiceExt as _;

const PODS: usize = 2_000;
const DEPLOYMENTS: usize = 50;
/// 2022-01-27T18:48:33Z.
const T: i64 = 1_643_309_313_000;
const METRIC: &str = "http_requests_per_second";

fn labels(pairs: &[(&str, &str)]) -> Arc<LabelSet> {
    Arc::new(LabelSet(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

/// A snapshot with one plugin metric on `PODS` pods of namespace `default`, as the compat
/// plugin publishes a rate: one value per pod, labels `{namespace, pod}`, a 2-minute window.
fn snapshot() -> Snapshot {
    let mut values: Vec<ObjectValue> = (0..PODS)
        .map(|i| {
            let app = format!("app-{}", i % DEPLOYMENTS);
            let name = format!("{app}-7d4b9c8f6d-{i:05}");
            ObjectValue {
                namespace: "default".into(),
                name: name.as_str().into(),
                object_labels: labels(&[
                    ("app", &app),
                    ("pod-template-hash", "7d4b9c8f6d"),
                    ("tier", "web"),
                ]),
                metric_labels: labels(&[("namespace", "default"), ("pod", &name)]),
                value: 0.25 * (i + 1) as f64 + 0.001,
                timestamp_ms: T,
                window_ms: Some(120_000),
            }
        })
        .collect();
    values.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut snap = Snapshot::default();
    snap.plugin_metrics.custom.insert(
        (ObjectResource::pods(), METRIC.into()),
        PublishedMetric {
            name: METRIC.into(),
            plugin: "adapter".into(),
            namespaced: true,
            max_age_ms: 60_000,
            described: Some(Arc::new(ResourceInfo::new(
                "", "v1", "pods", "pod", "Pod", true,
            ))),
            state: MetricState::Values(values),
        },
    );
    snap
}

fn app() -> Router {
    router(ApiState::serving(snapshot(), Clock::from_fn(|| T + 10_000)))
}

async fn get(app: &Router, uri: &str) -> usize {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let app = app();
    let mut group = c.benchmark_group("api/custom_pods");
    for (name, selector, items) in [
        ("all_2000", "tier%3Dweb", PODS),
        ("deployment_40", "app%3Dapp-4", PODS / DEPLOYMENTS),
    ] {
        for version in ["v1beta1", "v1beta2"] {
            let uri = format!(
                "/apis/custom.metrics.k8s.io/{version}/namespaces/default/pods/*/{METRIC}?labelSelector={selector}"
            );
            let bytes = runtime.block_on(get(&app, &uri));
            let body: serde_json::Value = runtime.block_on(async {
                let response = app
                    .clone()
                    .oneshot(Request::get(&uri).body(Body::empty()).expect("request"))
                    .await
                    .expect("infallible");
                serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                    .expect("JSON")
            });
            assert_eq!(body["items"].as_array().map(Vec::len), Some(items), "{uri}");
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function(format!("{name}/{version}"), |b| {
                b.iter(|| runtime.block_on(get(&app, &uri)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
