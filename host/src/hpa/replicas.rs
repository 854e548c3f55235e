//! One metric's replica proposal, by the controller's rules (`replica_calculator.go`): values in
//! milli-units, Utilization truncated to a whole percent, proposals rounded up, tolerance around
//! a ratio of 1, and the second pass for missing and unready pods.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pods::{self, Group, Pod, PodMetric, Readiness};

/// The controller's default `--horizontal-pod-autoscaler-tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// Why a metric gives no proposal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// The target's selector matched no pods.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Every pod with a value was unready or ignored (or none had a value).
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetricsForTargetedPods,
    /// A container lacks a request for the resource.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        /// Resource name.
        resource: String,
        /// Container name.
        container: String,
        /// Pod name.
        pod: String,
    },
    /// The ContainerResource container is not in the pod.
    #[error("container {container} not found in Pod {pod}")]
    ContainerNotFound {
        /// Container name.
        container: String,
        /// Pod name.
        pod: String,
    },
    /// The requests of the pods with values sum to 0.
    #[error("no metrics returned matched known pods")]
    NoMatchingRequests,
}

/// Ratios within `[1 - down, 1 + up]` mean no change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerances {
    /// Scale-down tolerance.
    pub down: f64,
    /// Scale-up tolerance.
    pub up: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            down: DEFAULT_TOLERANCE,
            up: DEFAULT_TOLERANCE,
        }
    }
}

impl Tolerances {
    /// The ratio is close enough to 1 to keep the current count.
    pub fn within(&self, ratio: f64) -> bool {
        1.0 - self.down <= ratio && ratio <= 1.0 + self.up
    }
}

/// How the proposal was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The ratio is within tolerance: keep the current count.
    WithinTolerance,
    /// `ceil(ratio × counted pods)` (or `ceil(value / target)` for AverageValue).
    Scaled,
    /// Scaling from zero replicas: `ceil(ratio)`, no tolerance.
    FromZero,
    /// After counting missing and unready pods the ratio is within tolerance: keep the count.
    RebalancedWithinTolerance,
    /// Counting missing and unready pods would reverse the direction: keep the count.
    DirectionReversed,
    /// The recomputed count moves against the ratio's direction: keep the count.
    CountReversed,
    /// Recomputed with missing and unready pods counted.
    Rebalanced,
}

/// One pod in a per-pod calculation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodValue {
    /// Pod name.
    pub pod: String,
    /// How the pod was sorted.
    pub group: Group,
    /// Its measured value, milli-units.
    pub measured_milli: Option<i64>,
    /// Its request, milli-units (Utilization only).
    pub request_milli: Option<i64>,
    /// The value the second pass assumed for it (missing or unready pods), milli-units.
    pub assumed_milli: Option<i64>,
}

/// One metric's proposal, with what explain shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    /// Proposed replicas.
    pub replicas: i32,
    /// The current value: Utilization in percent, else milli-units (the average for per-pod
    /// metrics and AverageValue, the total for Value).
    pub current: i64,
    /// Current over target.
    pub usage_ratio: f64,
    /// Pods counted in the first pass (ready pods with a value; for Value targets, ready pods).
    pub ready_pods: i64,
    /// The ratio after assuming values for missing and unready pods, when a second pass ran.
    pub rebalanced_ratio: Option<f64>,
    /// How the proposal was reached.
    pub outcome: Outcome,
    /// Per pod (empty for Object and External metrics).
    pub pods: Vec<PodValue>,
}

/// What a per-pod calculation reads.
#[derive(Debug, Clone, Copy)]
pub struct PodInputs<'a> {
    /// The target's pods.
    pub pods: &'a [Pod],
    /// Values by pod name (may name pods outside `pods`: the controller counts those too).
    pub metrics: &'a BTreeMap<String, PodMetric>,
    /// Now, ms since the epoch (CPU readiness).
    pub now_ms: i64,
    /// CPU readiness periods.
    pub readiness: Readiness,
    /// Tolerances.
    pub tolerances: Tolerances,
}

/// Current value and ratio of a set of values.
type RatioFn<'f> = dyn Fn(&BTreeMap<String, i64>) -> Result<(f64, i64), CalcError> + 'f;

