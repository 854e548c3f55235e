//! Decoding of the kubelet Summary API (`/stats/summary`, `k8s.io/kubelet/pkg/apis/stats/v1alpha1`)
//! into samples for plugins.
//!
//! The payload is flattened into one sample per (object, statistic), named the way kubelet and
//! cAdvisor metrics are (`<object>_<stat>_<unit>[_total]`, see [`Metric`]) and labelled
//! `node`; pod samples add `namespace` and `pod`, container samples add `container`. Those names
//! are a contract with plugins.
//!
//! - Every sample carries its own statistic's `time` (RFC 3339, whole seconds from a real
//!   kubelet). Old kubelets omit `time` on filesystem statistics: those take the time of their
//!   object's CPU, memory or network statistic, and are left out when there is none.
//! - A statistic or field missing from the payload yields no sample (never a zero).
//! - Network counters are those of the pod's (or node's) default interface, the top-level
//!   `network` fields; `interfaces[]` is not flattened.
//! - Names can be filtered ([`decode_wanted`]) so that only what plugins ask for becomes series.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::SUMMARY_PATH;
use crate::samples::{Batch, SeriesCache};

/// Why a Summary payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The body is not a valid Summary API document.
    #[error("node {node}: invalid {SUMMARY_PATH} answer at `{path}`: {reason}")]
    Invalid {
        /// The node whose kubelet answered.
        node: String,
        /// JSON path of the offending value (`.` for the document itself).
        path: String,
        /// What is wrong, with line and column.
        reason: String,
    },
}

macro_rules! metrics {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// A sample name produced from the Summary API. Labels: `node` for node metrics, plus
        /// `namespace` and `pod` for pod metrics, plus `container` for container metrics.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Metric {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Metric {
            /// Every metric, in declaration order.
            pub const ALL: &[Metric] = &[$(Metric::$variant,)+];

            /// The sample name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)+
                }
            }
        }
    };
}

