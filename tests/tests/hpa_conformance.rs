//! HPA request conformance: for every `autoscaling/v2` metric source, the exact requests
//! kube-controller-manager's metrics client makes (paths, `labelSelector` /
//! `metricLabelSelector`, the Namespace object's own path, `Accept`, the custom metrics version
//! chosen from discovery, and both custom versions), sent as the HPA controller's service
//! account through the fake kube-apiserver's aggregated paths to the gateway running the demo's
//! plugins. Answers are decoded with the strict `k8s.io/metrics` mirrors (`metrics_types`),
//! checked against the simulated cluster's ground truth, and checked to be usable by the
//! controller (the pods match the selector, timestamps are recent, one value per object, sums
//! and utilization computable), and that stale values reach it as errors, never as numbers.
//! The HPA examples in docs/HPA.md are parsed and their requests issued too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec};
use k8s_openapi::api::core::v1::Pod;
use metrics_gateway::demo::{HPA_TOKEN, Rig, USER_TOKEN, demo_plugins};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimPod};
use metrics_gateway_testkit::hpa_client::{
    CustomVersion, HpaClientError, HpaMetricsClient, ObjectTarget, query, selector_string,
};
use metrics_gateway_testkit::kubelet_sim::pod_network_rate;
use metrics_gateway_testkit::metrics_types::{MetricValue, Quantity, Time};

/// The namespace whose HPAs the conformance scenario checks values in (untouched by faults).
const NS: &str = "default";
/// A Deployment there with three pods.
const APP: &str = "app-0";
/// The namespace where a container restarts and pods are Pending.
const BUSY_NS: &str = "ns-1";
/// A Deployment there; one of its containers restarts.
const BUSY_APP: &str = "app-1";
/// How many pods of `app-3` (in `BUSY_NS`) turn Pending.
const PENDING: usize = 2;
/// `metrics.max_sample_age_secs`' default for the rig's 15 s interval.
const MAX_AGE_MS: i64 = 45_000;

/// 150 pods: every app has three pods, all in one namespace (`app-k` in `default` for even k).
fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 5,
        pods_per_node: 30,
        containers_per_pod: (1, 3),
        namespaces: 2,
        ..ClusterSpec::default()
    }
}

/// The components `scripts/build-plugins.sh` writes, configured as the demo configures them.
fn plugins_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

/// A rig with the demo's plugins after its first collection cycle.
async fn demo_rig() -> (Rig, SimClock) {
    let plugins = demo_plugins(&plugins_dir());
    assert_eq!(
        plugins.len(),
        5,
        "the demo's five plugins are built into {} (scripts/build-plugins.sh)",
        plugins_dir().display()
    );
    let (rig, clock) = common::rig_with(spec(), |o| o.plugins = plugins).await;
    common::assert_plugins_loaded(&rig);
    rig.gateway.collector.run_cycle().await;
    (rig, clock)
}

