//! `GET /metrics/cadvisor`: the kubelet's embedded cAdvisor in Prometheus text format, shaped
//! as a containerd node with the systemd cgroup driver answers: one series per cgroup labelled
//! `container`, `id`, `image`, `name`, `namespace`, `pod` (label names sorted, families sorted
//! by name, samples by label values, millisecond timestamps).
//!
//! Cgroups reported: the root `/` (the node), two system services and the `kubepods.slice`
//! parent (no pod), and per reported pod its pod cgroup (empty `container`, `image`, `name`),
//! its sandbox (empty `container`, pause image; it carries the pod's `eth0` counters) and one
//! cgroup per reported container. Values follow the same model as the other endpoints: a pod's
//! `eth0` counters are [`pod_network_rate`](super::pod_network_rate) since its start, at its
//! pod stamp.

use super::format::{write_go_float, write_header, write_i64, write_label_value, write_u64};
use super::model::{
    container_cpu_seconds, container_memory, container_stamp_ms, cumulative_seconds, fnv1a,
    node_network_rate, node_stamp_ms, pod_cpu_seconds, pod_memory, pod_network_rate, pod_stamp_ms,
    reported_containers, reported_pods,
};
use crate::cluster::{ClusterState, Millis, SimNode, SimPod};

/// The sandbox image every pod runs.
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.9";
/// CPU rate of a pod's sandbox, in nanocores.
const SANDBOX_NANOCORES: u64 = 20_000;
/// The device of the node's root filesystem.
const ROOT_DEVICE: &str = "/dev/vda1";

/// One cgroup's values at its stamp.
struct Cgroup {
    container: String,
    id: String,
    image: String,
    name: String,
    namespace: String,
    pod: String,
    stamp: Millis,
    cpu_seconds: f64,
    memory_bytes: u64,
    start_seconds: Option<f64>,
    /// Cumulative `eth0` (rx, tx) bytes.
    network: Option<(u64, u64)>,
    /// Writable-layer bytes on [`ROOT_DEVICE`].
    fs_used: Option<u64>,
}

impl Cgroup {
    fn system(id: &str, stamp: Millis, cpu_seconds: f64, memory_bytes: u64) -> Cgroup {
        Cgroup {
            container: String::new(),
            id: id.to_string(),
            image: String::new(),
            name: String::new(),
            namespace: String::new(),
            pod: String::new(),
            stamp,
            cpu_seconds,
            memory_bytes,
            start_seconds: None,
            network: None,
            fs_used: None,
        }
    }
}

/// A 64-hex-digit runtime id derived from `parts`.
fn runtime_id(parts: &[&str]) -> String {
    let h = fnv1a(parts);
    let g = fnv1a(&[parts.first().copied().unwrap_or_default(), "id"]);
    format!(
        "{h:016x}{g:016x}{:016x}{:016x}",
        h.rotate_left(17),
        g.rotate_left(29)
    )
}

/// The systemd slice of a pod: `kubepods-burstable-pod<uid with '_' for '-'>.slice`.
fn pod_slice(pod: &SimPod) -> String {
    format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        pod.uid.replace('-', "_")
    )
}

/// The writable-layer size the Summary API reports as the container's `rootfs.usedBytes`.
pub(crate) fn container_rootfs_bytes(pod: &SimPod, container: &str) -> u64 {
    4096 * (1 + fnv1a(&[&pod.uid, container]) % 25_000)
}