metrics! {
    /// `node.cpu.usageNanoCores`.
    NodeCpuUsageNanocores = "node_cpu_usage_nanocores",
    /// `node.cpu.usageCoreNanoSeconds`, in seconds.
    NodeCpuUsageSecondsTotal = "node_cpu_usage_seconds_total",
    /// `node.memory.workingSetBytes`.
    NodeMemoryWorkingSetBytes = "node_memory_working_set_bytes",
    /// `node.memory.rssBytes`.
    NodeMemoryRssBytes = "node_memory_rss_bytes",
    /// `node.memory.usageBytes`.
    NodeMemoryUsageBytes = "node_memory_usage_bytes",
    /// `node.memory.availableBytes`.
    NodeMemoryAvailableBytes = "node_memory_available_bytes",
    /// `node.memory.pageFaults`.
    NodeMemoryPageFaultsTotal = "node_memory_page_faults_total",
    /// `node.memory.majorPageFaults`.
    NodeMemoryMajorPageFaultsTotal = "node_memory_major_page_faults_total",
    /// `node.swap.swapUsageBytes`.
    NodeSwapUsageBytes = "node_swap_usage_bytes",
    /// `node.network.rxBytes` (default interface).
    NodeNetworkReceiveBytesTotal = "node_network_receive_bytes_total",
    /// `node.network.txBytes` (default interface).
    NodeNetworkTransmitBytesTotal = "node_network_transmit_bytes_total",
    /// `node.network.rxErrors` (default interface).
    NodeNetworkReceiveErrorsTotal = "node_network_receive_errors_total",
    /// `node.network.txErrors` (default interface).
    NodeNetworkTransmitErrorsTotal = "node_network_transmit_errors_total",
    /// `node.fs.usedBytes`: the node's root filesystem.
    NodeFsUsedBytes = "node_fs_used_bytes",
    /// `node.fs.capacityBytes`.
    NodeFsCapacityBytes = "node_fs_capacity_bytes",
    /// `node.fs.availableBytes`.
    NodeFsAvailableBytes = "node_fs_available_bytes",
    /// `node.fs.inodesUsed`.
    NodeFsInodesUsed = "node_fs_inodes_used",
    /// `node.fs.inodes`.
    NodeFsInodes = "node_fs_inodes",
    /// `node.fs.inodesFree`.
    NodeFsInodesFree = "node_fs_inodes_free",
    /// `node.runtime.imageFs.usedBytes`: the filesystem holding container images.
    NodeImagefsUsedBytes = "node_imagefs_used_bytes",
    /// `node.runtime.imageFs.capacityBytes`.
    NodeImagefsCapacityBytes = "node_imagefs_capacity_bytes",
    /// `node.runtime.imageFs.availableBytes`.
    NodeImagefsAvailableBytes = "node_imagefs_available_bytes",
    /// `node.runtime.containerFs.usedBytes` (split image/container filesystems only).
    NodeContainerfsUsedBytes = "node_containerfs_used_bytes",
    /// `node.runtime.containerFs.capacityBytes`.
    NodeContainerfsCapacityBytes = "node_containerfs_capacity_bytes",
    /// `node.runtime.containerFs.availableBytes`.
    NodeContainerfsAvailableBytes = "node_containerfs_available_bytes",
    /// `node.rlimit.maxpid`: the node's process-id limit.
    NodeRlimitMaxPids = "node_rlimit_max_pids",
    /// `node.rlimit.curproc`: processes running on the node.
    NodeRlimitProcesses = "node_rlimit_processes",
    /// `node.systemContainers[].cpu.usageNanoCores`, label `system_container` (`kubelet`,
    /// `runtime`, `pods`, `misc`).
    NodeSystemContainerCpuUsageNanocores = "node_system_container_cpu_usage_nanocores",
    /// `node.systemContainers[].memory.workingSetBytes`, label `system_container`.
    NodeSystemContainerMemoryWorkingSetBytes = "node_system_container_memory_working_set_bytes",
    /// `pods[].cpu.usageNanoCores`.
    PodCpuUsageNanocores = "pod_cpu_usage_nanocores",
    /// `pods[].cpu.usageCoreNanoSeconds`, in seconds.
    PodCpuUsageSecondsTotal = "pod_cpu_usage_seconds_total",
    /// `pods[].memory.workingSetBytes`.
    PodMemoryWorkingSetBytes = "pod_memory_working_set_bytes",
    /// `pods[].memory.rssBytes`.
    PodMemoryRssBytes = "pod_memory_rss_bytes",
    /// `pods[].memory.usageBytes`.
    PodMemoryUsageBytes = "pod_memory_usage_bytes",
    /// `pods[].swap.swapUsageBytes`.
    PodSwapUsageBytes = "pod_swap_usage_bytes",
    /// `pods[].network.rxBytes` (default interface).
    PodNetworkReceiveBytesTotal = "pod_network_receive_bytes_total",
    /// `pods[].network.txBytes` (default interface).
    PodNetworkTransmitBytesTotal = "pod_network_transmit_bytes_total",
    /// `pods[].network.rxErrors` (default interface).
    PodNetworkReceiveErrorsTotal = "pod_network_receive_errors_total",
    /// `pods[].network.txErrors` (default interface).
    PodNetworkTransmitErrorsTotal = "pod_network_transmit_errors_total",
    /// `pods[].ephemeral-storage.usedBytes`: container root filesystems, logs and local volumes.
    PodEphemeralStorageUsedBytes = "pod_ephemeral_storage_used_bytes",
    /// `pods[].ephemeral-storage.capacityBytes`.
    PodEphemeralStorageCapacityBytes = "pod_ephemeral_storage_capacity_bytes",
    /// `pods[].ephemeral-storage.availableBytes`.
    PodEphemeralStorageAvailableBytes = "pod_ephemeral_storage_available_bytes",
    /// `pods[].ephemeral-storage.inodesUsed`.
    PodEphemeralStorageInodesUsed = "pod_ephemeral_storage_inodes_used",
    /// `pods[].volume[].usedBytes`, label `volume` (and `persistentvolumeclaim` for a claim).
    PodVolumeUsedBytes = "pod_volume_used_bytes",
    /// `pods[].volume[].capacityBytes`, labels as [`Metric::PodVolumeUsedBytes`].
    PodVolumeCapacityBytes = "pod_volume_capacity_bytes",
    /// `pods[].volume[].availableBytes`, labels as [`Metric::PodVolumeUsedBytes`].
    PodVolumeAvailableBytes = "pod_volume_available_bytes",
    /// `pods[].volume[].inodesUsed`, labels as [`Metric::PodVolumeUsedBytes`].
    PodVolumeInodesUsed = "pod_volume_inodes_used",
    /// `pods[].process_stats.process_count`.
    PodProcesses = "pod_processes",
    /// `pods[].containers[].cpu.usageNanoCores`.
    ContainerCpuUsageNanocores = "container_cpu_usage_nanocores",
    /// `pods[].containers[].cpu.usageCoreNanoSeconds`, in seconds.
    ContainerCpuUsageSecondsTotal = "container_cpu_usage_seconds_total",
    /// `pods[].containers[].memory.workingSetBytes`.
    ContainerMemoryWorkingSetBytes = "container_memory_working_set_bytes",
    /// `pods[].containers[].memory.rssBytes`.
    ContainerMemoryRssBytes = "container_memory_rss_bytes",
    /// `pods[].containers[].memory.usageBytes`.
    ContainerMemoryUsageBytes = "container_memory_usage_bytes",
    /// `pods[].containers[].memory.pageFaults`.
    ContainerMemoryPageFaultsTotal = "container_memory_page_faults_total",
    /// `pods[].containers[].memory.majorPageFaults`.
    ContainerMemoryMajorPageFaultsTotal = "container_memory_major_page_faults_total",
    /// `pods[].containers[].swap.swapUsageBytes`.
    ContainerSwapUsageBytes = "container_swap_usage_bytes",
    /// `pods[].containers[].rootfs.usedBytes`: the container's writable layer.
    ContainerRootfsUsedBytes = "container_rootfs_used_bytes",
    /// `pods[].containers[].rootfs.inodesUsed`.
    ContainerRootfsInodesUsed = "container_rootfs_inodes_used",
    /// `pods[].containers[].logs.usedBytes`.
    ContainerLogsUsedBytes = "container_logs_used_bytes",
    /// `pods[].containers[].logs.inodesUsed`.
    ContainerLogsInodesUsed = "container_logs_inodes_used",
    /// `pods[].containers[].startTime`, in seconds since the epoch (a new value means a
    /// restart), stamped with the container's CPU or memory time.
    ContainerStartTimeSeconds = "container_start_time_seconds",
}

/// Number of [`Metric`]s.
const METRICS: usize = Metric::ALL.len();

/// Decodes a `/stats/summary` body from `node` into samples of every [`Metric`], interning
/// series in `cache` (the caller sweeps it after a successful decode).
pub fn decode(body: &[u8], node: &str, cache: &mut SeriesCache) -> Result<Batch, SummaryError> {
    decode_wanted(body, node, |_| true, cache)
}

/// As [`decode`], keeping only the metrics whose name `want` accepts (asked once per metric
/// and call), so unwanted statistics never become series.
pub fn decode_wanted(
    body: &[u8],
    node: &str,
    want: impl Fn(&str) -> bool,
    cache: &mut SeriesCache,
) -> Result<Batch, SummaryError> {
    let mut wants = [false; METRICS];
    for (slot, metric) in wants.iter_mut().zip(Metric::ALL) {
        *slot = want(metric.name());
    }
    let _read = ReadSections::set(Sections::wanted(&wants));
    let summary: Summary<'_> =
        serde_json::from_slice(body).map_err(|error| locate(body, node, error))?;
    let mut out = Flatten {
        wants,
        cache,
        batch: Batch::default(),
    };
    out.node(node, &summary.node);
    for pod in summary.pods.iter().flatten() {
        out.pod(node, pod);
    }
    Ok(out.batch)
}

/// Builds the error for a body serde rejected, finding the JSON path of the problem by decoding
/// again while tracking it (only failures pay for the tracking).
fn locate(body: &[u8], node: &str, error: serde_json::Error) -> SummaryError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let (path, reason) = match serde_path_to_error::deserialize::<_, Summary<'_>>(&mut de) {
        Err(tracked) => (tracked.path().to_string(), tracked.into_inner().to_string()),
        // Only the end-of-document check fails (trailing characters).
        Ok(_) => (".".to_string(), error.to_string()),
    };
    SummaryError::Invalid {
        node: node.to_string(),
        path,
        reason,
    }
}