/// The second cycle, 15 s after the first (rates need two samples).
async fn second_cycle(rig: &Rig, clock: &SimClock) {
    clock.advance(Duration::from_secs(15));
    let report = rig.gateway.collector.run_cycle().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

fn client(rig: &Rig, token: &str) -> HpaMetricsClient {
    HpaMetricsClient::new(&rig.apiserver.url(), &rig.apiserver.ca_pem(), token)
        .expect("a client for the fake API server")
}

/// Running pods of `app` in `namespace`, by name (the pods the HPA's selector `app=…` picks).
fn app_pods(rig: &Rig, namespace: &str, app: &str) -> BTreeMap<String, SimPod> {
    rig.cluster
        .read()
        .pods
        .values()
        .filter(|p| {
            p.namespace == namespace
                && p.phase == "Running"
                && p.labels.get("app").map(String::as_str) == Some(app)
        })
        .map(|p| (p.name.clone(), p.clone()))
        .collect()
}

/// A timestamp the controller would use: not in the future, not older than the servable age.
fn assert_recent(what: &str, timestamp: Time, now_ms: i64) {
    let age = now_ms - timestamp.0;
    assert!(
        (0..=MAX_AGE_MS).contains(&age),
        "{what}: timestamp {timestamp:?} is {age} ms old at {now_ms}"
    );
}

/// The pod selector the HPA gets from the target's scale subresource (`status.selector`, the
/// Deployment's `spec.selector` rendered as a label selector string).
async fn scale_selector(admin: &HpaMetricsClient, namespace: &str, deployment: &str) -> String {
    let body = admin
        .get(
            &format!("/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"),
            "application/json",
        )
        .await
        .unwrap_or_else(|e| panic!("Deployment {namespace}/{deployment}: {e}"));
    let d: Deployment = serde_json::from_slice(&body).expect("a Deployment");
    let selector = d.spec.expect("spec").selector;
    selector_string(Some(&selector)).expect("a valid selector")
}

/// The pods the HPA's informer lists for a selector (it reads their requests and readiness).
async fn listed_pods(hpa: &HpaMetricsClient, namespace: &str, selector: &str) -> Vec<Pod> {
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods{}",
        query(&[("labelSelector", selector)])
    );
    let body = hpa
        .get(&path, "application/json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice::<k8s_openapi::List<Pod>>(&body)
        .expect("a PodList")
        .items
}

/// `Σ requests` of `resource` over the pods (only `container` when given), in milli-units, as
/// the controller's `calculatePodRequests` sums them.
fn requests_milli(pods: &[Pod], resource: &str, container: Option<&str>) -> BTreeMap<String, i64> {
    pods.iter()
        .map(|pod| {
            let name = pod.metadata.name.clone().unwrap();
            let sum = pod
                .spec
                .as_ref()
                .unwrap()
                .containers
                .iter()
                .filter(|c| container.is_none_or(|n| c.name == n))
                .map(|c| {
                    let q = c
                        .resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get(resource))
                        .unwrap_or_else(|| panic!("{name}/{}: no {resource} request", c.name));
                    Quantity::parse(&q.0).unwrap().milli_value()
                })
                .sum();
            (name, sum)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hpa_metric_source_conforms_on_both_custom_versions() {
    let (rig, clock) = demo_rig().await;
    // In BUSY_NS only: one container of BUSY_APP restarts and PENDING pods of app-3 turn
    // Pending. NS stays untouched, so its values are exact.
    let busy = app_pods(&rig, BUSY_NS, BUSY_APP);
    let victim = busy.values().next().expect("BUSY_APP has pods").clone();
    rig.cluster
        .restart_container(BUSY_NS, &victim.name, &victim.containers[0].name);
    let pending: Vec<String> = app_pods(&rig, BUSY_NS, "app-3")
        .into_keys()
        .take(PENDING)
        .collect();
    assert_eq!(pending.len(), PENDING);
    for name in &pending {
        rig.cluster
            .update_pod(BUSY_NS, name, |p| p.phase = "Pending".into());
    }
    let cache = rig.gateway.cluster.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        cache.wait_for(|s| {
            pending.iter().all(|n| {
                s.pod(BUSY_NS, n).is_some_and(|p| {
                    p.phase == metrics_gateway::sources::cluster::PodPhase::Pending
                })
            }) && s
                .pod(BUSY_NS, &victim.name)
                .is_some_and(|p| p.status.containers.iter().any(|c| c.restart_count == 1))
        }),
    )
    .await
    .expect("the restart and the phase changes reach the gateway's watch");
    second_cycle(&rig, &clock).await;
    let now = clock.now_ms();
    let hpa = client(&rig, HPA_TOKEN);
    let admin = client(&rig, USER_TOKEN);

    // Discovery: the group advertises v1beta2 as preferred, and the HPA picks it.
    let groups = hpa.server_groups().await.unwrap();
    let custom = groups
        .groups
        .iter()
        .find(|g| g.name == "custom.metrics.k8s.io")
        .expect("the custom metrics group in discovery");
    assert_eq!(
        custom
            .preferred_version
            .as_ref()
            .map(|p| p.group_version.as_str()),
        Some("custom.metrics.k8s.io/v1beta2")
    );
    assert_eq!(
        hpa.preferred_custom_version().await.unwrap(),
        CustomVersion::V1Beta2,
        "custom.metrics.k8s.io must prefer v1beta2"
    );
    for version in CustomVersion::ALL {
        let body = hpa
            .get(
                &format!("/apis/{}", version.group_version()),
                "application/json",
            )
            .await
            .unwrap();
        let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
            serde_json::from_slice(&body).unwrap();
        let names: BTreeSet<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
        for metric in [
            "pods/network_receive_bytes_per_second",
            "namespaces/namespace_cpu_usage_cores",
            "deployments.apps/container_restarts_per_minute",
        ] {
            assert!(
                names.contains(metric),
                "{version:?} lacks {metric}: {names:?}"
            );
        }
    }

    // The HPA's identity reaches exactly what its ClusterRole grants: proof the suite runs as
    // the controller, not as an administrator.
    match hpa
        .get("/apis/metrics.k8s.io/v1beta1/nodes", "application/json")
        .await
    {
        Err(HpaClientError::Status { status, .. }) => assert_eq!(status, 403),
        other => panic!("the HPA may not list node metrics: {other:?}"),
    }

    let selector = scale_selector(&admin, NS, APP).await;
    assert_eq!(selector, format!("app={APP}"));
    let truth = app_pods(&rig, NS, APP);
    assert_eq!(truth.len(), 3);
    let names: BTreeSet<&str> = truth.keys().map(String::as_str).collect();
    let listed = listed_pods(&hpa, NS, &selector).await;

    // Resource (Utilization and AverageValue): the pods list, summed per pod.
    let list = hpa.resource_metrics(NS, &selector).await.unwrap();
    let served: BTreeSet<&str> = list
        .items
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(served, names, "Resource: the pods of the selector");
    let mut cpu_usage = BTreeMap::new();
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some(NS));
        assert_recent(&format!("Resource {name}"), pod.timestamp, now);
        assert!(pod.window.0 > 0, "Resource {name}: window {:?}", pod.window);
        let sim = &truth[&name];
        assert_eq!(
            pod.containers.len(),
            sim.containers.len(),
            "Resource {name}: every container"
        );
        let mut cpu = 0;
        for c in &pod.containers {
            let sim_c = sim
                .containers
                .iter()
                .find(|s| s.name == c.name)
                .unwrap_or_else(|| panic!("Resource {name}: no container {}", c.name));
            let got = c.usage["cpu"].milli_value();
            let want = sim_c.cpu_nanocores.div_ceil(1_000_000) as i64;
            assert!(
                (got - want).abs() <= 1,
                "{name}/{}: cpu {got}m vs {want}m",
                c.name
            );
            assert_eq!(
                c.usage["memory"].milli_value(),
                sim_c.memory_bytes as i64 * 1000,
                "{name}/{}: memory",
                c.name
            );
            cpu += got;
        }
        cpu_usage.insert(name, cpu);
    }
    // Utilization as GetResourceUtilizationRatio computes it, from the served usage and the
    // requests of the listed pods, against the ground truth.
    let requests = requests_milli(&listed, "cpu", None);
    let utilization = cpu_usage.values().sum::<i64>() * 100 / requests.values().sum::<i64>();
    let true_usage: u64 = truth
        .values()
        .flat_map(|p| &p.containers)
        .map(|c| c.cpu_nanocores)
        .sum();
    let true_requests: u64 = truth
        .values()
        .flat_map(|p| &p.containers)
        .map(|c| c.cpu_request_millis)
        .sum();
    let true_utilization = (true_usage as f64 / 1e4 / true_requests as f64) as i64;
    assert!(
        (utilization - true_utilization).abs() <= 1,
        "Resource Utilization: {utilization}% vs {true_utilization}%"
    );

    // ContainerResource: the same request; the named container's value in every pod.
    let list = hpa.resource_metrics(NS, &selector).await.unwrap();
    for pod in &list.items {
        let name = pod.metadata.name.as_deref().unwrap();
        let main = pod
            .containers
            .iter()
            .find(|c| c.name == "main")
            .unwrap_or_else(|| panic!("container main not present in metrics for pod {name}"));
        let want = truth[name].containers[0].memory_bytes as i64 * 1000;
        assert_eq!(main.usage["memory"].milli_value(), want, "{name}/main");
    }
    let main_requests = requests_milli(&listed, "memory", Some("main"));
    assert_eq!(main_requests.len(), truth.len());

    let mut by_version: BTreeMap<&str, Vec<(String, i64)>> = BTreeMap::new();
    for version in CustomVersion::ALL {
        let v = version.as_str();
        // Pods: pods/*/{metric} with the scale selector, values keyed by describedObject.name.
        let list = hpa
            .pods_metric(
                version,
                NS,
                "network_receive_bytes_per_second",
                &selector,
                "",
            )
            .await
            .unwrap_or_else(|e| panic!("Pods on {v}: {e}"));
        let mut values = Vec::new();
        for item in &list.items {
            check_described(item, "Pod", "/v1", Some(NS));
            assert_eq!(item.metric.name, "network_receive_bytes_per_second");
            assert_eq!(item.metric.selector, None);
            assert_recent(&format!("Pods {v}"), item.timestamp, now);
            assert!(item.window_seconds.is_some_and(|w| w > 0), "{v}: window");
            let name = item.described_object.name.clone().unwrap();
            let pod = truth
                .get(&name)
                .unwrap_or_else(|| panic!("Pods {v}: {name} is not selected by {selector}"));
            let want = pod_network_rate(&pod.uid).rx_bytes_per_second as f64;
            assert!(
                (item.value.as_f64() - want).abs() < 0.5,
                "Pods {v} {name}: {:?} vs {want}",
                item.value
            );
            values.push((name, item.value.milli_value()));
        }
        assert_eq!(values.len(), truth.len(), "Pods {v}: one value per pod");
        by_version.entry("pods").or_default().extend(values);

        // A metricLabelSelector no series has: an empty answer, which the HPA reports as
        // FailedGetPodsMetric.
        match hpa
            .pods_metric(
                version,
                NS,
                "network_receive_bytes_per_second",
                &selector,
                "interface=none",
            )
            .await
        {
            Err(HpaClientError::NoMetrics { api: "custom", .. }) => {}
            other => panic!("Pods {v} with a metric selector matching nothing: {other:?}"),
        }

        // Object, a Namespace: the special path /namespaces/{ns}/metrics/{metric}.
        let namespace = ObjectTarget {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: NS.into(),
        };
        let item = hpa
            .object_metric(version, NS, &namespace, "namespace_cpu_usage_cores", "")
            .await
            .unwrap_or_else(|e| panic!("Object Namespace on {v}: {e}"));
        check_described(&item, "Namespace", "/v1", None);
        assert_eq!(item.described_object.name.as_deref(), Some(NS));
        assert_recent(&format!("Object Namespace {v}"), item.timestamp, now);
        let want: u64 = rig
            .cluster
            .read()
            .pods
            .values()
            .filter(|p| p.namespace == NS)
            .flat_map(|p| &p.containers)
            .map(|c| c.cpu_nanocores)
            .sum();
        let want = want as f64 / 1e9;
        assert!(
            (item.value.as_f64() - want).abs() < 2e-3,
            "Object Namespace {v}: {:?} vs {want} cores",
            item.value
        );
        by_version
            .entry("namespace")
            .or_default()
            .push((NS.into(), item.value.milli_value()));

        // Object, a Deployment: resource mapped from the kind (deployments.apps).
        let deployment = ObjectTarget {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: BUSY_APP.into(),
        };
        let item = hpa
            .object_metric(
                version,
                BUSY_NS,
                &deployment,
                "container_restarts_per_minute",
                "",
            )
            .await
            .unwrap_or_else(|e| panic!("Object Deployment on {v}: {e}"));
        check_described(&item, "Deployment", "apps/v1", Some(BUSY_NS));
        assert_eq!(item.described_object.name.as_deref(), Some(BUSY_APP));
        assert_recent(&format!("Object Deployment {v}"), item.timestamp, now);
        // One restart between two samples 15 s apart: 4 per minute.
        assert_eq!(item.value.milli_value(), 4000, "{v}: {:?}", item.value);
        by_version
            .entry("deployment")
            .or_default()
            .push((BUSY_APP.into(), item.value.milli_value()));

        // An object without the metric: an error, never a made-up value.
        let missing = ObjectTarget {
            name: "no-such-deployment".into(),
            ..deployment.clone()
        };
        match hpa
            .object_metric(
                version,
                BUSY_NS,
                &missing,
                "container_restarts_per_minute",
                "",
            )
            .await
        {
            Err(HpaClientError::Status { status, .. }) => assert_eq!(status, 404),
            other => panic!("Object {v} for a missing Deployment: {other:?}"),
        }
    }
    // Both versions carry the same values.
    for (what, values) in &by_version {
        let (a, b) = values.split_at(values.len() / 2);
        assert_eq!(a, b, "{what}: v1beta1 and v1beta2 agree");
    }

    // External (Value and AverageValue): the same list; the HPA sums every item.
    let list = hpa
        .external_metric(BUSY_NS, "pending_pods", "")
        .await
        .unwrap();
    let sum: i64 = list.items.iter().map(|i| i.value.milli_value()).sum();
    assert_eq!(sum, PENDING as i64 * 1000, "External: {list:?}");
    for item in &list.items {
        assert_eq!(item.metric_name, "pending_pods");
        assert_recent("External", item.timestamp, now);
    }
    let none_pending = hpa.external_metric(NS, "pending_pods", "").await.unwrap();
    assert_eq!(
        none_pending
            .items
            .iter()
            .map(|i| i.value.milli_value())
            .sum::<i64>(),
        0,
        "a namespace without pending pods is served as 0"
    );
    match hpa
        .external_metric(BUSY_NS, "pending_pods", "queue=none")
        .await
    {
        Err(HpaClientError::NoMetrics {
            api: "external", ..
        }) => {}
        other => panic!("External with a selector matching nothing: {other:?}"),
    }

    // Stale values are refused, never served: with no cycle for longer than the servable age,
    // every source gives the controller an error, so it holds (docs/HPA.md, troubleshooting).
    clock.advance(Duration::from_millis(MAX_AGE_MS as u64 + 15_000));
    match hpa.resource_metrics(NS, &selector).await {
        Err(HpaClientError::NoMetrics {
            api: "resource", ..
        }) => {}
        other => panic!("Resource, stale: {other:?}"),
    }
    match hpa
        .pods_metric(
            CustomVersion::V1Beta2,
            NS,
            "network_receive_bytes_per_second",
            &selector,
            "",
        )
        .await
    {
        Err(HpaClientError::NoMetrics { api: "custom", .. }) => {}
        other => panic!("Pods, stale: {other:?}"),
    }
    let namespace = ObjectTarget {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: NS.into(),
    };
    match hpa
        .object_metric(
            CustomVersion::V1Beta2,
            NS,
            &namespace,
            "namespace_cpu_usage_cores",
            "",
        )
        .await
    {
        Err(HpaClientError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 404);
            assert!(message.contains("older than the maximum age"), "{message}");
        }
        other => panic!("Object, stale: {other:?}"),
    }
    match hpa.external_metric(BUSY_NS, "pending_pods", "").await {
        Err(HpaClientError::NoMetrics {
            api: "external", ..
        }) => {}
        other => panic!("External, stale: {other:?}"),
    }

    // Both custom versions were asked through kube-apiserver's aggregated paths.
    assert!(
        rig.apiserver
            .request_count("/apis/custom.metrics.k8s.io/v1beta1/")
            > 0
            && rig
                .apiserver
                .request_count("/apis/custom.metrics.k8s.io/v1beta2/")
                > 0
    );
    rig.shutdown().await;
}