fn cgroups(state: &ClusterState, node: &SimNode, now_ms: Millis) -> Vec<Cgroup> {
    let pods: Vec<&SimPod> = reported_pods(state, &node.name).collect();
    let t = node_stamp_ms(now_ms);
    let (nanocores, bytes) = state.node_usage(node);
    let (mut rx, mut tx) = node_network_rate(&node.name).bytes_at(node.boot_ms, t);
    let mut out = Vec::with_capacity(4 + pods.len() * 4);
    let (mut pods_cpu, mut pods_memory) = (0.0, 0);
    for &pod in &pods {
        let pt = pod_stamp_ms(pod, now_ms);
        let slice = pod_slice(pod);
        let (prx, ptx) = pod_network_rate(&pod.uid).bytes_at(pod.start_ms, pt);
        rx += prx;
        tx += ptx;
        pods_cpu += pod_cpu_seconds(pod, pt);
        pods_memory += pod_memory(pod);
        let pod_cgroup = |id: String, image: &str, name: String| Cgroup {
            container: String::new(),
            id,
            image: image.to_string(),
            name,
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            stamp: pt,
            cpu_seconds: 0.0,
            memory_bytes: 0,
            start_seconds: Some(pod.start_ms as f64 / 1000.0),
            network: None,
            fs_used: None,
        };
        out.push(Cgroup {
            cpu_seconds: pod_cpu_seconds(pod, pt),
            memory_bytes: pod_memory(pod),
            ..pod_cgroup(slice.clone(), "", String::new())
        });
        let sandbox = runtime_id(&[&pod.uid, "sandbox"]);
        out.push(Cgroup {
            cpu_seconds: cumulative_seconds(SANDBOX_NANOCORES, pod.start_ms, pt),
            memory_bytes: 229_376 + fnv1a(&[&pod.uid, "pause"]) % 65_536,
            network: Some((prx, ptx)),
            ..pod_cgroup(
                format!("{slice}/cri-containerd-{sandbox}.scope"),
                PAUSE_IMAGE,
                sandbox,
            )
        });
        for c in reported_containers(pod) {
            let ct = container_stamp_ms(pod, now_ms);
            let id = runtime_id(&[&pod.uid, &c.name, &c.restart_count.to_string()]);
            out.push(Cgroup {
                container: c.name.clone(),
                id: format!("{slice}/cri-containerd-{id}.scope"),
                image: format!("registry.example/{}:1.{}", c.name, fnv1a(&[&c.name]) % 20),
                name: id,
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                stamp: ct,
                cpu_seconds: container_cpu_seconds(pod, c, ct),
                memory_bytes: container_memory(pod, c),
                start_seconds: Some(c.start_ms as f64 / 1000.0),
                network: None,
                fs_used: Some(container_rootfs_bytes(pod, &c.name)),
            });
        }
    }
    let kubelet = node.system_cpu_nanocores * 2 / 5;
    out.push(Cgroup {
        network: Some((rx, tx)),
        ..Cgroup::system(
            "/",
            t,
            cumulative_seconds(nanocores, node.boot_ms, t),
            bytes,
        )
    });
    out.push(Cgroup::system("/kubepods.slice", t, pods_cpu, pods_memory));
    out.push(Cgroup::system(
        "/system.slice/containerd.service",
        t,
        cumulative_seconds(node.system_cpu_nanocores - kubelet, node.boot_ms, t),
        node.system_memory_bytes - node.system_memory_bytes * 2 / 5,
    ));
    out.push(Cgroup::system(
        "/system.slice/kubelet.service",
        t,
        cumulative_seconds(kubelet, node.boot_ms, t),
        node.system_memory_bytes * 2 / 5,
    ));
    // Samples sort by label values in label-name order; `container` then `id` decide it for
    // every family written here.
    out.sort_by(|a, b| (&a.container, &a.id).cmp(&(&b.container, &b.id)));
    out
}

