//! Decoding one full node's kubelet answers into plugin samples: `/stats/summary` of a node
//! running 110 pods (Kubernetes' default pod limit) × 2 containers, and its `/metrics/cadvisor`,
//! both rendered by the kubelet simulator.
//!
//! Steady state, as in every cycle after the first: the node's series cache already holds the
//! series and is swept after each decode (`NodeSamples`).
//!
//! - `summary/all`: every Summary metric (≈ 4,900 samples);
//! - `summary/pod_network`: only the four `pod_network_*` names, as the pod-network plugin asks;
//! - `summary/none`: no name wanted: the pods' references are decoded, everything else skipped;
//! - `summary/json_floor`: `serde_json` checking the document into `IgnoredAny`, the least any
//!   decoder built on it can cost;
//! - `cadvisor/all`: every kept cAdvisor sample.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metrics_gateway::sources::kubelet::samples::NodeSamples;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::kubelet_sim::{
    SummaryDetail, render_metrics_cadvisor, render_stats_summary,
};

const PODS: usize = 110;
const START_MS: i64 = 1_750_000_000_000;

fn bench(c: &mut Criterion) {
    let spec = ClusterSpec {
        nodes: 1,
        pods_per_node: PODS,
        containers_per_pod: (2, 2),
        namespaces: 10,
        seed: 7,
        kubelet_port: 10250,
    };
    let cluster = SimCluster::generate(&spec, SimClock::manual(START_MS));
    let (summary, cadvisor) = {
        let state = cluster.read();
        let node = state.nodes.values().next().expect("one node");
        let (mut summary, mut cadvisor) = (Vec::new(), Vec::new());
        render_stats_summary(&state, node, START_MS, SummaryDetail::Full, &mut summary);
        render_metrics_cadvisor(&state, node, START_MS, &mut cadvisor);
        (
            summary,
            String::from_utf8(cadvisor).expect("UTF-8 exposition"),
        )
    };
    let node = "node-00000";

    let mut group = c.benchmark_group("summary");
    group.throughput(Throughput::Bytes(summary.len() as u64));
    for (name, want) in [
        ("all", (|_: &str| true) as fn(&str) -> bool),
        ("pod_network", |n: &str| n.starts_with("pod_network_")),
        ("none", |_: &str| false),
    ] {
        let mut samples = NodeSamples::default();
        let batch = samples
            .summary(&summary, node, want)
            .expect("valid summary");
        eprintln!(
            "summary/{name}: {} bytes, {} samples",
            summary.len(),
            batch.len()
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(samples.summary(black_box(&summary), node, want)))
        });
    }
    // The floor of any decoder on serde_json: checking the document and nothing else.
    group.bench_function("json_floor", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(
                &summary,
            )))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("cadvisor");
    group.throughput(Throughput::Bytes(cadvisor.len() as u64));
    let mut samples = NodeSamples::default();
    let batch = samples
        .cadvisor(&cadvisor, node, START_MS, |_| true)
        .expect("valid exposition");
    eprintln!(
        "cadvisor/all: {} bytes, {} samples",
        cadvisor.len(),
        batch.len()
    );
    group.bench_function("all", |b| {
        b.iter(|| black_box(samples.cadvisor(black_box(&cadvisor), node, START_MS, |_| true)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
