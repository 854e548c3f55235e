//! Kubelet and sample faults: each is handled as metrics-server does (or better), never hides
//! the other nodes, and failures are counted and logged with the node's name.

mod common;

use std::time::Duration;

use metrics_gateway::demo::Rig;
use metrics_gateway::pipeline::CycleReport;
use metrics_gateway_testkit::cluster::{ClusterSpec, NodeBehavior, SimClock, SimContainer, SimPod};

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 4,
        pods_per_node: 3,
        containers_per_pod: (2, 2),
        namespaces: 1,
        ..ClusterSpec::default()
    }
}

/// Advances the clock 10 s and runs a cycle.
async fn cycle(rig: &Rig, clock: &SimClock) -> CycleReport {
    clock.advance(Duration::from_secs(10));
    rig.gateway.collector.run_cycle().await
}

/// The served CPU (nanocores) of every container of a pod, if served.
fn served_pod(rig: &Rig, name: &str) -> Option<Vec<u64>> {
    let snap = rig.gateway.store.load();
    let pod = snap.pod("default", name)?;
    Some(pod.containers.iter().map(|c| c.cpu_nanocores).collect())
}

fn truth_pod(rig: &Rig, name: &str) -> Vec<u64> {
    let state = rig.cluster.read();
    state.pods[&("default".to_string(), name.to_string())]
        .containers
        .iter()
        .map(|c| c.cpu_nanocores)
        .collect()
}

fn pod_names(rig: &Rig) -> Vec<String> {
    rig.cluster
        .read()
        .pods
        .keys()
        .map(|(_, n)| n.clone())
        .collect()
}

fn assert_close(got: &[u64], want: &[u64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (*g as f64 - *w as f64).abs() <= *w as f64 * 0.001,
            "served {got:?}, truth {want:?}"
        );
    }
}

