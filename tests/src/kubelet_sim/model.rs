//! What a simulated kubelet reports, derived from the cluster model: which pods and containers
//! it sees, their values after [`PodFaults`](crate::cluster::PodFaults), and when each sample
//! is stamped. Both endpoints use these so they agree with each other and with the ground truth.

use crate::cluster::{ClusterState, Millis, SimContainer, SimPod};

/// How far node samples lag the scrape time: a real kubelet takes node stats from a different
/// cAdvisor housekeeping pass than container stats, so their timestamps differ.
pub const NODE_STAMP_LAG_MS: Millis = 1_370;

/// How far pod-level (pod cgroup) samples lag the scrape time, for the same reason.
pub const POD_STAMP_LAG_MS: Millis = 420;

/// Timestamp of node samples in a scrape answered at `now_ms`.
pub fn node_stamp_ms(now_ms: Millis) -> Millis {
    now_ms - NODE_STAMP_LAG_MS
}

/// Timestamp of `pod`'s container samples in a scrape answered at `now_ms` (its
/// `timestamp_skew_ms` fault pushes it into the past; values are those at that instant).
pub fn container_stamp_ms(pod: &SimPod, now_ms: Millis) -> Millis {
    now_ms - pod.faults.timestamp_skew_ms
}

/// Timestamp of `pod`'s pod-level samples in a scrape answered at `now_ms`.
pub fn pod_stamp_ms(pod: &SimPod, now_ms: Millis) -> Millis {
    container_stamp_ms(pod, now_ms) - POD_STAMP_LAG_MS
}

/// Pods the kubelet on `node` reports: Running ones not marked missing, in (namespace, name)
/// order.
pub(crate) fn reported_pods<'a>(
    state: &'a ClusterState,
    node: &'a str,
) -> impl Iterator<Item = &'a SimPod> + 'a {
    state
        .pods_on(node)
        .filter(|p| p.phase == "Running" && !p.faults.missing_from_kubelet)
}

/// Containers of `pod` the kubelet reports.
pub(crate) fn reported_containers(pod: &SimPod) -> impl Iterator<Item = &SimContainer> {
    let missing = pod.faults.missing_container.as_deref();
    pod.containers
        .iter()
        .filter(move |c| Some(c.name.as_str()) != missing)
}

/// A container's reported CPU rate in nanocores.
pub(crate) fn container_nanocores(pod: &SimPod, c: &SimContainer) -> u64 {
    if pod.faults.zero_values {
        0
    } else {
        c.cpu_nanocores
    }
}

/// A container's reported working set in bytes.
pub(crate) fn container_memory(pod: &SimPod, c: &SimContainer) -> u64 {
    if pod.faults.zero_values {
        0
    } else {
        c.memory_bytes
    }
}

/// A container's reported cumulative CPU seconds at `t_ms`.
pub(crate) fn container_cpu_seconds(pod: &SimPod, c: &SimContainer, t_ms: Millis) -> f64 {
    if pod.faults.zero_values {
        0.0
    } else {
        c.cpu_seconds_at(t_ms)
    }
}

/// A pod cgroup's cumulative CPU seconds at `t_ms`: every container, reported or not.
pub(crate) fn pod_cpu_seconds(pod: &SimPod, t_ms: Millis) -> f64 {
    pod.containers
        .iter()
        .map(|c| container_cpu_seconds(pod, c, t_ms))
        .sum()
}

/// A pod cgroup's CPU rate in nanocores.
pub(crate) fn pod_nanocores(pod: &SimPod) -> u64 {
    pod.containers
        .iter()
        .map(|c| container_nanocores(pod, c))
        .sum()
}

/// A pod cgroup's working set in bytes.
pub(crate) fn pod_memory(pod: &SimPod) -> u64 {
    pod.containers
        .iter()
        .map(|c| container_memory(pod, c))
        .sum()
}

/// Cumulative CPU seconds of a constant `nanocores` rate running since `start_ms`, computed the
/// way [`SimContainer::cpu_seconds_at`] does.
pub(crate) fn cumulative_seconds(nanocores: u64, start_ms: Millis, t_ms: Millis) -> f64 {
    let elapsed = (t_ms - start_ms).max(0) as f64 / 1000.0;
    nanocores as f64 / 1e9 * elapsed
}

/// Cumulative core-nanoseconds of a constant `nanocores` rate running since `start_ms`
/// (integer-exact: advancing `t_ms` by whole seconds adds exactly `nanocores` per second).
pub(crate) fn cumulative_core_nanos(nanocores: u64, start_ms: Millis, t_ms: Millis) -> u64 {
    let elapsed_ms = (t_ms - start_ms).max(0) as u128;
    u64::try_from(u128::from(nanocores) * elapsed_ms / 1000).unwrap_or(u64::MAX)
}

/// A stable 64-bit FNV-1a hash, for deterministic per-object values.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Deterministic network throughput of a pod or node, in bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkRate {
    /// Received bytes per second.
    pub rx_bytes_per_second: u64,
    /// Transmitted bytes per second.
    pub tx_bytes_per_second: u64,
}

impl NetworkRate {
    /// Cumulative (rx, tx) bytes after running at this rate from `start_ms` to `t_ms`; advancing
    /// `t_ms` by whole seconds adds exactly the rate per second.
    pub fn bytes_at(&self, start_ms: Millis, t_ms: Millis) -> (u64, u64) {
        let elapsed_ms = (t_ms - start_ms).max(0) as u64;
        (
            self.rx_bytes_per_second * elapsed_ms / 1000,
            self.tx_bytes_per_second * elapsed_ms / 1000,
        )
    }
}

/// The network rate the simulated kubelet reports for the pod with this UID (its `eth0`
/// counters in `/stats/summary` are `rate.bytes_at(pod.start_ms, stamp)`).
pub fn pod_network_rate(uid: &str) -> NetworkRate {
    let h = fnv1a(&[uid, "net"]);
    NetworkRate {
        rx_bytes_per_second: 1_000 + h % 2_000_000,
        tx_bytes_per_second: 500 + (h >> 32) % 1_000_000,
    }
}

/// The node's own network rate (host-network traffic beyond its pods'); the node's `eth0`
/// counters are this since boot plus the sum of its reported pods' counters.
pub fn node_network_rate(node_name: &str) -> NetworkRate {
    let h = fnv1a(&[node_name, "net"]);
    NetworkRate {
        rx_bytes_per_second: 50_000 + h % 500_000,
        tx_bytes_per_second: 20_000 + (h >> 32) % 200_000,
    }
}