/// `Resource`/`ContainerResource` with an `Utilization` target, in percent of the requests of
/// `resource` (of `container` only, when given).
pub fn utilization(
    current_replicas: i32,
    target_percent: i32,
    resource: &str,
    container: Option<&str>,
    input: PodInputs<'_>,
) -> Result<Proposal, CalcError> {
    let groups = grouped(&input, resource == "cpu")?;
    let requests = requests(input.pods, resource, container)?;
    let ratio = |values: &BTreeMap<String, i64>| {
        let (mut used, mut requested) = (0i64, 0i64);
        for (pod, value) in values {
            if let Some(request) = requests.get(pod) {
                used += value;
                requested += request;
            }
        }
        if requested == 0 {
            return Err(CalcError::NoMatchingRequests);
        }
        let percent = used * 100 / requested;
        Ok((percent as f64 / f64::from(target_percent), percent))
    };
    // On a scale-down a missing pod counts at its request, or at the target when above 100 %.
    let fallback = i64::from(target_percent.max(100));
    let on_scale_down = |pod: &str| requests.get(pod).copied().unwrap_or(0) * fallback / 100;
    let mut proposal = two_passes(current_replicas, input, &groups, &ratio, &on_scale_down)?;
    for p in &mut proposal.pods {
        p.request_milli = requests.get(&p.pod).copied();
    }
    Ok(proposal)
}

/// `Pods` metrics and `Resource` `AverageValue` targets: the average of the pods' values
/// against `target_milli` (`cpu` applies the CPU readiness rules).
pub fn average_value(
    current_replicas: i32,
    target_milli: i64,
    cpu: bool,
    input: PodInputs<'_>,
) -> Result<Proposal, CalcError> {
    let groups = grouped(&input, cpu)?;
    let ratio = |values: &BTreeMap<String, i64>| {
        let total: i64 = values.values().sum();
        let average = total / values.len().max(1) as i64;
        Ok((average as f64 / target_milli as f64, average))
    };
    two_passes(current_replicas, input, &groups, &ratio, &|_: &str| {
        target_milli
    })
}

/// The pods classified for a pod-based metric (`cpu` applies the CPU readiness rules); an
/// error when there are no pods or none of them has a counted value.
fn grouped(input: &PodInputs<'_>, cpu: bool) -> Result<Vec<(String, Group)>, CalcError> {
    if input.pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let groups = pods::group(
        input.pods,
        input.metrics,
        cpu,
        input.now_ms,
        input.readiness,
    );
    if counted(input.metrics, &groups).is_empty() {
        return Err(CalcError::NoMetricsForTargetedPods);
    }
    Ok(groups)
}

/// The values counted in the first pass: every value except those of unready and ignored pods.
fn counted(
    metrics: &BTreeMap<String, PodMetric>,
    groups: &[(String, Group)],
) -> BTreeMap<String, i64> {
    let left_out: BTreeMap<&str, Group> = groups
        .iter()
        .filter(|(_, g)| g.is_unready() || g.is_ignored())
        .map(|(p, g)| (p.as_str(), *g))
        .collect();
    metrics
        .iter()
        .filter(|(pod, _)| !left_out.contains_key(pod.as_str()))
        .map(|(pod, m)| (pod.clone(), m.value_milli))
        .collect()
}

fn two_passes(
    current_replicas: i32,
    input: PodInputs<'_>,
    groups: &[(String, Group)],
    ratio_of: &RatioFn<'_>,
    on_scale_down: &dyn Fn(&str) -> i64,
) -> Result<Proposal, CalcError> {
    let mut values = counted(input.metrics, groups);
    let (ratio, current) = ratio_of(&values)?;
    let ready = groups.iter().filter(|(_, g)| *g == Group::Ready).count() as i64;
    let missing: Vec<&str> = pod_names(groups, |g| g == Group::Missing);
    let unready: Vec<&str> = pod_names(groups, Group::is_unready);
    let mut pods: Vec<PodValue> = groups
        .iter()
        .map(|(pod, group)| PodValue {
            pod: pod.clone(),
            group: *group,
            measured_milli: input.metrics.get(pod).map(|m| m.value_milli),
            request_milli: None,
            assumed_milli: None,
        })
        .collect();
    let mut proposal = Proposal {
        replicas: current_replicas,
        current,
        usage_ratio: ratio,
        ready_pods: ready,
        rebalanced_ratio: None,
        outcome: Outcome::WithinTolerance,
        pods: Vec::new(),
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if !input.tolerances.within(ratio) {
            proposal.replicas = ceil_i32(ratio * ready as f64);
            proposal.outcome = Outcome::Scaled;
        }
        proposal.pods = pods;
        return Ok(proposal);
    }
    let mut assume = |pod: &str, value: i64, values: &mut BTreeMap<String, i64>| {
        values.insert(pod.to_owned(), value);
        if let Some(p) = pods.iter_mut().find(|p| p.pod == pod) {
            p.assumed_milli = Some(value);
        }
    };
    if ratio < 1.0 {
        for pod in &missing {
            assume(pod, on_scale_down(pod), &mut values);
        }
    } else if ratio > 1.0 {
        for pod in &missing {
            assume(pod, 0, &mut values);
        }
    }
    if scale_up_with_unready {
        for pod in &unready {
            assume(pod, 0, &mut values);
        }
    }
    let (new_ratio, _) = ratio_of(&values)?;
    proposal.rebalanced_ratio = Some(new_ratio);
    proposal.pods = pods;
    if input.tolerances.within(new_ratio) {
        proposal.outcome = Outcome::RebalancedWithinTolerance;
        return Ok(proposal);
    }
    if (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        proposal.outcome = Outcome::DirectionReversed;
        return Ok(proposal);
    }
    let replicas = ceil_i32(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        proposal.outcome = Outcome::CountReversed;
        return Ok(proposal);
    }
    proposal.replicas = replicas;
    proposal.outcome = Outcome::Rebalanced;
    Ok(proposal)
}

