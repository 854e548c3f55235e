//! What the controller knows of a target's pods, and how it sorts them before a calculation:
//! ready (counted), unready (left out, 0 on a scale-up), missing a metric (0 on a scale-up, the
//! request or target on a scale-down) or ignored (deleted and failed pods).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use serde::Serialize;

use crate::api::quantity::Quantity;

/// `--horizontal-pod-autoscaler-cpu-initialization-period` default: 5 minutes.
pub const CPU_INITIALIZATION_PERIOD_MS: i64 = 5 * 60 * 1000;
/// `--horizontal-pod-autoscaler-initial-readiness-delay` default: 30 seconds.
pub const INITIAL_READINESS_DELAY_MS: i64 = 30 * 1000;

/// The two readiness periods that apply to CPU metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// A pod started less than this ago is judged by its Ready condition and sample time.
    pub cpu_initialization_period_ms: i64,
    /// After the initialization period, a not-ready pod whose condition last changed within
    /// this of its start has never been ready.
    pub initial_readiness_delay_ms: i64,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            cpu_initialization_period_ms: CPU_INITIALIZATION_PERIOD_MS,
            initial_readiness_delay_ms: INITIAL_READINESS_DELAY_MS,
        }
    }
}

/// A pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// `Pending`.
    Pending,
    /// `Running`.
    Running,
    /// `Succeeded`.
    Succeeded,
    /// `Failed`.
    Failed,
    /// `Unknown` or absent.
    Unknown,
}

impl Phase {
    /// Parses `status.phase`.
    pub fn parse(phase: Option<&str>) -> Phase {
        match phase {
            Some("Pending") => Phase::Pending,
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            _ => Phase::Unknown,
        }
    }
}

/// The pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCondition {
    /// `status == "True"`.
    pub ready: bool,
    /// `lastTransitionTime`, ms since the epoch.
    pub last_transition_ms: i64,
}

/// One container's requests, milli-units by resource name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerRequests {
    /// Container name.
    pub name: String,
    /// `resources.requests`, as milli-values (`cpu: 250m` → 250).
    pub requests_milli: BTreeMap<String, i64>,
}

/// What the calculation needs of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Name.
    pub name: String,
    /// Phase.
    pub phase: Phase,
    /// `metadata.deletionTimestamp` is set.
    pub deleted: bool,
    /// The `Ready` condition, when present.
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`, ms since the epoch.
    pub start_ms: Option<i64>,
    /// Containers, then restartable init containers (sidecars), as the controller sums them.
    pub containers: Vec<ContainerRequests>,
}

impl Pod {
    /// Projects a Kubernetes pod. Requests that do not parse as quantities are left out (the
    /// calculation then reports them missing).
    pub fn from_k8s(pod: &core::Pod) -> Pod {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| ReadyCondition {
                ready: c.status == "True",
                last_transition_ms: c
                    .last_transition_time
                    .as_ref()
                    .map_or(0, |t| t.0.as_millisecond()),
            });
        let spec = pod.spec.as_ref();
        let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        Pod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: Phase::parse(status.and_then(|s| s.phase.as_deref())),
            deleted: pod.metadata.deletion_timestamp.is_some(),
            ready,
            start_ms: status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.as_millisecond()),
            containers: containers
                .chain(sidecars)
                .map(|c| ContainerRequests {
                    name: c.name.clone(),
                    requests_milli: c
                        .resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, q)| {
                            let q: Quantity = q.0.parse().ok()?;
                            Some((k.clone(), q.milli_value()))
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Running with a true `Ready` condition (what counts for Object and External Value).
    pub fn is_running_and_ready(&self) -> bool {
        self.phase == Phase::Running && self.ready.is_some_and(|c| c.ready)
    }
}

/// One pod's metric value, milli-units, with the sample's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PodMetric {
    /// The value in milli-units (`MilliValue()` of the quantity).
    pub value_milli: i64,
    /// Sample time, ms since the epoch.
    pub timestamp_ms: i64,
    /// Sample window, ms.
    pub window_ms: i64,
}

/// Why a pod is left out of the first calculation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Counted with its value.
    Ready,
    /// Running without a value for the metric.
    Missing,
    /// `Pending`: left out, counted as 0 on a scale-up.
    Pending,
    /// CPU only: no `Ready` condition or no start time.
    NoReadiness,
    /// CPU only: within the initialization period and not ready.
    NotReadyInitializing,
    /// CPU only: within the initialization period, and the sample does not cover a full window
    /// since the pod became ready.
    SampleBeforeReady,
    /// CPU only: past the initialization period, not ready, and never was.
    NeverReady,
    /// Deleted (`deletionTimestamp` set): left out entirely.
    Deleted,
    /// `Failed`: left out entirely.
    Failed,
}

impl Group {
    /// Left out, and counted as 0 on a scale-up (the controller's "unready pods").
    pub fn is_unready(self) -> bool {
        matches!(
            self,
            Group::Pending
                | Group::NoReadiness
                | Group::NotReadyInitializing
                | Group::SampleBeforeReady
                | Group::NeverReady
        )
    }

    /// Left out of every step (the controller's "ignored pods").
    pub fn is_ignored(self) -> bool {
        matches!(self, Group::Deleted | Group::Failed)
    }

    /// A sentence for explain.
    pub fn describe(self) -> &'static str {
        match self {
            Group::Ready => "ready",
            Group::Missing => "no metric value",
            Group::Pending => "pending",
            Group::NoReadiness => "unready: no Ready condition or start time",
            Group::NotReadyInitializing => {
                "unready: not Ready within the CPU initialization period"
            }
            Group::SampleBeforeReady => {
                "unready: sample does not cover a full window since the pod became Ready"
            }
            Group::NeverReady => "unready: not Ready and never was",
            Group::Deleted => "ignored: being deleted",
            Group::Failed => "ignored: failed",
        }
    }
}

/// Sorts `pods` as the controller's `groupPods` does; `cpu` applies the readiness rules.
pub fn group(
    pods: &[Pod],
    metrics: &BTreeMap<String, PodMetric>,
    cpu: bool,
    now_ms: i64,
    readiness: Readiness,
) -> Vec<(String, Group)> {
    pods.iter()
        .map(|pod| {
            (
                pod.name.clone(),
                group_one(pod, metrics, cpu, now_ms, readiness),
            )
        })
        .collect()
}

fn group_one(
    pod: &Pod,
    metrics: &BTreeMap<String, PodMetric>,
    cpu: bool,
    now_ms: i64,
    readiness: Readiness,
) -> Group {
    if pod.deleted {
        return Group::Deleted;
    }
    if pod.phase == Phase::Failed {
        return Group::Failed;
    }
    if pod.phase == Phase::Pending {
        return Group::Pending;
    }
    let Some(metric) = metrics.get(&pod.name) else {
        return Group::Missing;
    };
    if !cpu {
        return Group::Ready;
    }
    let (Some(condition), Some(start_ms)) = (pod.ready, pod.start_ms) else {
        return Group::NoReadiness;
    };
    if start_ms + readiness.cpu_initialization_period_ms > now_ms {
        if !condition.ready {
            return Group::NotReadyInitializing;
        }
        if metric.timestamp_ms < condition.last_transition_ms + metric.window_ms {
            return Group::SampleBeforeReady;
        }
    } else if !condition.ready
        && start_ms + readiness.initial_readiness_delay_ms > condition.last_transition_ms
    {
        return Group::NeverReady;
    }
    Group::Ready
}