/// Parts of each pod's statistics, decoded only when a wanted metric is in them: the others are
/// skipped unread (`serde::de::IgnoredAny`), which at 5,000 nodes is most of the payload when a
/// plugin reads only the pods' network counters. Node statistics are always decoded (one object
/// per payload).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Sections(u8);

impl Sections {
    const POD_CPU: u8 = 1;
    const POD_MEMORY: u8 = 1 << 1;
    const POD_SWAP: u8 = 1 << 2;
    const POD_NETWORK: u8 = 1 << 3;
    /// Volumes, ephemeral storage and process counts: stamped with the pod's CPU, memory or
    /// network time when their own is missing, so wanting them reads those three too.
    const POD_STORAGE: u8 = 1 << 4;
    const CONTAINERS: u8 = 1 << 5;
    const ALL: Sections = Sections(u8::MAX);

    /// The sections holding the `wants` metrics (indexed as [`Metric::ALL`]).
    fn wanted(wants: &[bool; METRICS]) -> Sections {
        let mut bits = 0;
        for (metric, _) in Metric::ALL.iter().zip(wants).filter(|(_, w)| **w) {
            let name = metric.name();
            bits |= [
                ("pod_cpu_", Self::POD_CPU),
                ("pod_memory_", Self::POD_MEMORY),
                ("pod_swap_", Self::POD_SWAP),
                ("pod_network_", Self::POD_NETWORK),
                ("pod_volume_", Self::POD_STORAGE),
                ("pod_ephemeral_", Self::POD_STORAGE),
                ("pod_processes", Self::POD_STORAGE),
                ("container_", Self::CONTAINERS),
            ]
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map_or(0, |(_, bit)| *bit);
        }
        if bits & Self::POD_STORAGE != 0 {
            bits |= Self::POD_CPU | Self::POD_MEMORY | Self::POD_NETWORK;
        }
        Sections(bits)
    }
}

thread_local! {
    /// The sections the decode running on this thread reads ([`ReadSections`]).
    static READ_SECTIONS: Cell<Sections> = const { Cell::new(Sections::ALL) };
}

/// Sets the sections read by decodes on this thread until dropped.
struct ReadSections(Sections);

impl ReadSections {
    fn set(sections: Sections) -> ReadSections {
        ReadSections(READ_SECTIONS.replace(sections))
    }
}

impl Drop for ReadSections {
    fn drop(&mut self) {
        READ_SECTIONS.set(self.0);
    }
}

/// A pod field of section `S`: `None` without reading it when the decode does not read `S`.
struct Gated<T, const S: u8>(Option<T>);

impl<T, const S: u8> Default for Gated<T, S> {
    fn default() -> Self {
        Gated(None)
    }
}

impl<T, const S: u8> std::ops::Deref for Gated<T, S> {
    type Target = Option<T>;
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>, const S: u8> Deserialize<'de> for Gated<T, S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if READ_SECTIONS.get().0 & S == 0 {
            de::IgnoredAny::deserialize(deserializer)?;
            return Ok(Gated(None));
        }
        Option::deserialize(deserializer).map(Gated)
    }
}

/// Metric names of one memory statistic.
struct MemoryNames {
    working_set: Metric,
    rss: Metric,
    usage: Metric,
    available: Option<Metric>,
    page_faults: Option<Metric>,
    major_page_faults: Option<Metric>,
}

/// Metric names of one filesystem statistic.
struct FsNames {
    used: Metric,
    capacity: Option<Metric>,
    available: Option<Metric>,
    inodes_used: Option<Metric>,
    inodes: Option<Metric>,
    inodes_free: Option<Metric>,
}

impl FsNames {
    const fn bytes(used: Metric, capacity: Metric, available: Metric) -> FsNames {
        FsNames {
            used,
            capacity: Some(capacity),
            available: Some(available),
            inodes_used: None,
            inodes: None,
            inodes_free: None,
        }
    }
}

const NODE_MEMORY: MemoryNames = MemoryNames {
    working_set: Metric::NodeMemoryWorkingSetBytes,
    rss: Metric::NodeMemoryRssBytes,
    usage: Metric::NodeMemoryUsageBytes,
    available: Some(Metric::NodeMemoryAvailableBytes),
    page_faults: Some(Metric::NodeMemoryPageFaultsTotal),
    major_page_faults: Some(Metric::NodeMemoryMajorPageFaultsTotal),
};
const POD_MEMORY: MemoryNames = MemoryNames {
    working_set: Metric::PodMemoryWorkingSetBytes,
    rss: Metric::PodMemoryRssBytes,
    usage: Metric::PodMemoryUsageBytes,
    available: None,
    page_faults: None,
    major_page_faults: None,
};
const CONTAINER_MEMORY: MemoryNames = MemoryNames {
    working_set: Metric::ContainerMemoryWorkingSetBytes,
    rss: Metric::ContainerMemoryRssBytes,
    usage: Metric::ContainerMemoryUsageBytes,
    available: None,
    page_faults: Some(Metric::ContainerMemoryPageFaultsTotal),
    major_page_faults: Some(Metric::ContainerMemoryMajorPageFaultsTotal),
};
const NODE_FS: FsNames = FsNames {
    used: Metric::NodeFsUsedBytes,
    capacity: Some(Metric::NodeFsCapacityBytes),
    available: Some(Metric::NodeFsAvailableBytes),
    inodes_used: Some(Metric::NodeFsInodesUsed),
    inodes: Some(Metric::NodeFsInodes),
    inodes_free: Some(Metric::NodeFsInodesFree),
};
const NODE_IMAGEFS: FsNames = FsNames::bytes(
    Metric::NodeImagefsUsedBytes,
    Metric::NodeImagefsCapacityBytes,
    Metric::NodeImagefsAvailableBytes,
);
const NODE_CONTAINERFS: FsNames = FsNames::bytes(
    Metric::NodeContainerfsUsedBytes,
    Metric::NodeContainerfsCapacityBytes,
    Metric::NodeContainerfsAvailableBytes,
);
const POD_EPHEMERAL: FsNames = FsNames {
    inodes_used: Some(Metric::PodEphemeralStorageInodesUsed),
    ..FsNames::bytes(
        Metric::PodEphemeralStorageUsedBytes,
        Metric::PodEphemeralStorageCapacityBytes,
        Metric::PodEphemeralStorageAvailableBytes,
    )
};
const POD_VOLUME: FsNames = FsNames {
    inodes_used: Some(Metric::PodVolumeInodesUsed),
    ..FsNames::bytes(
        Metric::PodVolumeUsedBytes,
        Metric::PodVolumeCapacityBytes,
        Metric::PodVolumeAvailableBytes,
    )
};
const CONTAINER_ROOTFS: FsNames = FsNames {
    used: Metric::ContainerRootfsUsedBytes,
    capacity: None,
    available: None,
    inodes_used: Some(Metric::ContainerRootfsInodesUsed),
    inodes: None,
    inodes_free: None,
};
const CONTAINER_LOGS: FsNames = FsNames {
    used: Metric::ContainerLogsUsedBytes,
    capacity: None,
    available: None,
    inodes_used: Some(Metric::ContainerLogsInodesUsed),
    inodes: None,
    inodes_free: None,
};

