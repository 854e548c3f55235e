//! The controller's published cases (kubernetes `pkg/controller/podautoscaler/
//! replica_calculator_test.go`), each reproduced with the same inputs and expectations, plus
//! the stabilization and rate-limit rules of `horizontal.go`.
//!
//! The Go harness builds each pod with two containers (`container1`, `container2`), each
//! requesting the case's request; resource levels are per container; metric samples carry
//! Go's zero time and a 1-minute window; pods start at the zero time unless "hot" (now) or
//! "cool" (3 minutes ago); the testing readiness periods are 2 minutes and 10 seconds.

use std::collections::BTreeMap;

use super::behavior::{self, Behavior, History, Limit, Policy, PolicyKind, Select};
use super::decision::{self, Decision, DecisionInput};
use super::pods::{ContainerRequests, Phase, Pod, PodMetric, Readiness, ReadyCondition};
use super::replicas::{self, CalcError, Outcome, PodInputs, Proposal, Tolerances};

/// Go's zero `time.Time` in ms since the Unix epoch.
const ZERO: i64 = -62_135_596_800_000;
const NOW: i64 = 1_764_547_200_000;
const HOT: i64 = NOW;
const COOL: i64 = NOW - 3 * 60 * 1000;
const TESTING: Readiness = Readiness {
    cpu_initialization_period_ms: 2 * 60 * 1000,
    initial_readiness_delay_ms: 10 * 1000,
};

/// One Go `replicaCalcTestCase`.
#[derive(Default)]
struct Case {
    current: i32,
    ready: Vec<bool>,
    start: Vec<i64>,
    phase: Vec<Phase>,
    deleted: Vec<bool>,
    /// Requests per pod (milli); pods beyond the list have none.
    requests: Vec<i64>,
    /// Per pod, per container (milli).
    levels: Vec<Vec<i64>>,
    pod_names: Vec<String>,
    container: Option<&'static str>,
}

fn pod_name(i: usize) -> String {
    format!("test-pod-{i}")
}

impl Case {
    fn pod_count(&self) -> usize {
        (self.current as usize).max(self.phase.len())
    }