/// Appends the `/metrics/cadvisor` body of `node`'s kubelet at `now_ms` to `out`.
pub fn render_metrics_cadvisor(
    state: &ClusterState,
    node: &SimNode,
    now_ms: Millis,
    out: &mut Vec<u8>,
) {
    let cgroups = cgroups(state, node, now_ms);
    header(
        out,
        "cadvisor_version_info",
        "A metric with a constant '1' value labeled by kernel version, OS version, docker version, cadvisor version & cadvisor revision.",
        "gauge",
    );
    out.extend_from_slice(
        b"cadvisor_version_info{cadvisorRevision=\"\",cadvisorVersion=\"\",dockerVersion=\"\",\
kernelVersion=\"6.1.0-18-amd64\",osVersion=\"Debian GNU/Linux 12 (bookworm)\"} 1\n",
    );
    header(
        out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        "counter",
    );
    for c in &cgroups {
        sample(
            out,
            "container_cpu_usage_seconds_total",
            c,
            &[("cpu", "total")],
        );
        write_go_float(out, c.cpu_seconds);
        stamp(out, c.stamp);
    }
    header(
        out,
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        "gauge",
    );
    for c in &cgroups {
        if let Some(used) = c.fs_used {
            sample(
                out,
                "container_fs_usage_bytes",
                c,
                &[("device", ROOT_DEVICE)],
            );
            write_go_float(out, used as f64);
            stamp(out, c.stamp);
        }
    }
    header(
        out,
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        "gauge",
    );
    for c in &cgroups {
        sample(out, "container_memory_working_set_bytes", c, &[]);
        write_go_float(out, c.memory_bytes as f64);
        stamp(out, c.stamp);
    }
    for (name, help, pick) in [
        (
            "container_network_receive_bytes_total",
            "Cumulative count of bytes received",
            (|(rx, _)| rx) as fn((u64, u64)) -> u64,
        ),
        (
            "container_network_transmit_bytes_total",
            "Cumulative count of bytes transmitted",
            |(_, tx)| tx,
        ),
    ] {
        header(out, name, help, "counter");
        for c in &cgroups {
            if let Some(network) = c.network {
                sample(out, name, c, &[("interface", "eth0")]);
                write_go_float(out, pick(network) as f64);
                stamp(out, c.stamp);
            }
        }
    }
    header(
        out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        "gauge",
    );
    for c in &cgroups {
        if let Some(start) = c.start_seconds {
            sample(out, "container_start_time_seconds", c, &[]);
            write_go_float(out, start);
            stamp(out, c.stamp);
        }
    }
    let machine = format!(
        "{{boot_id=\"{:016x}\",machine_id=\"{:016x}\",system_uuid=\"{:016x}\"}} ",
        fnv1a(&[&node.name, "boot"]),
        fnv1a(&[&node.name, "machine"]),
        fnv1a(&[&node.name, "uuid"])
    );
    header(
        out,
        "machine_cpu_cores",
        "Number of logical CPU cores.",
        "gauge",
    );
    out.extend_from_slice(b"machine_cpu_cores");
    out.extend_from_slice(machine.as_bytes());
    write_u64(out, node.allocatable_cpu_millis.div_ceil(1000));
    out.push(b'\n');
    header(
        out,
        "machine_memory_bytes",
        "Amount of memory installed on the machine.",
        "gauge",
    );
    out.extend_from_slice(b"machine_memory_bytes");
    out.extend_from_slice(machine.as_bytes());
    write_go_float(out, node.allocatable_memory_bytes as f64);
    out.push(b'\n');
}

fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    write_header(out, name, &[help], kind);
}

/// Writes `name{labels} ` with `extra` labels merged in name order among the cgroup's.
fn sample(out: &mut Vec<u8>, name: &str, c: &Cgroup, extra: &[(&str, &str)]) {
    let base = [
        ("container", c.container.as_str()),
        ("id", &c.id),
        ("image", &c.image),
        ("name", &c.name),
        ("namespace", &c.namespace),
        ("pod", &c.pod),
    ];
    let mut labels: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
    labels.sort_unstable_by_key(|(k, _)| *k);
    out.extend_from_slice(name.as_bytes());
    for (i, (k, v)) in labels.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        write_label_value(out, v);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
}

fn stamp(out: &mut Vec<u8>, t: Millis) {
    out.push(b' ');
    write_i64(out, t);
    out.push(b'\n');
}