/// Accumulates samples while walking the payload.
struct Flatten<'c> {
    wants: [bool; METRICS],
    cache: &'c mut SeriesCache,
    batch: Batch,
}

impl Flatten<'_> {
    /// One sample, when it is wanted and both its time and value are known.
    fn put(
        &mut self,
        metric: Metric,
        labels: &mut [(&str, &str)],
        time: Option<i64>,
        value: Option<f64>,
    ) {
        if !self.wants[metric as usize] {
            return;
        }
        let (Some(time), Some(value)) = (time, value) else {
            return;
        };
        let series = self.cache.series(metric.name(), labels);
        self.batch.push(series, time, value);
    }

    /// As [`Flatten::put`] for an integer field, when the statistic has that metric at all.
    fn put_u64(
        &mut self,
        metric: impl Into<Option<Metric>>,
        labels: &mut [(&str, &str)],
        time: Option<i64>,
        value: Option<u64>,
    ) {
        if let Some(metric) = metric.into() {
            self.put(metric, labels, time, value.map(|v| v as f64));
        }
    }

    fn cpu(
        &mut self,
        labels: &mut [(&str, &str)],
        cpu: Option<&CpuStats>,
        [rate, total]: [Metric; 2],
    ) {
        let Some(cpu) = cpu else { return };
        let t = cpu.time.map(Time::ms);
        self.put_u64(rate, labels, t, cpu.usage_nano_cores);
        let seconds = cpu.usage_core_nano_seconds.map(|ns| ns as f64 / 1e9);
        self.put(total, labels, t, seconds);
    }

    fn memory(
        &mut self,
        labels: &mut [(&str, &str)],
        memory: Option<&MemoryStats>,
        names: &MemoryNames,
    ) {
        let Some(m) = memory else { return };
        let t = m.time.map(Time::ms);
        self.put_u64(names.working_set, labels, t, m.working_set_bytes);
        self.put_u64(names.rss, labels, t, m.rss_bytes);
        self.put_u64(names.usage, labels, t, m.usage_bytes);
        self.put_u64(names.available, labels, t, m.available_bytes);
        self.put_u64(names.page_faults, labels, t, m.page_faults);
        self.put_u64(names.major_page_faults, labels, t, m.major_page_faults);
    }

    fn swap(&mut self, labels: &mut [(&str, &str)], swap: Option<&SwapStats>, metric: Metric) {
        if let Some(s) = swap {
            self.put_u64(metric, labels, s.time.map(Time::ms), s.swap_usage_bytes);
        }
    }

    fn network(
        &mut self,
        labels: &mut [(&str, &str)],
        network: Option<&NetworkStats>,
        names: [Metric; 4],
    ) {
        let Some(n) = network else { return };
        let t = n.time.map(Time::ms);
        let [rx, tx, rx_errors, tx_errors] = names;
        self.put_u64(rx, labels, t, n.rx_bytes);
        self.put_u64(tx, labels, t, n.tx_bytes);
        self.put_u64(rx_errors, labels, t, n.rx_errors);
        self.put_u64(tx_errors, labels, t, n.tx_errors);
    }

    fn fs(
        &mut self,
        labels: &mut [(&str, &str)],
        fs: Option<&FsStats>,
        fallback: Option<i64>,
        names: &FsNames,
    ) {
        let Some(fs) = fs else { return };
        let t = fs.time.map(Time::ms).or(fallback);
        self.put_u64(names.used, labels, t, fs.used_bytes);
        self.put_u64(names.capacity, labels, t, fs.capacity_bytes);
        self.put_u64(names.available, labels, t, fs.available_bytes);
        self.put_u64(names.inodes_used, labels, t, fs.inodes_used);
        self.put_u64(names.inodes, labels, t, fs.inodes);
        self.put_u64(names.inodes_free, labels, t, fs.inodes_free);
    }

    fn node(&mut self, node: &str, n: &NodeStats<'_>) {
        let fallback = first_time(&[
            n.cpu.as_ref().and_then(|s| s.time),
            n.memory.as_ref().and_then(|s| s.time),
            n.network.as_ref().and_then(|s| s.time),
        ]);
        let labels = &mut [("node", node)];
        self.cpu(
            labels,
            n.cpu.as_ref(),
            [
                Metric::NodeCpuUsageNanocores,
                Metric::NodeCpuUsageSecondsTotal,
            ],
        );
        self.memory(labels, n.memory.as_ref(), &NODE_MEMORY);
        self.swap(labels, n.swap.as_ref(), Metric::NodeSwapUsageBytes);
        self.network(
            labels,
            n.network.as_ref(),
            [
                Metric::NodeNetworkReceiveBytesTotal,
                Metric::NodeNetworkTransmitBytesTotal,
                Metric::NodeNetworkReceiveErrorsTotal,
                Metric::NodeNetworkTransmitErrorsTotal,
            ],
        );
        self.fs(labels, n.fs.as_ref(), fallback, &NODE_FS);
        if let Some(runtime) = &n.runtime {
            self.fs(labels, runtime.image_fs.as_ref(), fallback, &NODE_IMAGEFS);
            self.fs(
                labels,
                runtime.container_fs.as_ref(),
                fallback,
                &NODE_CONTAINERFS,
            );
        }
        if let Some(rlimit) = &n.rlimit {
            let t = rlimit.time.map(Time::ms).or(fallback);
            self.put_u64(Metric::NodeRlimitMaxPids, labels, t, rlimit.maxpid);
            self.put_u64(Metric::NodeRlimitProcesses, labels, t, rlimit.curproc);
        }
        for system in n.system_containers.iter().flatten() {
            let labels = &mut [("node", node), ("system_container", &*system.name.0)];
            if let Some(cpu) = &system.cpu {
                let t = cpu.time.map(Time::ms);
                self.put_u64(
                    Metric::NodeSystemContainerCpuUsageNanocores,
                    labels,
                    t,
                    cpu.usage_nano_cores,
                );
            }
            if let Some(memory) = &system.memory {
                let t = memory.time.map(Time::ms);
                self.put_u64(
                    Metric::NodeSystemContainerMemoryWorkingSetBytes,
                    labels,
                    t,
                    memory.working_set_bytes,
                );
            }
        }
    }

    fn pod(&mut self, node: &str, p: &PodStats<'_>) {
        let (namespace, pod) = (&*p.pod_ref.namespace.0, &*p.pod_ref.name.0);
        let fallback = first_time(&[
            p.network.as_ref().and_then(|s| s.time),
            p.cpu.as_ref().and_then(|s| s.time),
            p.memory.as_ref().and_then(|s| s.time),
        ]);
        let labels = &mut [("namespace", namespace), ("node", node), ("pod", pod)];
        self.cpu(
            labels,
            p.cpu.as_ref(),
            [
                Metric::PodCpuUsageNanocores,
                Metric::PodCpuUsageSecondsTotal,
            ],
        );
        self.memory(labels, p.memory.as_ref(), &POD_MEMORY);
        self.swap(labels, p.swap.as_ref(), Metric::PodSwapUsageBytes);
        self.network(
            labels,
            p.network.as_ref(),
            [
                Metric::PodNetworkReceiveBytesTotal,
                Metric::PodNetworkTransmitBytesTotal,
                Metric::PodNetworkReceiveErrorsTotal,
                Metric::PodNetworkTransmitErrorsTotal,
            ],
        );
        self.fs(
            labels,
            p.ephemeral_storage.as_ref(),
            fallback,
            &POD_EPHEMERAL,
        );
        if let Some(process) = &*p.process_stats {
            self.put_u64(
                Metric::PodProcesses,
                labels,
                fallback,
                process.process_count,
            );
        }
        for volume in p.volume.iter().flatten() {
            let fs = FsStats {
                time: volume.time,
                available_bytes: volume.available_bytes,
                capacity_bytes: volume.capacity_bytes,
                used_bytes: volume.used_bytes,
                inodes_free: None,
                inodes: None,
                inodes_used: volume.inodes_used,
            };
            let name = &*volume.name.0;
            match &volume.pvc_ref {
                Some(claim) => {
                    let labels = &mut [
                        ("namespace", namespace),
                        ("node", node),
                        ("persistentvolumeclaim", &*claim.name.0),
                        ("pod", pod),
                        ("volume", name),
                    ];
                    self.fs(labels, Some(&fs), fallback, &POD_VOLUME);
                }
                None => {
                    let labels = &mut [
                        ("namespace", namespace),
                        ("node", node),
                        ("pod", pod),
                        ("volume", name),
                    ];
                    self.fs(labels, Some(&fs), fallback, &POD_VOLUME);
                }
            }
        }
        for c in p.containers.iter().flatten() {
            self.container(node, namespace, pod, c);
        }
    }

    fn container(&mut self, node: &str, namespace: &str, pod: &str, c: &ContainerStats<'_>) {
        let fallback = first_time(&[
            c.cpu.as_ref().and_then(|s| s.time),
            c.memory.as_ref().and_then(|s| s.time),
        ]);
        let labels = &mut [
            ("container", &*c.name.0),
            ("namespace", namespace),
            ("node", node),
            ("pod", pod),
        ];
        self.cpu(
            labels,
            c.cpu.as_ref(),
            [
                Metric::ContainerCpuUsageNanocores,
                Metric::ContainerCpuUsageSecondsTotal,
            ],
        );
        self.memory(labels, c.memory.as_ref(), &CONTAINER_MEMORY);
        self.swap(labels, c.swap.as_ref(), Metric::ContainerSwapUsageBytes);
        self.fs(labels, c.rootfs.as_ref(), fallback, &CONTAINER_ROOTFS);
        self.fs(labels, c.logs.as_ref(), fallback, &CONTAINER_LOGS);
        let start = c.start_time.map(|t| t.0 as f64 / 1000.0);
        self.put(Metric::ContainerStartTimeSeconds, labels, fallback, start);
    }
}

