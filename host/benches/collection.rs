//! CPU of the collection cycle's hot path in isolation, at issue 2's scale: 5,000 nodes × 30
//! pods × 2 containers over 150 namespaces.
//!
//! - `node/…`: one node's `/metrics/resource` payload (rendered by the kubelet simulator as a
//!   1.29+ kubelet lays it out) through `resource::decode` and `NodeSeries::ingest`, in the
//!   steady state: the series already holds the previous scrape, the payload is 15 s newer.
//!   Multiply by 5,000 for a cycle.
//! - `cycle/snapshot_build`: `pipeline::snapshot::build` joining 5,000 nodes' series with the
//!   cluster state into the served snapshot (150,000 pods), dropping the result as a cycle's
//!   publication eventually does.
//!
//! Network, TLS and HTTP costs are not here: `bench-collection` measures the whole cycle.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use metrics_gateway::core_metrics::NodeSeries;
use metrics_gateway::pipeline::snapshot;
use metrics_gateway::sources::cluster::{
    ClusterState, Interners, LabelSet, NodeInfo, PodInfo, PodPhase,
};
use metrics_gateway::sources::kubelet::resource::decode;
use metrics_gateway_testkit::cluster::{self as sim, ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::kubelet_sim::render_metrics_resource;

const NODES: usize = 5000;
const PODS_PER_NODE: usize = 30;
const INTERVAL_MS: i64 = 15_000;
const START_MS: i64 = 1_750_000_000_000;

fn cluster(nodes: usize) -> Arc<SimCluster> {
    let spec = ClusterSpec {
        nodes,
        pods_per_node: PODS_PER_NODE,
        containers_per_pod: (2, 2),
        namespaces: 150,
        seed: 7,
        kubelet_port: 10250,
    };
    SimCluster::generate(&spec, SimClock::manual(START_MS))
}

/// What every kubelet of `cluster` answers at `now_ms`, by node name.
fn payloads(cluster: &SimCluster, now_ms: i64) -> Vec<(String, String)> {
    let state = cluster.read();
    state
        .nodes
        .values()
        .map(|node| {
            let mut out = Vec::with_capacity(64 << 10);
            render_metrics_resource(&state, node, now_ms, &mut out);
            (
                node.name.clone(),
                String::from_utf8(out).expect("the simulator writes UTF-8"),
            )
        })
        .collect()
}

/// The gateway's projection of the simulated cluster, interned as the watches intern it.
fn project(state: &sim::ClusterState) -> ClusterState {
    let interners = Interners::default();
    let labels = |l: &std::collections::BTreeMap<String, String>| {
        interners.labels.intern_owned(LabelSet(l.clone()))
    };
    let mut out = ClusterState::default();
    for node in state.nodes.values() {
        let name = interners.strings.intern(node.name.as_str());
        let info = NodeInfo {
            name: name.clone(),
            labels: labels(&node.labels),
            addresses: vec![(
                interners.strings.intern("InternalIP"),
                Arc::from(node.address.to_string()),
            )],
            kubelet_port: node.kubelet_port,
            ready: node.ready,
            conditions: Default::default(),
        };
        out.nodes.insert(name, Arc::new(info));
    }
    for pod in state.pods.values() {
        let namespace = interners.strings.intern(pod.namespace.as_str());
        let containers: Vec<Arc<str>> = pod
            .containers
            .iter()
            .map(|c| interners.strings.intern(c.name.as_str()))
            .collect();
        let info = PodInfo {
            namespace: namespace.clone(),
            name: Arc::from(pod.name.as_str()),
            labels: labels(&pod.labels),
            node_name: Some(interners.strings.intern(pod.node.as_str())),
            phase: PodPhase::Running,
            ready: pod.ready,
            containers: interners.containers.intern(containers.as_slice()),
            start_time_ms: Some(pod.start_ms),
            uid: Arc::from(pod.uid.as_str()),
            status: Default::default(),
        };
        out.pods
            .entry(namespace)
            .or_default()
            .insert(info.name.clone(), Arc::new(info));
    }
    out
}

fn node_hot_path(c: &mut Criterion) {
    let cluster = cluster(1);
    let t0 = START_MS;
    let t1 = t0 + INTERVAL_MS;
    let (_, previous) = payloads(&cluster, t0).pop().expect("one node");
    let (_, current) = payloads(&cluster, t1).pop().expect("one node");
    eprintln!(
        "node payload: {} bytes, {} lines, {} containers",
        current.len(),
        current.lines().count(),
        decode(&current, t1).expect("decodes").containers.len()
    );
    let primed = || {
        let mut series = NodeSeries::default();
        series.ingest(&decode(&previous, t0).expect("decodes"), INTERVAL_MS);
        series
    };

    let mut group = c.benchmark_group("node");
    group.throughput(Throughput::Bytes(current.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&current), t1).expect("decodes"))
    });
    let scrape = decode(&current, t1).expect("decodes");
    group.bench_function("ingest", |b| {
        b.iter_batched_ref(
            primed,
            |series| {
                let report = series.ingest(black_box(&scrape), INTERVAL_MS);
                assert_eq!(report.accepted, PODS_PER_NODE * 2);
                report
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decode_and_ingest", |b| {
        b.iter_batched_ref(
            primed,
            |series| {
                let scrape = decode(black_box(&current), t1).expect("decodes");
                series.ingest(&scrape, INTERVAL_MS)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn cycle(c: &mut Criterion) {
    let cluster = cluster(NODES);
    let mut series: HashMap<Arc<str>, NodeSeries> = HashMap::with_capacity(NODES);
    for now_ms in [START_MS, START_MS + INTERVAL_MS] {
        for (name, text) in payloads(&cluster, now_ms) {
            let scrape = decode(&text, now_ms).expect("decodes");
            series
                .entry(Arc::from(name.as_str()))
                .or_default()
                .ingest(&scrape, INTERVAL_MS);
        }
    }
    let state = project(&cluster.read());
    let check = snapshot::build(1, &state, series.iter());
    assert_eq!(check.nodes.len(), NODES);
    assert_eq!(check.pod_count(), NODES * PODS_PER_NODE);
    drop(check);

    let mut group = c.benchmark_group("cycle");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("snapshot_build", |b| {
        b.iter(|| snapshot::build(2, black_box(&state), series.iter()))
    });
    group.finish();
}

criterion_group!(benches, node_hot_path, cycle);
criterion_main!(benches);