fn pod_names(groups: &[(String, Group)], keep: impl Fn(Group) -> bool) -> Vec<&str> {
    groups
        .iter()
        .filter(|(_, g)| keep(*g))
        .map(|(p, _)| p.as_str())
        .collect()
}

/// Each pod's request of `resource`: all containers and sidecars, or `container` only.
fn requests(
    pods: &[Pod],
    resource: &str,
    container: Option<&str>,
) -> Result<BTreeMap<String, i64>, CalcError> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let mut sum = 0;
        let mut found = false;
        for c in &pod.containers {
            if container.is_some_and(|name| name != c.name) {
                continue;
            }
            found = true;
            sum += c.requests_milli.get(resource).copied().ok_or_else(|| {
                CalcError::MissingRequest {
                    resource: resource.to_owned(),
                    container: c.name.clone(),
                    pod: pod.name.clone(),
                }
            })?;
        }
        if let (Some(container), false) = (container, found) {
            return Err(CalcError::ContainerNotFound {
                container: container.to_owned(),
                pod: pod.name.clone(),
            });
        }
        out.insert(pod.name.clone(), sum);
    }
    Ok(out)
}

/// `Object` or `External` metrics with a `Value` target: `usage_milli` against `target_milli`,
/// scaled by the ready pods; from zero replicas, `ceil(ratio)` without tolerance.
pub fn value(
    spec_replicas: i32,
    usage_milli: i64,
    target_milli: i64,
    tolerances: Tolerances,
    pods: &[Pod],
) -> Result<Proposal, CalcError> {
    let ratio = usage_milli as f64 / target_milli as f64;
    let mut proposal = Proposal {
        replicas: spec_replicas,
        current: usage_milli,
        usage_ratio: ratio,
        ready_pods: 0,
        rebalanced_ratio: None,
        outcome: Outcome::WithinTolerance,
        pods: Vec::new(),
    };
    if spec_replicas == 0 {
        proposal.replicas = ceil_i32(ratio);
        proposal.outcome = Outcome::FromZero;
        return Ok(proposal);
    }
    if tolerances.within(ratio) {
        return Ok(proposal);
    }
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    proposal.ready_pods = pods.iter().filter(|p| p.is_running_and_ready()).count() as i64;
    proposal.replicas = ceil_i32(ratio * proposal.ready_pods as f64);
    proposal.outcome = Outcome::Scaled;
    Ok(proposal)
}

/// `Object` or `External` metrics with an `AverageValue` target: the total `usage_milli` per
/// current replica against `target_milli`; the proposal is `ceil(total / target)`. `current`
/// is the total divided by the replicas, rounded up.
pub fn average_of_total(
    status_replicas: i32,
    usage_milli: i64,
    target_milli: i64,
    tolerances: Tolerances,
) -> Proposal {
    let ratio = usage_milli as f64 / (target_milli as f64 * f64::from(status_replicas));
    let mut proposal = Proposal {
        replicas: status_replicas,
        current: (usage_milli as f64 / f64::from(status_replicas)).ceil() as i64,
        usage_ratio: ratio,
        ready_pods: i64::from(status_replicas),
        rebalanced_ratio: None,
        outcome: Outcome::WithinTolerance,
        pods: Vec::new(),
    };
    if !tolerances.within(ratio) {
        proposal.replicas = ceil_i32(usage_milli as f64 / target_milli as f64);
        proposal.outcome = Outcome::Scaled;
    }
    proposal
}

/// The sum of an external metric's values, saturating as the controller does.
pub fn external_total(values: &[i64]) -> i64 {
    values.iter().fold(0i64, |sum, v| sum.saturating_add(*v))
}

fn ceil_i32(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}
