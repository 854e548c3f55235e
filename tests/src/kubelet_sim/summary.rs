//! `GET /stats/summary`: the kubelet Summary API (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`)
//! as compact JSON, written straight into a buffer.
//!
//! `metav1.Time` has whole-second precision, so every sample here is taken at its stamp
//! truncated to the second and cumulative values are exact integers of that instant: advancing
//! a manual clock by `n` seconds adds exactly `rate × n` to every counter.

use super::cadvisor::container_rootfs_bytes;
use super::format::{write_json_str, write_json_time, write_u64};
use super::model::{
    container_memory, container_nanocores, container_stamp_ms, cumulative_core_nanos, fnv1a,
    node_network_rate, node_stamp_ms, pod_memory, pod_nanocores, pod_network_rate, pod_stamp_ms,
    reported_containers, reported_pods,
};
use crate::cluster::{ClusterState, Millis, SimNode, SimPod};

/// Which parts of the summary to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryDetail {
    /// Everything: CPU, memory, network, filesystems, volumes, ephemeral storage.
    Full,
    /// CPU and memory only, as the kubelet answers `?only_cpu_and_memory=true`.
    CpuAndMemory,
}

/// Node filesystem size (bytes) and inode count every filesystem stat refers to.
const FS_CAPACITY: u64 = 100 << 30;
const FS_INODES: u64 = 6_553_600;

/// Appends `node`'s `/stats/summary` body at `now_ms` to `out` (same pods, faults and stamps as
/// [`render_metrics_resource`](super::render_metrics_resource), times truncated to seconds).
pub fn render_stats_summary(
    state: &ClusterState,
    node: &SimNode,
    now_ms: Millis,
    detail: SummaryDetail,
    out: &mut Vec<u8>,
) {
    let full = detail == SummaryDetail::Full;
    // One pass over the node's pods (each is a map lookup); everything below reuses it.
    let pods: Vec<&SimPod> = reported_pods(state, &node.name).collect();
    let t = whole_second(node_stamp_ms(now_ms));
    let (nanocores, bytes) = state.node_usage(node);
    let fs_used = (20 << 30) + fnv1a(&[&node.name, "fs"]) % (10 << 30);

    out.extend_from_slice(b"{\"node\":{\"nodeName\":");
    write_json_str(out, &node.name);
    out.extend_from_slice(b",\"systemContainers\":[");
    let kubelet = (
        node.system_cpu_nanocores * 2 / 5,
        node.system_memory_bytes * 2 / 5,
    );
    let runtime = (
        node.system_cpu_nanocores - kubelet.0,
        node.system_memory_bytes - kubelet.1,
    );
    let pod_usage = (
        nanocores - node.system_cpu_nanocores,
        bytes - node.system_memory_bytes,
    );
    for (i, (name, (cpu, mem))) in [
        ("kubelet", kubelet),
        ("runtime", runtime),
        ("pods", pod_usage),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\",\"startTime\":");
        write_json_time(out, node.boot_ms);
        out.extend_from_slice(b",\"cpu\":");
        cpu_stats(out, t, cpu, node.boot_ms);
        out.extend_from_slice(b",\"memory\":");
        memory_stats(out, t, mem, None, fnv1a(&[&node.name, name]));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"startTime\":");
    write_json_time(out, node.boot_ms);
    out.extend_from_slice(b",\"cpu\":");
    cpu_stats(out, t, nanocores, node.boot_ms);
    out.extend_from_slice(b",\"memory\":");
    let available = node.allocatable_memory_bytes.saturating_sub(bytes);
    memory_stats(
        out,
        t,
        bytes,
        Some(available),
        fnv1a(&[&node.name, "memory"]),
    );
    if full {
        let (mut rx, mut tx) = node_network_rate(&node.name).bytes_at(node.boot_ms, t);
        for pod in &pods {
            let (prx, ptx) = pod_network_rate(&pod.uid).bytes_at(pod.start_ms, t);
            rx += prx;
            tx += ptx;
        }
        out.extend_from_slice(b",\"network\":");
        network_stats(out, t, rx, tx);
        out.extend_from_slice(b",\"fs\":");
        let inodes_used = 400_000 + fs_used / 65_536;
        fs_stats(out, t, fs_used, inodes_used, true);
        out.extend_from_slice(b",\"runtime\":{\"imageFs\":");
        fs_stats(out, t, fs_used / 2, inodes_used / 2, true);
        out.extend_from_slice(b"},\"rlimit\":{\"time\":");
        write_json_time(out, t);
        out.extend_from_slice(b",\"maxpid\":4194304,\"curproc\":");
        let procs: usize = pods.iter().map(|p| p.containers.len() * 3).sum();
        write_u64(out, 180 + procs as u64);
        out.push(b'}');
    }
    out.extend_from_slice(b"},\"pods\":[");
    for (i, pod) in pods.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        pod_stats(out, pod, now_ms, full);
    }
    out.extend_from_slice(b"]}\n");
}

