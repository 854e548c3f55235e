//! `GET /metrics/resource`: the kubelet's resource metrics in Prometheus text format, laid out
//! as a 1.29+ kubelet writes them (families sorted by name, samples sorted by label values,
//! `[STABLE]` help prefixes, millisecond timestamps, Go float formatting).

use super::format::{write_go_float, write_header, write_i64, write_label_value};
use super::model::{
    container_cpu_seconds, container_memory, container_stamp_ms, cumulative_seconds, node_stamp_ms,
    pod_cpu_seconds, pod_memory, pod_stamp_ms, reported_containers, reported_pods,
};
use crate::cluster::{ClusterState, Millis, SimContainer, SimNode, SimPod};

const CONTAINER_CPU: &str = "container_cpu_usage_seconds_total";
const CONTAINER_MEMORY: &str = "container_memory_working_set_bytes";
const CONTAINER_START: &str = "container_start_time_seconds";
const NODE_CPU: &str = "node_cpu_usage_seconds_total";
const NODE_MEMORY: &str = "node_memory_working_set_bytes";
const POD_CPU: &str = "pod_cpu_usage_seconds_total";
const POD_MEMORY: &str = "pod_memory_working_set_bytes";
const SCRAPE_ERROR: &str = "resource_scrape_error";

/// Appends the `/metrics/resource` body of `node`'s kubelet at `now_ms` to `out`.
///
/// Only Running pods are reported; [`PodFaults`](crate::cluster::PodFaults) apply. Container
/// samples are stamped [`container_stamp_ms`], pod samples [`pod_stamp_ms`], node samples
/// [`node_stamp_ms`], each with the cumulative value at its own stamp.
pub fn render_metrics_resource(
    state: &ClusterState,
    node: &SimNode,
    now_ms: Millis,
    out: &mut Vec<u8>,
) {
    // One pass over the node's pods (each is a map lookup); everything below reuses it.
    let pods: Vec<&SimPod> = reported_pods(state, &node.name).collect();
    let mut containers: Vec<(&SimPod, &SimContainer)> = Vec::with_capacity(pods.len() * 2);
    for &pod in &pods {
        containers.extend(reported_containers(pod).map(|c| (pod, c)));
    }
    // Samples sort by label values in label-name order: container, namespace, pod. Pods are
    // already in (namespace, name) order, so a stable sort by container name finishes it.
    containers.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));

    if !containers.is_empty() {
        header(
            out,
            CONTAINER_CPU,
            "Cumulative cpu time consumed by the container in core-seconds",
            "counter",
        );
        for &(pod, c) in &containers {
            let t = container_stamp_ms(pod, now_ms);
            container_sample(out, CONTAINER_CPU, pod, c);
            write_go_float(out, container_cpu_seconds(pod, c, t));
            stamp(out, t);
        }
        header(
            out,
            CONTAINER_MEMORY,
            "Current working set of the container in bytes",
            "gauge",
        );
        for &(pod, c) in &containers {
            container_sample(out, CONTAINER_MEMORY, pod, c);
            write_go_float(out, container_memory(pod, c) as f64);
            stamp(out, container_stamp_ms(pod, now_ms));
        }
        header(
            out,
            CONTAINER_START,
            "Start time of the container since unix epoch in seconds",
            "gauge",
        );
        for &(pod, c) in containers.iter().filter(|(_, c)| c.start_ms >= 1000) {
            container_sample(out, CONTAINER_START, pod, c);
            write_go_float(out, c.start_ms as f64 / 1000.0);
            out.push(b'\n');
        }
    }

    let (node_nanocores, node_bytes) = state.node_usage(node);
    let t = node_stamp_ms(now_ms);
    header(
        out,
        NODE_CPU,
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    out.extend_from_slice(NODE_CPU.as_bytes());
    out.push(b' ');
    write_go_float(out, cumulative_seconds(node_nanocores, node.boot_ms, t));
    stamp(out, t);
    header(
        out,
        NODE_MEMORY,
        "Current working set of the node in bytes",
        "gauge",
    );
    out.extend_from_slice(NODE_MEMORY.as_bytes());
    out.push(b' ');
    write_go_float(out, node_bytes as f64);
    stamp(out, t);

    if !pods.is_empty() {
        header(
            out,
            POD_CPU,
            "Cumulative cpu time consumed by the pod in core-seconds",
            "counter",
        );
        for &pod in &pods {
            let t = pod_stamp_ms(pod, now_ms);
            pod_sample(out, POD_CPU, pod);
            write_go_float(out, pod_cpu_seconds(pod, t));
            stamp(out, t);
        }
        header(
            out,
            POD_MEMORY,
            "Current working set of the pod in bytes",
            "gauge",
        );
        for &pod in &pods {
            pod_sample(out, POD_MEMORY, pod);
            write_go_float(out, pod_memory(pod) as f64);
            stamp(out, pod_stamp_ms(pod, now_ms));
        }
    }

    header(
        out,
        SCRAPE_ERROR,
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    out.extend_from_slice(SCRAPE_ERROR.as_bytes());
    out.extend_from_slice(b" 0\n");
}

fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    write_header(out, name, &["[STABLE] ", help], kind);
}

fn container_sample(out: &mut Vec<u8>, name: &str, pod: &SimPod, c: &SimContainer) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"{container=\"");
    write_label_value(out, &c.name);
    out.extend_from_slice(b"\",namespace=\"");
    write_label_value(out, &pod.namespace);
    out.extend_from_slice(b"\",pod=\"");
    write_label_value(out, &pod.name);
    out.extend_from_slice(b"\"} ");
}

fn pod_sample(out: &mut Vec<u8>, name: &str, pod: &SimPod) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"{namespace=\"");
    write_label_value(out, &pod.namespace);
    out.extend_from_slice(b"\",pod=\"");
    write_label_value(out, &pod.name);
    out.extend_from_slice(b"\"} ");
}

fn stamp(out: &mut Vec<u8>, t: Millis) {
    out.push(b' ');
    write_i64(out, t);
    out.push(b'\n');
}