fn check_described(item: &MetricValue, kind: &str, api_version: &str, namespace: Option<&str>) {
    let o = &item.described_object;
    assert_eq!(o.kind.as_deref(), Some(kind), "{item:?}");
    assert_eq!(o.api_version.as_deref(), Some(api_version), "{item:?}");
    assert_eq!(
        o.namespace.as_deref().filter(|n| !n.is_empty()),
        namespace,
        "{item:?}"
    );
}

/// The ```yaml blocks of docs/HPA.md that are HorizontalPodAutoscalers.
fn doc_hpas() -> Vec<HorizontalPodAutoscaler> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/HPA.md"))
        .expect("docs/HPA.md");
    let mut hpas = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let block = &rest[start + 8..];
        let end = block.find("```").expect("a closed ```yaml block");
        let yaml = &block[..end];
        rest = &block[end + 3..];
        if !yaml.contains("kind: HorizontalPodAutoscaler") {
            continue;
        }
        let hpa: HorizontalPodAutoscaler = serde_saphyr::from_str(yaml)
            .unwrap_or_else(|e| panic!("docs/HPA.md example does not parse: {e}\n{yaml}"));
        hpas.push(hpa);
    }
    hpas
}

/// What the doc covers: (metric type, target type, object kind).
fn coverage(metric: &MetricSpec) -> (String, String, String) {
    let target = |t: &k8s_openapi::api::autoscaling::v2::MetricTarget| t.type_.clone();
    match metric.type_.as_str() {
        "Resource" => {
            let r = metric.resource.as_ref().unwrap();
            ("Resource".into(), target(&r.target), String::new())
        }
        "ContainerResource" => {
            let r = metric.container_resource.as_ref().unwrap();
            ("ContainerResource".into(), target(&r.target), String::new())
        }
        "Pods" => {
            let p = metric.pods.as_ref().unwrap();
            ("Pods".into(), target(&p.target), String::new())
        }
        "Object" => {
            let o = metric.object.as_ref().unwrap();
            (
                "Object".into(),
                target(&o.target),
                o.described_object.kind.clone(),
            )
        }
        "External" => {
            let e = metric.external.as_ref().unwrap();
            ("External".into(), target(&e.target), String::new())
        }
        other => panic!("unknown metric type {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_examples_in_docs_hpa_md_work_against_the_gateway() {
    let hpas = doc_hpas();
    let covered: BTreeSet<(String, String, String)> = hpas
        .iter()
        .flat_map(|h| h.spec.as_ref().unwrap().metrics.iter().flatten())
        .map(coverage)
        .collect();
    for want in [
        ("Resource", "Utilization", ""),
        ("Resource", "AverageValue", ""),
        ("ContainerResource", "Utilization", ""),
        ("Pods", "AverageValue", ""),
        ("Object", "Value", "Deployment"),
        ("Object", "Value", "Namespace"),
        ("External", "Value", ""),
        ("External", "AverageValue", ""),
    ] {
        let want = (want.0.to_owned(), want.1.to_owned(), want.2.to_owned());
        assert!(
            covered.contains(&want),
            "docs/HPA.md has no example of {want:?}"
        );
    }

    let (rig, clock) = demo_rig().await;
    second_cycle(&rig, &clock).await;
    let now = clock.now_ms();
    let hpa = client(&rig, HPA_TOKEN);
    let admin = client(&rig, USER_TOKEN);
    let version = hpa.preferred_custom_version().await.unwrap();
    for doc in &hpas {
        let name = doc.metadata.name.clone().expect("examples are named");
        let ns = doc.metadata.namespace.as_deref().unwrap_or("default");
        let spec = doc.spec.as_ref().unwrap();
        assert_eq!(spec.scale_target_ref.kind, "Deployment", "{name}");
        let selector = scale_selector(&admin, ns, &spec.scale_target_ref.name).await;
        let pods = app_pods(&rig, ns, &spec.scale_target_ref.name);
        assert!(!pods.is_empty(), "{name}: the target has running pods");
        for metric in spec.metrics.iter().flatten() {
            let what = format!("{name}: {}", metric.type_);
            match metric.type_.as_str() {
                "Resource" | "ContainerResource" => {
                    let (resource, container) = match &metric.resource {
                        Some(r) => (r.name.clone(), None),
                        None => {
                            let c = metric.container_resource.as_ref().unwrap();
                            (c.name.clone(), Some(c.container.clone()))
                        }
                    };
                    let list = hpa
                        .resource_metrics(ns, &selector)
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(list.items.len(), pods.len(), "{what}");
                    for pod in &list.items {
                        assert_recent(&what, pod.timestamp, now);
                        let values: Vec<_> = pod
                            .containers
                            .iter()
                            .filter(|c| container.as_ref().is_none_or(|n| &c.name == n))
                            .map(|c| c.usage.get(&resource))
                            .collect();
                        assert!(
                            !values.is_empty() && values.iter().all(Option::is_some),
                            "{what}: {resource} of {:?} in {:?}",
                            container,
                            pod.metadata.name
                        );
                    }
                }
                "Pods" => {
                    let p = metric.pods.as_ref().unwrap();
                    let metric_selector = selector_string(p.metric.selector.as_ref()).unwrap();
                    for v in CustomVersion::ALL {
                        let list = hpa
                            .pods_metric(v, ns, &p.metric.name, &selector, &metric_selector)
                            .await
                            .unwrap_or_else(|e| panic!("{what} {v:?}: {e}"));
                        let names: BTreeSet<_> = list
                            .items
                            .iter()
                            .map(|i| i.described_object.name.clone().unwrap())
                            .collect();
                        assert_eq!(names, pods.keys().cloned().collect(), "{what} {v:?}");
                    }
                }
                "Object" => {
                    let o = metric.object.as_ref().unwrap();
                    let target = ObjectTarget {
                        api_version: o.described_object.api_version.clone().unwrap_or_default(),
                        kind: o.described_object.kind.clone(),
                        name: o.described_object.name.clone(),
                    };
                    let metric_selector = selector_string(o.metric.selector.as_ref()).unwrap();
                    for v in CustomVersion::ALL {
                        let item = hpa
                            .object_metric(v, ns, &target, &o.metric.name, &metric_selector)
                            .await
                            .unwrap_or_else(|e| panic!("{what} {v:?}: {e}"));
                        assert_eq!(item.described_object.kind.as_deref(), Some(&*target.kind));
                        assert_recent(&what, item.timestamp, now);
                    }
                }
                "External" => {
                    let e = metric.external.as_ref().unwrap();
                    let metric_selector = selector_string(e.metric.selector.as_ref()).unwrap();
                    let list = hpa
                        .external_metric(ns, &e.metric.name, &metric_selector)
                        .await
                        .unwrap_or_else(|err| panic!("{what}: {err}"));
                    for item in &list.items {
                        assert_recent(&what, item.timestamp, now);
                    }
                }
                other => panic!("{name}: unknown metric type {other}"),
            }
        }
    }
    // The custom requests went to the version discovery prefers (and both were exercised).
    assert_eq!(version, CustomVersion::V1Beta2);
    rig.shutdown().await;
}