fn first_time(times: &[Option<Time>]) -> Option<i64> {
    times.iter().flatten().next().map(|t| t.0)
}

// The payload, as far as it is flattened: every other field is skipped unread. Every field is
// optional because real payloads omit what a runtime or kubelet version does not measure.

#[derive(Deserialize)]
struct Summary<'a> {
    #[serde(borrow)]
    node: NodeStats<'a>,
    #[serde(borrow, default)]
    pods: Option<Vec<PodStats<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats<'a> {
    #[serde(borrow, default)]
    system_containers: Option<Vec<SystemContainerStats<'a>>>,
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
    swap: Option<SwapStats>,
    network: Option<NetworkStats>,
    fs: Option<FsStats>,
    runtime: Option<RuntimeStats>,
    rlimit: Option<RlimitStats>,
}

#[derive(Deserialize)]
struct SystemContainerStats<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeStats {
    image_fs: Option<FsStats>,
    container_fs: Option<FsStats>,
}

#[derive(Deserialize)]
struct RlimitStats {
    time: Option<Time>,
    maxpid: Option<u64>,
    curproc: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats<'a> {
    #[serde(borrow)]
    pod_ref: PodReference<'a>,
    #[serde(borrow, default)]
    containers: Gated<Vec<ContainerStats<'a>>, { Sections::CONTAINERS }>,
    #[serde(default)]
    cpu: Gated<CpuStats, { Sections::POD_CPU }>,
    #[serde(default)]
    memory: Gated<MemoryStats, { Sections::POD_MEMORY }>,
    #[serde(default)]
    swap: Gated<SwapStats, { Sections::POD_SWAP }>,
    #[serde(default)]
    network: Gated<NetworkStats, { Sections::POD_NETWORK }>,
    #[serde(borrow, default)]
    volume: Gated<Vec<VolumeStats<'a>>, { Sections::POD_STORAGE }>,
    #[serde(rename = "ephemeral-storage", default)]
    ephemeral_storage: Gated<FsStats, { Sections::POD_STORAGE }>,
    #[serde(rename = "process_stats", default)]
    process_stats: Gated<ProcessStats, { Sections::POD_STORAGE }>,
}