    fn pods(&self, resource: &str) -> Vec<Pod> {
        (0..self.pod_count())
            .map(|i| Pod {
                name: pod_name(i),
                phase: self.phase.get(i).copied().unwrap_or(Phase::Running),
                deleted: self.deleted.get(i).copied().unwrap_or(false),
                ready: Some(ReadyCondition {
                    ready: self.ready.get(i).copied().unwrap_or(true),
                    last_transition_ms: ZERO,
                }),
                start_ms: Some(self.start.get(i).copied().unwrap_or(ZERO)),
                containers: ["container1", "container2"]
                    .iter()
                    .map(|c| ContainerRequests {
                        name: (*c).into(),
                        requests_milli: self
                            .requests
                            .get(i)
                            .map(|r| BTreeMap::from([(resource.to_owned(), *r)]))
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// What the resource metrics client makes of the listed pod metrics: a pod's containers
    /// summed, or only the named container (a pod without it is left out).
    fn resource_metrics(&self) -> BTreeMap<String, PodMetric> {
        self.levels
            .iter()
            .enumerate()
            .filter_map(|(i, levels)| {
                let name = self
                    .pod_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| pod_name(i));
                let value = match self.container {
                    None => levels.iter().sum(),
                    Some(c) => {
                        let index = if c == "container1" { 0 } else { 1 };
                        *levels.get(index)?
                    }
                };
                Some((name, sample(value)))
            })
            .collect()
    }

    fn utilization(&self, target: i32) -> Result<Proposal, CalcError> {
        let pods = self.pods("cpu");
        let metrics = self.resource_metrics();
        replicas::utilization(
            self.current,
            target,
            "cpu",
            self.container,
            inputs(&pods, &metrics),
        )
    }

    /// A `Pods` metric: one value per pod in order.
    fn pods_metric(&self, values: &[i64], target: i64) -> Proposal {
        let pods = self.pods("");
        let metrics = values
            .iter()
            .enumerate()
            .map(|(i, v)| (pod_name(i), sample(*v)))
            .collect();
        replicas::average_value(self.current, target, false, inputs(&pods, &metrics)).unwrap()
    }

    fn value(&self, usage: i64, target: i64) -> Proposal {
        replicas::value(
            self.current,
            usage,
            target,
            Tolerances::default(),
            &self.pods(""),
        )
        .unwrap()
    }
}

fn sample(value_milli: i64) -> PodMetric {
    PodMetric {
        value_milli,
        timestamp_ms: ZERO,
        window_ms: 60_000,
    }
}

fn inputs<'a>(pods: &'a [Pod], metrics: &'a BTreeMap<String, PodMetric>) -> PodInputs<'a> {
    PodInputs {
        pods,
        metrics,
        now_ms: NOW,
        readiness: TESTING,
        tolerances: Tolerances::default(),
    }
}

fn same(level: &[i64]) -> Vec<Vec<i64>> {
    level.iter().map(|l| vec![*l, *l]).collect()
}

fn assert_proposal(p: &Proposal, replicas: i32, current: i64) {
    assert_eq!((p.replicas, p.current), (replicas, current), "{p:#?}");
}

// TestReplicaCalcScaleUp
#[test]
fn scale_up() {
    let c = Case {
        current: 3,
        requests: vec![1000; 3],
        levels: same(&[300, 500, 700]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(30).unwrap(), 5, 50);
}

// TestReplicaCalcContainerScaleUp
#[test]
fn container_scale_up() {
    let c = Case {
        current: 3,
        requests: vec![1000; 3],
        levels: vec![vec![1000, 300], vec![1000, 500], vec![1000, 700]],
        container: Some("container2"),
        ..Case::default()
    };
    assert_proposal(&c.utilization(30).unwrap(), 5, 50);
}

// TestReplicaCalcScaleUpUnreadyLessScale
#[test]
fn scale_up_unready_less_scale() {
    let c = Case {
        current: 3,
        ready: vec![false, true, true],
        requests: vec![1000; 3],
        levels: same(&[300, 500, 700]),
        ..Case::default()
    };
    let p = c.utilization(30).unwrap();
    assert_proposal(&p, 4, 60);
    assert_eq!(p.pods[0].group, super::pods::Group::NeverReady);
    assert_eq!(p.pods[0].assumed_milli, Some(0));
    assert_eq!(p.outcome, Outcome::Rebalanced);
}

// TestReplicaCalcScaleUpHotCpuLessScale
#[test]
fn scale_up_hot_cpu_less_scale() {
    let c = Case {
        current: 3,
        start: vec![HOT, COOL, COOL],
        requests: vec![1000; 3],
        levels: same(&[300, 500, 700]),
        ..Case::default()
    };
    let p = c.utilization(30).unwrap();
    assert_proposal(&p, 4, 60);
    assert_eq!(p.pods[0].group, super::pods::Group::SampleBeforeReady);
}

// TestReplicaCalcScaleUpUnreadyNoScale
#[test]
fn scale_up_unready_no_scale() {
    let c = Case {
        current: 3,
        ready: vec![true, false, false],
        requests: vec![1000; 3],
        levels: same(&[400, 500, 700]),
        ..Case::default()
    };
    let p = c.utilization(30).unwrap();
    assert_proposal(&p, 3, 40);
    // Counting the two unready pods at 0 turns 40 % into 26 %: a scale-down, so no change.
    assert_eq!(p.outcome, Outcome::DirectionReversed);
}

// TestReplicaCalcScaleHotCpuNoScale
#[test]
fn scale_hot_cpu_no_scale() {
    let c = Case {
        current: 3,
        ready: vec![true, false, false],
        start: vec![COOL, HOT, HOT],
        requests: vec![1000; 3],
        levels: same(&[400, 500, 700]),
        ..Case::default()
    };
    let p = c.utilization(30).unwrap();
    assert_proposal(&p, 3, 40);
    assert_eq!(p.pods[1].group, super::pods::Group::NotReadyInitializing);
}

// TestReplicaCalcScaleUpIgnoresFailedPods
#[test]
fn scale_up_ignores_failed_pods() {
    let c = Case {
        current: 2,
        ready: vec![true, true, false, false],
        phase: vec![Phase::Running, Phase::Running, Phase::Failed, Phase::Failed],
        requests: vec![1000; 4],
        levels: same(&[500, 700]),
        ..Case::default()
    };
    let p = c.utilization(30).unwrap();
    assert_proposal(&p, 4, 60);
    assert_eq!(p.pods[2].group, super::pods::Group::Failed);
}

// TestReplicaCalcScaleUpIgnoresDeletionPods
#[test]
fn scale_up_ignores_deletion_pods() {
    let c = Case {
        current: 2,
        ready: vec![true, true, false, false],
        phase: vec![Phase::Running; 4],
        deleted: vec![false, false, true, true],
        requests: vec![1000; 4],
        levels: same(&[500, 700]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(30).unwrap(), 4, 60);
}

// TestReplicaCalcScaleUpCM
#[test]
fn scale_up_cm() {
    let c = Case {
        current: 3,
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[20000, 10000, 30000], 15000), 4, 20000);
}

// TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale
#[test]
fn scale_up_cm_unready_hot_cpu_no_less_scale() {
    let c = Case {
        current: 3,
        ready: vec![true, true, false],
        start: vec![COOL, COOL, HOT],
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[50000, 10000, 30000], 15000), 6, 30000);
}

// TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown
#[test]
fn scale_up_cm_unready_hot_cpu_scale_would_scale_down() {
    let c = Case {
        current: 3,
        ready: vec![false, true, false],
        start: vec![HOT, COOL, HOT],
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[50000, 15000, 30000], 15000), 7, 31666);
}

// TestReplicaCalcScaleUpCMObject
#[test]
fn scale_up_cm_object() {
    let c = Case {
        current: 3,
        ..Case::default()
    };
    assert_proposal(&c.value(20000, 15000), 4, 20000);
}

// TestReplicaCalcScaleUpCMPerPodObject
#[test]
fn scale_up_cm_per_pod_object() {
    let p = replicas::average_of_total(3, 20000, 5000, Tolerances::default());
    assert_proposal(&p, 4, 6667);
}

// TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods
#[test]
fn scale_up_cm_object_ignores_unready_pods() {
    let c = Case {
        current: 3,
        ready: vec![false, true, false],
        ..Case::default()
    };
    let p = c.value(50000, 10000);
    assert_proposal(&p, 5, 50000);
    assert_eq!(p.ready_pods, 1);
}

// TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods
#[test]
fn scale_up_cm_external_ignores_unready_pods() {
    let c = Case {
        current: 3,
        ready: vec![false, true, false],
        ..Case::default()
    };
    let total = replicas::external_total(&[8600]);
    assert_proposal(&c.value(total, 4400), 2, 8600);
}

// TestReplicaCalcScaleUpPerPodCMExternal
#[test]
fn scale_up_per_pod_cm_external() {
    let p = replicas::average_of_total(
        3,
        replicas::external_total(&[8600]),
        2150,
        Tolerances::default(),
    );
    assert_proposal(&p, 4, 2867);
}

// TestReplicaCalcScaleDown
#[test]
fn scale_down() {
    let c = Case {
        current: 5,
        requests: vec![1000; 5],
        levels: same(&[100, 300, 500, 250, 250]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(50).unwrap(), 3, 28);
}

// TestReplicaCalcScaleDownCM
#[test]
fn scale_down_cm() {
    let c = Case {
        current: 5,
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[12000; 5], 20000), 3, 12000);
}

// TestReplicaCalcScaleDownPerPodCMObject
#[test]
fn scale_down_per_pod_cm_object() {
    let p = replicas::average_of_total(5, 6000, 2000, Tolerances::default());
    assert_proposal(&p, 3, 1200);
}

// TestReplicaCalcScaleDownCMObject
#[test]
fn scale_down_cm_object() {
    let c = Case {
        current: 5,
        ..Case::default()
    };
    assert_proposal(&c.value(12000, 20000), 3, 12000);
}

// TestReplicaCalcScaleDownCMExternal
#[test]
fn scale_down_cm_external() {
    let c = Case {
        current: 5,
        ..Case::default()
    };
    assert_proposal(&c.value(8600, 14334), 3, 8600);
}

// TestReplicaCalcScaleDownPerPodCMExternal
#[test]
fn scale_down_per_pod_cm_external() {
    let p = replicas::average_of_total(5, 8600, 2867, Tolerances::default());
    assert_proposal(&p, 3, 1720);
}

// TestReplicaCalcScaleDownExcludeUnreadyPods
#[test]
fn scale_down_exclude_unready_pods() {
    let c = Case {
        current: 5,
        ready: vec![true, true, true, false, false],
        requests: vec![1000; 5],
        levels: same(&[100, 300, 500, 250, 250]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(50).unwrap(), 2, 30);
}

// TestReplicaCalcScaleDownExcludeUnscheduledPods
#[test]
fn scale_down_exclude_unscheduled_pods() {
    let c = Case {
        current: 5,
        ready: vec![true, false, false, false, false],
        phase: vec![
            Phase::Running,
            Phase::Pending,
            Phase::Pending,
            Phase::Pending,
            Phase::Pending,
        ],
        requests: vec![1000; 5],
        levels: same(&[100]),
        ..Case::default()
    };
    let p = c.utilization(50).unwrap();
    assert_proposal(&p, 1, 10);
    assert_eq!(p.pods[1].group, super::pods::Group::Pending);
}

// TestReplicaCalcScaleDownIgnoreHotCpuPods
#[test]
fn scale_down_ignore_hot_cpu_pods() {
    let c = Case {
        current: 5,
        start: vec![COOL, COOL, COOL, HOT, HOT],
        requests: vec![1000; 5],
        levels: same(&[100, 300, 500, 250, 250]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(50).unwrap(), 2, 30);
}

// TestReplicaCalcScaleDownIgnoresFailedPods
#[test]
fn scale_down_ignores_failed_pods() {
    let mut phase = vec![Phase::Running; 5];
    phase.extend([Phase::Failed, Phase::Failed]);
    let c = Case {
        current: 5,
        ready: vec![true, true, true, true, true, false, false],
        phase,
        requests: vec![1000; 7],
        levels: same(&[100, 300, 500, 250, 250]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(50).unwrap(), 3, 28);
}

// TestReplicaCalcTolerance
#[test]
fn tolerance() {
    let c = Case {
        current: 3,
        requests: vec![900, 1000, 1100],
        levels: same(&[1010, 1030, 1020]),
        ..Case::default()
    };
    let p = c.utilization(100).unwrap();
    assert_proposal(&p, 3, 102);
    assert_eq!(p.outcome, Outcome::WithinTolerance);
}

// TestReplicaCalcToleranceCM
#[test]
fn tolerance_cm() {
    let c = Case {
        current: 3,
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[20000, 21000, 21000], 20000), 3, 20666);
}

// TestReplicaCalcToleranceCMObject
#[test]
fn tolerance_cm_object() {
    let c = Case {
        current: 3,
        ..Case::default()
    };
    assert_proposal(&c.value(20666, 20000), 3, 20666);
}

// TestReplicaCalcTolerancePerPodCMObject
#[test]
fn tolerance_per_pod_cm_object() {
    let p = replicas::average_of_total(4, 20166, 5000, Tolerances::default());
    assert_proposal(&p, 4, 5042);
}

// TestReplicaCalcToleranceCMExternal
#[test]
fn tolerance_cm_external() {
    let c = Case {
        current: 3,
        ..Case::default()
    };
    assert_proposal(&c.value(8600, 8888), 3, 8600);
}

// TestReplicaCalcTolerancePerPodCMExternal
#[test]
fn tolerance_per_pod_cm_external() {
    let p = replicas::average_of_total(3, 8600, 2900, Tolerances::default());
    assert_proposal(&p, 3, 2867);
}

// TestReplicaCalcSuperfluousMetrics
#[test]
fn superfluous_metrics() {
    let c = Case {
        current: 4,
        requests: vec![1000; 4],
        levels: same(&[4000, 9500, 3000, 7000, 3200, 2000]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(100).unwrap(), 24, 587);
}

// TestReplicaCalcMissingMetrics
#[test]
fn missing_metrics_scale_down() {
    let c = Case {
        current: 4,
        requests: vec![1000; 4],
        levels: same(&[400, 95]),
        ..Case::default()
    };
    let p = c.utilization(100).unwrap();
    assert_proposal(&p, 3, 24);
    // Missing pods count at their full request on a scale-down.
    assert_eq!(p.pods[2].assumed_milli, Some(2000));
}

// TestReplicaCalcMissingMetricsNoChangeGt
#[test]
fn missing_metrics_no_change_gt() {
    let c = Case {
        current: 2,
        requests: vec![1000; 2],
        levels: same(&[1900]),
        ..Case::default()
    };
    let p = c.utilization(100).unwrap();
    assert_proposal(&p, 2, 190);
    // On a scale-up a missing pod counts as 0, which brings the ratio back within tolerance.
    assert_eq!(p.pods[1].assumed_milli, Some(0));
    assert_eq!(p.outcome, Outcome::RebalancedWithinTolerance);
}

// TestReplicaCalcMissingMetricsNoChangeLt
#[test]
fn missing_metrics_no_change_lt() {
    let c = Case {
        current: 2,
        requests: vec![1000; 2],
        levels: same(&[600]),
        ..Case::default()
    };
    assert_proposal(&c.utilization(100).unwrap(), 2, 60);
}

// TestReplicaCalcMissingMetricsUnreadyChange
#[test]
fn missing_metrics_unready_change() {
    let c = Case {
        current: 3,
        ready: vec![false, true, true],
        requests: vec![1000; 3],
        levels: same(&[100, 450]),
        ..Case::default()
    };
    let p = c.utilization(50).unwrap();
    assert_proposal(&p, 3, 45);
    assert_eq!(p.outcome, Outcome::DirectionReversed);
}

// TestPlainMetricReplicaCalcMissingMetricsNoChangeEq
#[test]
fn plain_metric_missing_metrics_no_change_eq() {
    let c = Case {
        current: 5,
        ..Case::default()
    };
    assert_proposal(&c.pods_metric(&[20000, 19000, 21000], 20000), 5, 20000);
}

// TestReplicaCalcEmptyCPURequest
#[test]
fn empty_cpu_request() {
    let c = Case {
        current: 1,
        levels: same(&[200]),
        ..Case::default()
    };
    let err = c.utilization(100).unwrap_err();
    assert!(err.to_string().contains("missing request for"), "{err}");
}

// TestReplicaCalcDisjointResourcesMetrics
#[test]
fn disjoint_resources_metrics() {
    let c = Case {
        current: 1,
        requests: vec![1000],
        levels: same(&[100]),
        pod_names: vec!["an-older-pod-name".into()],
        ..Case::default()
    };
    assert_eq!(
        c.utilization(100).unwrap_err(),
        CalcError::NoMatchingRequests
    );
}

// Missing pods on a scale-down count at the target when it is above 100 % (the fallback is
// max(100, target) percent of the request).
#[test]
fn missing_pods_count_at_target_above_100_percent() {
    let c = Case {
        current: 4,
        requests: vec![1000; 4],
        levels: same(&[400, 95]),
        ..Case::default()
    };
    let p = c.utilization(150).unwrap();
    assert_eq!(p.pods[2].assumed_milli, Some(3000));
}

// Asymmetric tolerances (`spec.behavior.scaleUp.tolerance`): the edges are inclusive.
#[test]
fn tolerance_edges_are_inclusive_per_direction() {
    let t = Tolerances {
        down: 0.1,
        up: 0.05,
    };
    assert!(t.within(0.9) && t.within(1.05));
    assert!(!t.within(0.899) && !t.within(1.051));
}

fn default_input(current: i32, history: &History) -> DecisionInput<'_> {
    DecisionInput {
        current,
        min: 1,
        max: 100,
        behavior: None,
        history,
        now_ms: NOW,
        downscale_window_ms: behavior::DOWNSCALE_STABILIZATION_MS,
    }
}

// Several metrics: the highest proposal wins.
#[test]
fn highest_proposal_wins() {
    let history = History::default();
    match decision::decide(&default_input(3, &history), &[Some(2), Some(6), Some(4)]) {
        Decision::Scale {
            proposal, metric, ..
        } => assert_eq!((proposal, metric), (6, 1)),
        other => panic!("{other:?}"),
    }
}

// A failed metric blocks a scale-down but not a scale-up.
#[test]
fn partial_failure_blocks_scale_down_only() {
    let history = History::default();
    let input = default_input(5, &history);
    assert!(matches!(
        decision::decide(&input, &[Some(3), None]),
        Decision::Hold {
            failed: 1,
            total: 2,
            ..
        }
    ));
    assert_eq!(
        decision::decide(&input, &[Some(7), None]).replicas(),
        Some(7)
    );
    assert!(matches!(
        decision::decide(&input, &[None, None]),
        Decision::Hold { failed: 2, .. }
    ));
}

// Without behavior: the highest recommendation of the last 5 minutes, and at most
// max(2 × current, 4).
#[test]
fn default_behavior_stabilizes_down_and_limits_up() {
    let history = History {
        recommendations: vec![(NOW - 60_000, 8), (NOW - 400_000, 20)],
        ..History::default()
    };
    let n = behavior::normalize_default(10, 4, 1, 100, &history, NOW, 300_000);
    assert_eq!(
        (n.stabilized, n.replicas, n.limit),
        (8, 8, Limit::DesiredWithinRange)
    );
    let n = behavior::normalize_default(3, 20, 1, 100, &History::default(), NOW, 300_000);
    assert_eq!((n.replicas, n.limit), (6, Limit::ScaleUpLimit));
    let n = behavior::normalize_default(1, 20, 1, 100, &History::default(), NOW, 300_000);
    assert_eq!(n.replicas, 4);
    let n = behavior::normalize_default(3, 20, 1, 5, &History::default(), NOW, 300_000);
    assert_eq!((n.replicas, n.limit), (5, Limit::TooManyReplicas));
    let n = behavior::normalize_default(3, 0, 2, 5, &History::default(), NOW, 300_000);
    assert_eq!((n.replicas, n.limit), (2, Limit::TooFewReplicas));
}

// `behavior: {}`: scale up by max(4 pods, 100 %) per 15 s, scale down within 300 s of history.
#[test]
fn behavior_defaults_limit_scale_up_by_policies() {
    let b = Behavior::defaults();
    let none = History::default();
    let n = behavior::normalize_with_behavior(10, 50, 1, 100, &b, &none, NOW);
    assert_eq!((n.replicas, n.limit), (20, Limit::ScaleUpLimit));
    let n = behavior::normalize_with_behavior(2, 50, 1, 100, &b, &none, NOW);
    assert_eq!(n.replicas, 6);
    // Pods added within the period count against it.
    let added = History {
        scale_ups: vec![(NOW - 5_000, 5)],
        ..History::default()
    };
    let n = behavior::normalize_with_behavior(10, 50, 1, 100, &b, &added, NOW);
    assert_eq!(n.replicas, 10);
    let recent = History {
        recommendations: vec![(NOW - 100_000, 9)],
        ..History::default()
    };
    let n = behavior::normalize_with_behavior(10, 3, 1, 100, &b, &recent, NOW);
    assert_eq!((n.stabilized, n.replicas), (9, 9));
}

// Scale-down policies with selectPolicy Min, and Disabled.
#[test]
fn scale_down_policies_select_min_and_disabled() {
    let mut b = Behavior::defaults();
    b.down.stabilization_window_secs = 0;
    b.down.select = Select::Min;
    b.down.policies = vec![
        Policy {
            kind: PolicyKind::Pods,
            value: 2,
            period_secs: 60,
        },
        Policy {
            kind: PolicyKind::Percent,
            value: 50,
            period_secs: 60,
        },
    ];
    let none = History::default();
    let n = behavior::normalize_with_behavior(10, 1, 1, 100, &b, &none, NOW);
    assert_eq!((n.replicas, n.limit), (8, Limit::ScaleDownLimit));
    b.down.select = Select::Max;
    let n = behavior::normalize_with_behavior(10, 1, 1, 100, &b, &none, NOW);
    assert_eq!(n.replicas, 5);
    b.down.select = Select::Disabled;
    let n = behavior::normalize_with_behavior(10, 1, 1, 100, &b, &none, NOW);
    assert_eq!(n.replicas, 10);
}

// The replica-count guards come before the metrics.
#[test]
fn guards_before_metrics() {
    let history = History::default();
    let mut input = default_input(0, &history);
    assert_eq!(
        decision::decide(&input, &[Some(5)]),
        Decision::ScalingDisabled
    );
    input.current = 150;
    assert_eq!(decision::decide(&input, &[Some(5)]).replicas(), Some(100));
}

// The HPA reader: precedence of targets and errors naming the field.
#[test]
fn spec_reads_targets_and_names_bad_fields() {
    let hpa = super::spec::parse_hpa(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 10\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}\n  - type: External\n    external:\n      metric: {name: queue, selector: {matchLabels: {q: a}}}\n      target: {type: AverageValue, averageValue: 500m}\n  - type: Pods\n    pods:\n      metric: {name: rps}\n      target: {type: AverageValue, averageValue: nope}\n",
    )
    .unwrap();
    let err = super::spec::metrics(hpa.spec.as_ref().unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.metrics[2].pods.target.averageValue: \"nope\""),
        "{err}"
    );
    let err = super::spec::parse_hpa("apiVersion: v1\nkind: Pod\n").unwrap_err();
    assert!(err.to_string().contains("found v1 Pod"), "{err}");
}