fn pod_stats(out: &mut Vec<u8>, pod: &SimPod, now_ms: Millis, full: bool) {
    let ct = whole_second(container_stamp_ms(pod, now_ms));
    let pt = whole_second(pod_stamp_ms(pod, now_ms));
    out.extend_from_slice(b"{\"podRef\":{\"name\":");
    write_json_str(out, &pod.name);
    out.extend_from_slice(b",\"namespace\":");
    write_json_str(out, &pod.namespace);
    out.extend_from_slice(b",\"uid\":");
    write_json_str(out, &pod.uid);
    out.extend_from_slice(b"},\"startTime\":");
    write_json_time(out, pod.start_ms);
    out.extend_from_slice(b",\"containers\":[");
    let (mut eph_used, mut eph_inodes) = (0, 0);
    for (i, c) in reported_containers(pod).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let h = fnv1a(&[&pod.uid, &c.name]);
        out.extend_from_slice(b"{\"name\":");
        write_json_str(out, &c.name);
        out.extend_from_slice(b",\"startTime\":");
        write_json_time(out, c.start_ms);
        out.extend_from_slice(b",\"cpu\":");
        cpu_stats(out, ct, container_nanocores(pod, c), c.start_ms);
        out.extend_from_slice(b",\"memory\":");
        memory_stats(out, ct, container_memory(pod, c), None, h);
        if full {
            let (root_used, root_inodes) = (container_rootfs_bytes(pod, &c.name), 10 + h % 1000);
            let (log_used, log_inodes) = (4096 * (1 + (h >> 20) % 2500), 1 + (h >> 40) % 4);
            out.extend_from_slice(b",\"rootfs\":");
            fs_stats(out, ct, root_used, root_inodes, true);
            out.extend_from_slice(b",\"logs\":");
            fs_stats(out, ct, log_used, log_inodes, true);
            eph_used += root_used + log_used;
            eph_inodes += root_inodes + log_inodes;
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"cpu\":");
    cpu_stats(out, pt, pod_nanocores(pod), pod.start_ms);
    out.extend_from_slice(b",\"memory\":");
    memory_stats(out, pt, pod_memory(pod), None, fnv1a(&[&pod.uid]));
    if full {
        let (rx, tx) = pod_network_rate(&pod.uid).bytes_at(pod.start_ms, pt);
        out.extend_from_slice(b",\"network\":");
        network_stats(out, pt, rx, tx);
        out.extend_from_slice(b",\"volume\":[");
        fs_stats(out, pt, 12_288, 9, false);
        out.pop();
        out.extend_from_slice(b",\"name\":\"kube-api-access-");
        let h = fnv1a(&[&pod.uid, "volume"]);
        for i in 0..5 {
            out.push(b"bcdfghjklmnpqrstvwxz2456789"[((h >> (i * 8)) % 27) as usize]);
        }
        out.extend_from_slice(b"\"}],\"ephemeral-storage\":");
        fs_stats(out, pt, eph_used, eph_inodes, true);
        out.extend_from_slice(b",\"process_stats\":{\"process_count\":");
        write_u64(out, 3 * pod.containers.len() as u64);
        out.push(b'}');
    }
    out.push(b'}');
}

fn whole_second(t: Millis) -> Millis {
    t.div_euclid(1000) * 1000
}

fn field(out: &mut Vec<u8>, key: &str, v: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_u64(out, v);
}

fn open_timed(out: &mut Vec<u8>, t: Millis) {
    out.extend_from_slice(b"{\"time\":");
    write_json_time(out, t);
}

fn cpu_stats(out: &mut Vec<u8>, t: Millis, nanocores: u64, start_ms: Millis) {
    open_timed(out, t);
    field(out, "usageNanoCores", nanocores);
    field(
        out,
        "usageCoreNanoSeconds",
        cumulative_core_nanos(nanocores, start_ms, t),
    );
    out.push(b'}');
}

/// Working set is the ground truth; usage adds page cache, RSS is most of the working set.
fn memory_stats(out: &mut Vec<u8>, t: Millis, working_set: u64, available: Option<u64>, h: u64) {
    open_timed(out, t);
    if let Some(available) = available {
        field(out, "availableBytes", available);
    }
    field(out, "usageBytes", working_set + working_set / 8);
    field(out, "workingSetBytes", working_set);
    field(out, "rssBytes", working_set / 4 * 3);
    let faults = if working_set == 0 { 0 } else { 1 };
    field(out, "pageFaults", faults * (1_000 + h % 1_000_000));
    field(out, "majorPageFaults", faults * (h >> 32) % 100);
    out.push(b'}');
}

fn network_stats(out: &mut Vec<u8>, t: Millis, rx: u64, tx: u64) {
    open_timed(out, t);
    out.extend_from_slice(b",\"name\":\"eth0\"");
    field(out, "rxBytes", rx);
    field(out, "rxErrors", 0);
    field(out, "txBytes", tx);
    field(out, "txErrors", 0);
    out.extend_from_slice(b",\"interfaces\":[{\"name\":\"eth0\"");
    field(out, "rxBytes", rx);
    field(out, "rxErrors", 0);
    field(out, "txBytes", tx);
    field(out, "txErrors", 0);
    out.extend_from_slice(b"}]}");
}

/// A filesystem stat for `used` bytes / inodes on the node's filesystem; `on_node_fs` = false
/// for a tmpfs-backed volume, which reports its own small capacity.
fn fs_stats(out: &mut Vec<u8>, t: Millis, used: u64, inodes_used: u64, on_node_fs: bool) {
    let (capacity, inodes) = if on_node_fs {
        (FS_CAPACITY, FS_INODES)
    } else {
        (64 << 20, 16_384)
    };
    open_timed(out, t);
    field(
        out,
        "availableBytes",
        capacity.saturating_sub(used.max(capacity / 4)),
    );
    field(out, "capacityBytes", capacity);
    field(out, "usedBytes", used);
    field(
        out,
        "inodesFree",
        inodes.saturating_sub(inodes_used.max(inodes / 10)),
    );
    field(out, "inodes", inodes);
    field(out, "inodesUsed", inodes_used);
    out.push(b'}');
}
