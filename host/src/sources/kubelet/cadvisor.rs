//! The kubelet's embedded cAdvisor (`/metrics/cadvisor`) as samples for plugins.
//!
//! cAdvisor reports one series per cgroup, labelled `id` (the cgroup path), `name` (runtime
//! container id), `image`, `container`, `pod` and `namespace` (the last three empty when the
//! cgroup is not a pod's), plus metric-specific labels (`interface`, `device`, `cpu`, ...):
//!
//! - a container cgroup has all of them set;
//! - a pod's sandbox (pause) cgroup has `pod` and `namespace` but an empty `container` (its
//!   `image` is the pause image; it carries the pod's network counters), and the pod cgroup
//!   itself has empty `container`, `image` and `name` (pod totals);
//! - the root cgroup `id="/"` is the whole node;
//! - every other cgroup (`/system.slice/...`, `/kubepods.slice` QoS levels, `/user.slice`)
//!   has empty `pod` and `namespace`.
//!
//! Kept: series of a pod (non-empty `pod`), the root cgroup, and series without an `id` label
//! (`machine_*`, `cadvisor_version_info`). Dropped: other cgroups without a pod, which belong
//! to no Kubernetes object and would multiply series per node.

use super::promtext::Sample;
use super::text::{TextError, text_batch};
use crate::samples::{Batch, SeriesCache};

/// Whether `sample` is kept (see the module documentation).
pub fn is_kept(sample: &Sample<'_>) -> bool {
    match sample.labels.get("id") {
        None => true,
        Some(id) if id == "/" => true,
        Some(_) => sample.labels.get("pod").is_some_and(|pod| !pod.is_empty()),
    }
}

/// Decodes a `/metrics/cadvisor` body from `node`: each kept sample under its metric name,
/// with its labels plus `node`; `default_ts_ms` stamps samples without a timestamp.
pub fn decode(
    text: &str,
    node: &str,
    default_ts_ms: i64,
    cache: &mut SeriesCache,
) -> Result<Batch, TextError> {
    decode_wanted(text, node, default_ts_ms, |_| true, cache)
}

/// As [`decode`], keeping only metric names `want` accepts.
pub fn decode_wanted(
    text: &str,
    node: &str,
    default_ts_ms: i64,
    want: impl Fn(&str) -> bool,
    cache: &mut SeriesCache,
) -> Result<Batch, TextError> {
    text_batch(
        text,
        node,
        super::CADVISOR_PATH,
        default_ts_ms,
        |s| want(s.name) && is_kept(s),
        cache,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as a containerd node's kubelet answers (systemd cgroup driver).
    const PAYLOAD: &str = r#"# HELP cadvisor_version_info A metric with a constant '1' value labeled by kernel version, OS version, docker version, cadvisor version & cadvisor revision.
# TYPE cadvisor_version_info gauge
cadvisor_version_info{cadvisorRevision="",cadvisorVersion="",dockerVersion="",kernelVersion="6.1.0-18-amd64",osVersion="Debian GNU/Linux 12 (bookworm)"} 1
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="",cpu="total",id="/",image="",name="",namespace="",pod=""} 7803.19 1700000000000
container_cpu_usage_seconds_total{container="",cpu="total",id="/kubepods.slice",image="",name="",namespace="",pod=""} 3310.5 1700000000001
container_cpu_usage_seconds_total{container="",cpu="total",id="/system.slice/containerd.service",image="",name="",namespace="",pod=""} 812.1 1700000000002
container_cpu_usage_seconds_total{container="",cpu="total",id="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b.slice",image="",name="",namespace="web",pod="api-0"} 12.5 1700000000003
container_cpu_usage_seconds_total{container="api",cpu="total",id="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b.slice/cri-containerd-77aa.scope",image="registry.example/api:1.4",name="77aa",namespace="web",pod="api-0"} 12.25 1700000000004
# HELP container_network_receive_bytes_total Cumulative count of bytes received
# TYPE container_network_receive_bytes_total counter
container_network_receive_bytes_total{container="",id="/",image="",interface="eth0",name="",namespace="",pod=""} 5.124159e+09 1700000000005
container_network_receive_bytes_total{container="",id="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b.slice/cri-containerd-99ff.scope",image="registry.k8s.io/pause:3.9",interface="eth0",name="99ff",namespace="web",pod="api-0"} 438433 1700000000006
# HELP machine_memory_bytes Amount of memory installed on the machine.
# TYPE machine_memory_bytes gauge
machine_memory_bytes{boot_id="b",machine_id="m",system_uuid="s"} 8.331038720e+09
"#;

    #[test]
    fn keeps_pods_root_and_machine_series_and_drops_other_cgroups() {
        let mut cache = SeriesCache::default();
        let batch = decode(PAYLOAD, "node-a", 99, &mut cache).unwrap();
        let cpu = &batch.families["container_cpu_usage_seconds_total"];
        let ids: Vec<&str> = cpu.series.iter().map(|s| s.label("id").unwrap()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids[0], "/");
        assert!(ids[1].ends_with("pod0a1b.slice") && ids[2].ends_with("77aa.scope"));
        assert_eq!(cpu.values, [7803.19, 12.5, 12.25]);
        assert_eq!(cpu.timestamps_ms[2], 1_700_000_000_004);
        let api = &cpu.series[2];
        assert_eq!(api.label("container"), Some("api"));
        assert_eq!(api.label("image"), Some("registry.example/api:1.4"));
        assert_eq!(api.label("node"), Some("node-a"));
        assert_eq!(api.labels.len(), 8);

        let rx = &batch.families["container_network_receive_bytes_total"];
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.series[1].label("pod"), Some("api-0"));
        assert_eq!(rx.series[1].label("interface"), Some("eth0"));
        assert_eq!(rx.values[1], 438_433.0);

        let machine = &batch.families["machine_memory_bytes"];
        assert_eq!(machine.timestamps_ms, [99]);
        assert_eq!(batch.families["cadvisor_version_info"].len(), 1);
        assert_eq!(batch.len(), 7);
    }

    #[test]
    fn wanted_names_filter_families() {
        let mut cache = SeriesCache::default();
        let batch = decode_wanted(
            PAYLOAD,
            "node-a",
            0,
            |name| name.starts_with("container_network_"),
            &mut cache,
        )
        .unwrap();
        assert_eq!(batch.families.len(), 1);
        assert_eq!(cache.len(), 2);
    }
}