#[derive(Deserialize)]
struct PodReference<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    namespace: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStats<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    start_time: Option<Time>,
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
    swap: Option<SwapStats>,
    rootfs: Option<FsStats>,
    logs: Option<FsStats>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct CpuStats {
    time: Option<Time>,
    usage_nano_cores: Option<u64>,
    usage_core_nano_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStats {
    time: Option<Time>,
    available_bytes: Option<u64>,
    usage_bytes: Option<u64>,
    working_set_bytes: Option<u64>,
    rss_bytes: Option<u64>,
    page_faults: Option<u64>,
    major_page_faults: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwapStats {
    time: Option<Time>,
    swap_usage_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkStats {
    time: Option<Time>,
    rx_bytes: Option<u64>,
    rx_errors: Option<u64>,
    tx_bytes: Option<u64>,
    tx_errors: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsStats {
    time: Option<Time>,
    available_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    used_bytes: Option<u64>,
    inodes_free: Option<u64>,
    inodes: Option<u64>,
    inodes_used: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeStats<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, default)]
    pvc_ref: Option<PodReference<'a>>,
    time: Option<Time>,
    available_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    used_bytes: Option<u64>,
    inodes_used: Option<u64>,
}

#[derive(Deserialize)]
struct ProcessStats {
    process_count: Option<u64>,
}

/// A JSON string, borrowed from the body unless it contains escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A `metav1.Time` (RFC 3339) as ms since the epoch.
#[derive(Clone, Copy)]
struct Time(i64);

impl Time {
    fn ms(self) -> i64 {
        self.0
    }
}

thread_local! {
    /// The last time string parsed and its value: a payload repeats a few distinct times
    /// hundreds of times, so most parses are a string comparison.
    static LAST_TIME: RefCell<(String, i64)> = const { RefCell::new((String::new(), 0)) };
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Time, E> {
                LAST_TIME.with_borrow_mut(|(last, ms)| {
                    if last != v {
                        let t: jiff::Timestamp = v
                            .parse()
                            .map_err(|e| E::custom(format_args!("invalid time {v:?}: {e}")))?;
                        *ms = t.as_millisecond();
                        last.clear();
                        last.push_str(v);
                    }
                    Ok(Time(*ms))
                })
            }
        }
        deserializer.deserialize_str(TimeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kubelet::samples::NodeSamples;

    /// A captured minikube kubelet answer (node and three of its pods), reformatted.
    const CAPTURED: &[u8] = include_bytes!("testdata/stats_summary.json");

    /// `2020-04-20T22:52:27Z`, the node's stats time in [`CAPTURED`].
    const T_NODE: i64 = 1_587_423_147_000;

    /// Value and timestamp of `name`'s sample whose labels include all of `labels`.
    fn sample(batch: &Batch, name: &str, labels: &[(&str, &str)]) -> Option<(f64, i64)> {
        let family = batch.families.get(name)?;
        let rows: Vec<usize> = (0..family.len())
            .filter(|&i| {
                labels
                    .iter()
                    .all(|(k, v)| family.series[i].label(k) == Some(*v))
            })
            .collect();
        assert!(
            rows.len() <= 1,
            "{name}{labels:?} matches {} samples",
            rows.len()
        );
        rows.first()
            .map(|&i| (family.values[i], family.timestamps_ms[i]))
    }

    #[test]
    fn captured_payload_flattens_into_the_named_samples() {
        let mut cache = SeriesCache::default();
        let batch = decode(CAPTURED, "minikube", &mut cache).unwrap();
        let node = [("node", "minikube")];
        assert_eq!(
            sample(&batch, "node_cpu_usage_nanocores", &node),
            Some((165_737_329.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_cpu_usage_seconds_total", &node),
            Some((263.475_389_988, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_memory_working_set_bytes", &node),
            Some((1_234_567_890.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_network_receive_bytes_total", &node),
            Some((948_305_524.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_network_transmit_bytes_total", &node),
            Some((12_542_266.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_fs_used_bytes", &node),
            Some((2_626_973_696.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_fs_capacity_bytes", &node),
            Some((17_361_125_376.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_fs_available_bytes", &node),
            Some((13_717_454_848.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_imagefs_used_bytes", &node),
            Some((5_698_399_516.0, T_NODE))
        );
        assert_eq!(
            sample(&batch, "node_rlimit_processes", &node),
            Some((438.0, T_NODE + 1000))
        );
        assert_eq!(
            sample(
                &batch,
                "node_system_container_memory_working_set_bytes",
                &[("system_container", "runtime")]
            ),
            Some((300_175_360.0, T_NODE))
        );
        // No containerFs in this payload: no sample rather than a zero.
        assert!(!batch.families.contains_key("node_containerfs_used_bytes"));

        let sched = [
            ("node", "minikube"),
            ("namespace", "kube-system"),
            ("pod", "kube-scheduler-minikube"),
        ];
        let t_net = 1_587_423_140_000; // 22:52:20Z
        assert_eq!(
            sample(&batch, "pod_network_receive_bytes_total", &sched),
            Some((948_305_362.0, t_net))
        );
        assert_eq!(
            sample(&batch, "pod_network_transmit_bytes_total", &sched),
            Some((12_542_068.0, t_net))
        );
        assert_eq!(
            sample(&batch, "pod_network_receive_errors_total", &sched),
            Some((0.0, t_net))
        );
        assert_eq!(
            sample(&batch, "pod_network_transmit_errors_total", &sched),
            Some((0.0, t_net))
        );
        assert_eq!(
            sample(&batch, "pod_ephemeral_storage_used_bytes", &sched),
            Some((49_152.0, 1_587_422_400_000))
        );
        assert_eq!(
            sample(&batch, "pod_ephemeral_storage_capacity_bytes", &sched),
            Some((17_361_125_376.0, 1_587_422_400_000))
        );
        assert_eq!(
            sample(&batch, "pod_cpu_usage_nanocores", &sched),
            Some((3_620_103.0, 1_587_423_138_000))
        );
        assert_eq!(
            sample(&batch, "pod_memory_working_set_bytes", &sched),
            Some((12_230_656.0, 1_587_423_138_000))
        );
        // That pod has no volumes.
        assert_eq!(sample(&batch, "pod_volume_used_bytes", &sched), None);

        let container = [
            ("pod", "kube-scheduler-minikube"),
            ("container", "kube-scheduler"),
        ];
        let t_c = 1_587_423_146_000; // 22:52:26Z
        assert_eq!(
            sample(&batch, "container_cpu_usage_nanocores", &container),
            Some((3_438_625.0, t_c))
        );
        assert_eq!(
            sample(&batch, "container_memory_working_set_bytes", &container),
            Some((11_640_832.0, t_c))
        );
        assert_eq!(
            sample(&batch, "container_memory_rss_bytes", &container),
            Some((12_660_736.0, t_c))
        );
        assert_eq!(
            sample(&batch, "container_rootfs_used_bytes", &container),
            Some((12_288.0, t_c))
        );
        assert_eq!(
            sample(&batch, "container_logs_used_bytes", &container),
            Some((36_864.0, t_c))
        );
        assert_eq!(
            sample(&batch, "container_start_time_seconds", &container),
            Some((1_587_422_370.0, t_c))
        );

        let coredns = [("pod", "coredns-66bff467f8-szddj")];
        let volumes = &batch.families["pod_volume_used_bytes"];
        assert_eq!(volumes.len(), 3);
        assert_eq!(
            sample(
                &batch,
                "pod_volume_capacity_bytes",
                &[coredns[0], ("volume", "coredns-token-dzc5t")]
            ),
            Some((2_015_715_328.0, 1_587_422_440_000))
        );
        let labels: Vec<&str> = volumes.series[1].labels.iter().map(|(k, _)| &**k).collect();
        assert_eq!(labels, ["namespace", "node", "pod", "volume"]);
        let labels: Vec<&str> = batch.families["container_cpu_usage_nanocores"].series[0]
            .labels
            .iter()
            .map(|(k, _)| &**k)
            .collect();
        assert_eq!(labels, ["container", "namespace", "node", "pod"]);

        // Every metric the payload has data for, once per object.
        assert_eq!(batch.families["pod_cpu_usage_nanocores"].len(), 3);
        assert_eq!(batch.families["container_logs_used_bytes"].len(), 3);
        assert_eq!(cache.len(), batch.len());
    }

    #[test]
    fn missing_and_null_statistics_give_no_samples_and_old_fs_stats_borrow_a_time() {
        let body = br#"{
          "node": {"nodeName": "n", "cpu": {"time": "2024-01-01T00:00:10Z", "usageNanoCores": 5},
                   "memory": null,
                   "fs": {"usedBytes": 7, "capacityBytes": null}},
          "pods": [
            {"podRef": {"name": "p", "namespace": "ns", "uid": "u"},
             "containers": [{"name": "c", "memory": {"time": "2024-01-01T00:00:05Z", "rssBytes": 3},
                             "rootfs": {"usedBytes": 9}, "logs": {"time": null, "usedBytes": 1}}],
             "network": {"time": "2024-01-01T00:00:07Z", "rxBytes": 100},
             "volume": [{"name": "v", "usedBytes": 2, "pvcRef": {"name": "claim", "namespace": "ns"}}]},
            {"podRef": {"name": "q", "namespace": "ns"}}
          ]
        }"#;
        let mut cache = SeriesCache::default();
        let batch = decode(body, "n", &mut cache).unwrap();
        let t0 = 1_704_067_200_000;
        let mut names: Vec<&str> = batch.families.keys().map(|k| &**k).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "container_logs_used_bytes",
                "container_memory_rss_bytes",
                "container_rootfs_used_bytes",
                "node_cpu_usage_nanocores",
                "node_fs_used_bytes",
                "pod_network_receive_bytes_total",
                "pod_volume_used_bytes",
            ]
        );
        // fs without a time takes the node's CPU time; container fs its memory time; a volume
        // its pod's network time.
        assert_eq!(
            sample(&batch, "node_fs_used_bytes", &[]),
            Some((7.0, t0 + 10_000))
        );
        assert_eq!(
            sample(&batch, "container_rootfs_used_bytes", &[]),
            Some((9.0, t0 + 5_000))
        );
        assert_eq!(
            sample(&batch, "container_logs_used_bytes", &[]),
            Some((1.0, t0 + 5_000))
        );
        assert_eq!(
            sample(
                &batch,
                "pod_volume_used_bytes",
                &[("persistentvolumeclaim", "claim")]
            ),
            Some((2.0, t0 + 7_000))
        );
    }

    #[test]
    fn bad_payloads_name_the_node_and_the_json_path() {
        let mut cache = SeriesCache::default();
        let wrong_type = br#"{"node": {"nodeName": "n"}, "pods": [
            {"podRef": {"name": "p", "namespace": "ns"},
             "containers": [{"name": "c", "cpu": {"usageNanoCores": "lots"}}]}]}"#;
        let e = decode(wrong_type, "node-9", &mut cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("node node-9"), "{e}");
        assert!(e.contains("/stats/summary"), "{e}");
        assert!(
            e.contains("`pods[0].containers[0].cpu.usageNanoCores`"),
            "{e}"
        );
        assert!(e.contains("invalid type: string \"lots\""), "{e}");

        let bad_time = br#"{"node": {"nodeName": "n", "memory": {"time": "yesterday"}}}"#;
        let e = decode(bad_time, "node-9", &mut cache)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`node.memory.time`") && e.contains("\"yesterday\""),
            "{e}"
        );

        let no_pod_ref = br#"{"node": {}, "pods": [{"cpu": {}}]}"#;
        let e = decode(no_pod_ref, "node-9", &mut cache)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`pods[0]`") && e.contains("missing field `podRef`"),
            "{e}"
        );

        for garbage in [
            &b"<html>502</html>"[..],
            b"{\"node\": {",
            b"{\"node\": {}} trailing",
            b"",
        ] {
            let e = decode(garbage, "node-9", &mut cache)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("node node-9: invalid /stats/summary answer"),
                "{e}"
            );
            assert!(e.contains("line 1 column"), "{e}");
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn wanted_names_limit_decoding() {
        let mut cache = SeriesCache::default();
        let batch = decode_wanted(
            CAPTURED,
            "minikube",
            |name| name.starts_with("pod_network_"),
            &mut cache,
        )
        .unwrap();
        assert_eq!(batch.families.len(), 4);
        assert_eq!(batch.len(), 12);
        assert_eq!(cache.len(), 12);
    }

    /// Each metric decoded alone (so every section it is not in is skipped unread) gives the
    /// same samples as a full decode, including fs statistics that borrow another one's time.
    #[test]
    fn unwanted_sections_are_skipped_without_losing_wanted_samples() {
        let missing_times = br#"{"node": {"nodeName": "n"}, "pods": [
            {"podRef": {"name": "p", "namespace": "ns"},
             "network": {"time": "2024-01-01T00:00:07Z", "rxBytes": 100},
             "cpu": {"time": "2024-01-01T00:00:08Z", "usageNanoCores": 4},
             "ephemeral-storage": {"usedBytes": 5}, "process_stats": {"process_count": 3},
             "volume": [{"name": "v", "usedBytes": 2}],
             "containers": [{"name": "c", "memory": {"time": "2024-01-01T00:00:05Z"},
                             "startTime": "2024-01-01T00:00:01Z", "rootfs": {"usedBytes": 9}}]}]}"#;
        let rows = |batch: &Batch, name: &str| {
            batch.families.get(name).map(|f| {
                let mut rows: Vec<_> = (0..f.len())
                    .map(|i| (f.series[i].labels.clone(), f.timestamps_ms[i], f.values[i]))
                    .collect();
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows
            })
        };
        for body in [CAPTURED, &missing_times[..]] {
            let all = decode(body, "n", &mut SeriesCache::default()).unwrap();
            for metric in Metric::ALL {
                let alone = decode_wanted(
                    body,
                    "n",
                    |name| name == metric.name(),
                    &mut SeriesCache::default(),
                )
                .unwrap();
                assert!(alone.families.len() <= 1, "{metric:?}");
                assert_eq!(
                    rows(&alone, metric.name()),
                    rows(&all, metric.name()),
                    "{metric:?}"
                );
            }
        }
        // A volume without a time takes the pod's network time, read although not wanted.
        let volumes = decode_wanted(
            missing_times,
            "n",
            |name| name == "pod_volume_used_bytes",
            &mut SeriesCache::default(),
        )
        .unwrap();
        let t0 = 1_704_067_200_000;
        assert_eq!(
            sample(&volumes, "pod_volume_used_bytes", &[]),
            Some((2.0, t0 + 7_000))
        );

        // What is skipped is not read, so not checked either; what is read is.
        let bad_container = br#"{"node": {}, "pods": [
            {"podRef": {"name": "p", "namespace": "ns"},
             "containers": [{"name": "c", "cpu": {"usageNanoCores": "lots"}}],
             "network": {"time": "2024-01-01T00:00:07Z", "rxBytes": 100}}]}"#;
        let network = decode_wanted(
            bad_container,
            "n",
            |name| name.starts_with("pod_network_"),
            &mut SeriesCache::default(),
        )
        .unwrap();
        assert_eq!(network.len(), 1);
        let e = decode_wanted(
            bad_container,
            "n",
            |name| name == "container_cpu_usage_nanocores",
            &mut SeriesCache::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`pods[0].containers[0].cpu.usageNanoCores`"),
            "{e}"
        );
    }

    #[test]
    fn metric_names_are_unique_and_kube_style() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        assert!(names.iter().all(|n| {
            n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && ["node_", "pod_", "container_"]
                    .iter()
                    .any(|p| n.starts_with(p))
        }));
    }

    #[test]
    fn ids_are_stable_while_a_series_exists_and_a_removed_pod_is_forgotten() {
        let mut node = NodeSamples::default();
        let want = |_: &str| true;
        let first = node.summary(CAPTURED, "minikube", want).unwrap();
        let second = node.summary(CAPTURED, "minikube", want).unwrap();
        let ids = |b: &Batch, name: &str| -> Vec<u64> {
            b.families[name].series.iter().map(|s| s.id).collect()
        };
        assert_eq!(
            ids(&first, "pod_network_receive_bytes_total"),
            ids(&second, "pod_network_receive_bytes_total")
        );
        let held = node.summary.len();
        assert_eq!(held, first.len());

        // The coredns pod goes away.
        let text = std::str::from_utf8(CAPTURED).unwrap();
        let cut = text
            .find(",\n    {\n      \"podRef\": {\"name\": \"coredns")
            .unwrap();
        let without = format!("{}\n  ]\n}}\n", &text[..cut]);
        let third = node.summary(without.as_bytes(), "minikube", want).unwrap();
        let coredns_series = first
            .families
            .values()
            .flat_map(|f| &f.series)
            .filter(|s| s.label("pod") == Some("coredns-66bff467f8-szddj"));
        let gone = coredns_series.count();
        assert!(gone > 10);
        assert_eq!(node.summary.len(), held - gone);
        assert_eq!(third.len(), held - gone);
        // The remaining pods keep their ids.
        let sched = |b: &Batch| {
            let f = &b.families["pod_cpu_usage_nanocores"];
            f.series
                .iter()
                .find(|s| s.label("pod") == Some("kube-scheduler-minikube"))
                .unwrap()
                .id
        };
        assert_eq!(sched(&first), sched(&third));
        // A pod that comes back is a new series.
        let fourth = node.summary(CAPTURED, "minikube", want).unwrap();
        let coredns_ids = |b: &Batch| {
            b.families["pod_cpu_usage_nanocores"]
                .series
                .iter()
                .find(|s| s.label("pod") == Some("coredns-66bff467f8-szddj"))
                .map(|s| s.id)
        };
        assert_ne!(coredns_ids(&fourth), coredns_ids(&first));
        assert!(coredns_ids(&fourth).is_some());
    }
}
