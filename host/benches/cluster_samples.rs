//! CPU of one cycle's cluster-state samples (`sources::cluster::samples::build`) at issue 2's
//! scale: 5,000 nodes × 30 pods × 2 containers over 150 namespaces, with the Deployments and
//! ReplicaSets the pods belong to. The state is projected through the watches' own projection
//! code from API-shaped objects; the held series are warm (steady state: every series existed
//! in the previous cycle), as in a running gateway.
//!
//! - `build`: no object changed since the previous cycle;
//! - `build_1pct_changed`: 1 % of the pods changed (a container restarted).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metrics_gateway::sources::cluster::samples::ClusterSeries;
use metrics_gateway::sources::cluster::{ClusterCache, samples};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use serde_json::json;

const NODES: usize = 5000;
const PODS_PER_NODE: usize = 30;
const NOW_MS: i64 = 1_750_000_000_000;

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("API-shaped object")
}

/// The simulated cluster fed into a gateway cache as the watches would feed it, and its pods.
fn cache() -> (ClusterCache, Vec<Pod>) {
    let spec = ClusterSpec {
        nodes: NODES,
        pods_per_node: PODS_PER_NODE,
        containers_per_pod: (2, 2),
        namespaces: 150,
        seed: 7,
        kubelet_port: 10250,
    };
    let cluster = SimCluster::generate(&spec, SimClock::manual(NOW_MS));
    let sim = cluster.read();
    let cache = ClusterCache::default();
    let mut pods = Vec::with_capacity(sim.pods.len());
    for node in sim.nodes.values() {
        let condition = |t: &str, s: &str| json!({"type": t, "status": s});
        let node: Node = parse(json!({
            "metadata": {"name": node.name, "labels": node.labels},
            "status": {"conditions": [
                condition("MemoryPressure", "False"), condition("DiskPressure", "False"),
                condition("PIDPressure", "False"), condition("Ready", "True"),
            ]}
        }));
        cache.apply_node(&node);
    }
    for p in sim.pods.values() {
        let statuses: Vec<_> = p
            .containers
            .iter()
            .map(|c| {
                json!({"name": c.name, "ready": true, "restartCount": c.restart_count,
                       "image": "i", "imageID": "", "state": {"running": {}}})
            })
            .collect();
        let pod: Pod = parse(json!({
            "metadata": {
                "name": p.name, "namespace": p.namespace, "uid": p.uid, "labels": p.labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": p.owner_replicaset, "uid": "u", "controller": true}]
            },
            "spec": {"nodeName": p.node, "containers": p.containers.iter().map(|c| json!({"name": c.name})).collect::<Vec<_>>()},
            "status": {"phase": p.phase, "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": statuses}
        }));
        cache.apply_pod(&pod);
        pods.push(pod);
    }
    for d in sim.deployments.values() {
        let status = sim.deployment_status(d);
        let deployment: Deployment = parse(json!({
            "metadata": {"name": d.name, "namespace": d.namespace, "labels": d.labels},
            "spec": {"replicas": d.replicas, "selector": {}, "template": {}},
            "status": {"replicas": status.replicas, "readyReplicas": status.ready,
                       "availableReplicas": status.available, "updatedReplicas": status.updated}
        }));
        cache.apply_deployment(&deployment);
    }
    for rs in sim.replicasets.values() {
        let meta: ObjectMeta = parse(json!({
            "name": rs.name, "namespace": rs.namespace,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": rs.deployment, "uid": "u", "controller": true}]
        }));
        cache.apply_replicaset(&meta);
    }
    (cache, pods)
}

fn bench(c: &mut Criterion) {
    let (cache, mut pods) = cache();
    let mut series = ClusterSeries::default();
    let samples_per_cycle = {
        let state = cache.read();
        let warm = samples::build(&state, NOW_MS, |_| true, &mut series);
        eprintln!(
            "cluster samples: {} pods, {} deployments, {} samples in {} families, {} series",
            state.pod_count(),
            state.deployments.values().map(|d| d.len()).sum::<usize>(),
            warm.len(),
            warm.families.len(),
            series.len(),
        );
        assert_eq!(state.pod_count(), NODES * PODS_PER_NODE);
        warm.len()
    };

    let mut group = c.benchmark_group("cluster_samples");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(samples_per_cycle as u64));
    let mut now_ms = NOW_MS;
    group.bench_function("build", |b| {
        let state = cache.read();
        b.iter(|| {
            now_ms += 15_000;
            samples::build(black_box(&state), now_ms, |_| true, &mut series)
        })
    });
    // 1 % of the pods changed by the watches since the previous cycle (a container restarted),
    // the next 1 % each cycle; the watch events themselves are not timed.
    let changed = pods.len() / 100;
    let mut next = 0;
    group.bench_function("build_1pct_changed", |b| {
        b.iter_batched(
            || {
                for _ in 0..changed {
                    let count = pods.len();
                    let pod = &mut pods[next];
                    next = (next + 1) % count;
                    for status in pod
                        .status
                        .as_mut()
                        .and_then(|s| s.container_statuses.as_mut())
                        .into_iter()
                        .flatten()
                    {
                        status.restart_count += 1;
                    }
                    cache.apply_pod(pod);
                }
                now_ms += 15_000;
                now_ms
            },
            |now_ms| samples::build(black_box(&cache.read()), now_ms, |_| true, &mut series),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