async fn started() -> (Rig, SimClock) {
    let (rig, clock) = common::rig(spec()).await;
    rig.gateway.collector.run_cycle().await;
    let r = cycle(&rig, &clock).await;
    assert_eq!((r.nodes_served, r.pods_served), (4, 12), "{r:?}");
    (rig, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_container_never_yields_a_negative_rate() {
    let (rig, clock) = started().await;
    let pod = pod_names(&rig)[0].clone();
    rig.cluster.restart_container("default", &pod, "main");
    // 20 s later: the counter went down and the start time moved, so the old point is dropped
    // (the start is too old to stand in for a previous point).
    clock.advance(Duration::from_secs(10));
    cycle(&rig, &clock).await;
    assert_eq!(
        served_pod(&rig, &pod),
        None,
        "one point after a restart gives no rate"
    );
    cycle(&rig, &clock).await;
    assert_close(&served_pod(&rig, &pod).unwrap(), &truth_pod(&rig, &pod));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_pod_is_served_after_one_scrape() {
    let (rig, clock) = started().await;
    let now = clock.now_ms();
    let mut pod = rig.cluster.read().pods.values().next().unwrap().clone();
    pod = SimPod {
        name: "fresh-pod".into(),
        uid: "fresh-uid".into(),
        start_ms: now - 2_000,
        containers: vec![SimContainer {
            name: "main".into(),
            cpu_nanocores: 250_000_000,
            memory_bytes: 64 << 20,
            start_ms: now - 2_000,
            restart_count: 0,
            cpu_request_millis: 100,
            memory_request_bytes: 128 << 20,
        }],
        ..pod
    };
    rig.cluster.add_pod(pod);
    let cache = rig.gateway.cluster.clone();
    cache
        .wait_for(|s| s.pod("default", "fresh-pod").is_some())
        .await;
    // Scraped 12 s after the container started: its start time is the previous point.
    cycle(&rig, &clock).await;
    assert_close(
        &served_pod(&rig, "fresh-pod").expect("served after one scrape"),
        &[250_000_000],
    );
    let snap = rig.gateway.store.load();
    assert_eq!(snap.pod("default", "fresh-pod").unwrap().window_ms, 12_000);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_or_pod_leaves_out_only_that_pod() {
    let (rig, clock) = started().await;
    let names = pod_names(&rig);
    rig.cluster.update_pod("default", &names[0], |p| {
        p.faults.missing_container = Some("sidecar-1".into())
    });
    rig.cluster.update_pod("default", &names[1], |p| {
        p.faults.missing_from_kubelet = true
    });
    cycle(&rig, &clock).await;
    let r = cycle(&rig, &clock).await;
    assert_eq!(
        served_pod(&rig, &names[0]),
        None,
        "a pod missing a container's value is left out"
    );
    assert_eq!(served_pod(&rig, &names[1]), None);
    assert_eq!(r.pods_served, 10);
    assert_close(
        &served_pod(&rig, &names[2]).unwrap(),
        &truth_pod(&rig, &names[2]),
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_values_are_invalid() {
    let (rig, clock) = started().await;
    let names = pod_names(&rig);
    rig.cluster
        .update_pod("default", &names[0], |p| p.faults.zero_values = true);
    cycle(&rig, &clock).await;
    let r = cycle(&rig, &clock).await;
    assert_eq!(served_pod(&rig, &names[0]), None);
    assert_eq!((r.nodes_served, r.pods_served), (4, 11));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_samples_are_ignored() {
    let (rig, clock) = started().await;
    let name = pod_names(&rig)[0].clone();
    let before = rig
        .gateway
        .store
        .load()
        .pod("default", &name)
        .unwrap()
        .timestamp_ms;
    // Stamped 30 s in the past: older than the stored point.
    rig.cluster
        .update_pod("default", &name, |p| p.faults.timestamp_skew_ms = 30_000);
    cycle(&rig, &clock).await;
    let snap = rig.gateway.store.load();
    let pod = snap.pod("default", &name).unwrap();
    assert_eq!(
        pod.timestamp_ms, before,
        "the older sample did not replace the newer one"
    );
    assert_close(&served_pod(&rig, &name).unwrap(), &truth_pod(&rig, &name));
    rig.shutdown().await;
}

fn failure_count(rig: &Rig, reason: &str) -> u64 {
    let text = common::self_metrics(rig);
    let prefix = format!("metrics_gateway_kubelet_scrape_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Puts one node in `behavior`, runs a cycle, and checks the failure is isolated, counted and
/// logged with the node's name.
async fn faulty_node(behavior: NodeBehavior, reason: &str) -> (Rig, SimClock) {
    let (rig, clock) = started().await;
    rig.cluster
        .update_node("node-00001", |n| n.behavior = behavior);
    rig.kubelets.synced().await;
    let r = cycle(&rig, &clock).await;
    assert_eq!(
        r.failed,
        vec![("node-00001".to_string(), reason_static(reason))],
        "{r:?}"
    );
    assert_eq!(r.scraped, 3, "the other nodes are still scraped");
    assert_eq!(failure_count(&rig, reason), 1);
    let logs = common::logs();
    assert!(
        logs.lines().any(|l| l.contains("kubelet scrape failed")
            && l.contains("node-00001")
            && l.contains(reason)),
        "no log line names node-00001 and {reason}"
    );
    // Its last values stay served until they are too old; the other nodes are current.
    let snap = rig.gateway.store.load();
    assert_eq!(snap.nodes.len(), 4);
    (rig, clock)
}

fn reason_static(reason: &str) -> &'static str {
    match reason {
        "timeout" => "timeout",
        "decode" => "decode",
        "connect" => "connect",
        "http_status" => "http_status",
        other => panic!("unexpected reason {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_times_out() {
    let (rig, clock) = faulty_node(NodeBehavior::Hang, "timeout").await;
    // Stale values expire: after 45 s without a good scrape the node is no longer served.
    for _ in 0..4 {
        cycle(&rig, &clock).await;
    }
    let snap = rig.gateway.store.load();
    let node = &snap.nodes["node-00001"];
    assert!(clock.now_ms() - node.usage.timestamp_ms > 45_000);
    let url = "/apis/metrics.k8s.io/v1beta1/nodes/node-00001";
    let kubeconfig = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kubeconfig).unwrap();
    assert!(
        common::try_raw(&kubeconfig, url).is_err(),
        "a stale node is not served"
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_returns_garbage() {
    let (rig, _clock) = faulty_node(NodeBehavior::Garbage, "decode").await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_answers_500() {
    let (rig, _clock) = faulty_node(NodeBehavior::Fail(500), "http_status").await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_that_disappears_and_returns() {
    let (rig, clock) = faulty_node(NodeBehavior::Down, "connect").await;
    rig.cluster
        .update_node("node-00001", |n| n.behavior = NodeBehavior::Normal);
    rig.kubelets.synced().await;
    let r = cycle(&rig, &clock).await;
    assert!(r.failed.is_empty(), "{r:?}");
    let truth = {
        let state = rig.cluster.read();
        state.node_usage(&state.nodes["node-00001"]).0
    };
    let snap = rig.gateway.store.load();
    let node = &snap.nodes["node-00001"];
    assert_eq!(node.usage.window_ms, 20_000, "the window spans the outage");
    assert!((node.usage.cpu_nanocores as f64 - truth as f64).abs() <= truth as f64 * 0.001);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_node_is_no_longer_served() {
    let (rig, clock) = started().await;
    rig.cluster.delete_node("node-00002");
    let cache = rig.gateway.cluster.clone();
    cache
        .wait_for(|s| !s.nodes.contains_key("node-00002"))
        .await;
    let r = cycle(&rig, &clock).await;
    assert_eq!(r.nodes_served, 3);
    assert!(!rig.gateway.store.load().nodes.contains_key("node-00002"));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_is_reread_every_cycle() {
    let (rig, clock) = started().await;
    let token = rig.dir().join("kubelet-token");
    let good = std::fs::read_to_string(&token).unwrap();
    std::fs::write(&token, "revoked").unwrap();
    let r = cycle(&rig, &clock).await;
    assert_eq!(r.failed.len(), 4, "{r:?}");
    assert!(
        r.failed.iter().all(|(_, reason)| *reason == "unauthorized"),
        "{r:?}"
    );
    std::fs::write(&token, good).unwrap();
    let r = cycle(&rig, &clock).await;
    assert!(
        r.failed.is_empty(),
        "the rotated token is used without a restart: {r:?}"
    );
    rig.shutdown().await;
}
