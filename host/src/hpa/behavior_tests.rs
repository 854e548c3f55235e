//! Stabilization and rate limits against the controller's published cases (kubernetes
//! `pkg/controller/podautoscaler/horizontal_test.go`): each case keeps its Go name.

use super::behavior::{self, Behavior, History, Limit, Policy, PolicyKind, Rules, Select};

const NOW: i64 = 1_764_547_200_000;
const MINUTE: i64 = 60_000;

/// Go's `generateScalingRules(pods, podsPeriod, percent, percentPeriod, window)`.
fn rules(pods: i32, pods_period: i32, percent: i32, percent_period: i32, window: i32) -> Rules {
    let mut policies = Vec::new();
    if pods != 0 {
        policies.push(Policy {
            kind: PolicyKind::Pods,
            value: pods,
            period_secs: pods_period,
        });
    }
    if percent != 0 {
        policies.push(Policy {
            kind: PolicyKind::Percent,
            value: percent,
            period_secs: percent_period,
        });
    }
    Rules {
        stabilization_window_secs: window,
        select: Select::Max,
        policies,
        tolerance: None,
    }
}

/// Go's `generateEventsUniformDistribution(changes, period)`: each event in the middle of its
/// share of the last `period_secs`, oldest first.
fn events(changes: &[i32], period_secs: i64) -> Vec<(i64, i32)> {
    let segment = period_secs as f64 * 1000.0 / changes.len() as f64;
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ago = period_secs as f64 * 1000.0 - segment * (i + 1) as f64 + segment / 2.0;
            (NOW - ago as i64, *c)
        })
        .collect()
}

struct Case {
    name: &'static str,
    up_events: Vec<(i64, i32)>,
    down_events: Vec<(i64, i32)>,
    min: i32,
    max: i32,
    up: Option<Rules>,
    down: Option<Rules>,
    current: i32,
    desired: i32,
    expected: i32,
    limit: Limit,
}

fn case(name: &'static str, (min, max): (i32, i32), current: i32, desired: i32) -> Case {
    Case {
        name,
        up_events: Vec::new(),
        down_events: Vec::new(),
        min,
        max,
        up: None,
        down: None,
        current,
        desired,
        expected: desired,
        limit: Limit::DesiredWithinRange,
    }
}

impl Case {
    fn up(mut self, r: Rules) -> Case {
        self.up = Some(r);
        self
    }
    fn down(mut self, r: Rules) -> Case {
        self.down = Some(r);
        self
    }
    fn up_events(mut self, e: Vec<(i64, i32)>) -> Case {
        self.up_events = e;
        self
    }
    fn down_events(mut self, e: Vec<(i64, i32)>) -> Case {
        self.down_events = e;
        self
    }
    fn expect(mut self, replicas: i32, limit: Limit) -> Case {
        self.expected = replicas;
        self.limit = limit;
        self
    }
}

// TestScalingWithRules (convertDesiredReplicasWithBehaviorRate; rules left out get the API
// server's defaults).
#[test]
fn scaling_with_rules() {
    use Limit::*;
    let cases = [
        case("prenormalized desired replicas within range", (3, 8), 5, 7),
        case("prenormalized desired replicas < minReplicas", (2, 8), 3, 1).expect(2, TooFewReplicas),
        case("prenormalized desired replicas within range when minReplicas is 0", (0, 10), 1, 0),
        case("maxReplicas is the limit because maxReplicas < scaleUpLimit", (1, 10), 20, 1000)
            .expect(10, TooManyReplicas),
        case("desired replica count is more than the maximum replica count", (100, 150), 100, 1000)
            .expect(150, TooManyReplicas),
        case("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", (1, 2000), 3, 1000)
            .up(rules(0, 0, 1, 60, 0))
            .expect(4, ScaleUpLimit),
        case("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies", (3, 2000), 1000, 3)
            .down(rules(20, 60, 0, 0, 0))
            .expect(980, ScaleDownLimit),
        case("scaleUp with default behavior", (1, 1000), 10, 50).expect(20, ScaleUpLimit),
        case("scaleUp with pods policy larger than percent policy", (1, 1000), 10, 500)
            .up(rules(100, 60, 100, 60, 0))
            .expect(110, ScaleUpLimit),
        case("scaleUp with percent policy larger than pods policy", (1, 1000), 10, 500)
            .up(rules(2, 60, 100, 60, 0))
            .expect(20, ScaleUpLimit),
        case("scaleUp with spec MaxReplicas limitation with large pod policy", (1, 1000), 10, 50)
            .up(rules(100, 60, 0, 0, 0)),
        case("scaleUp with spec MaxReplicas limitation with large percent policy", (1, 1000), 10, 50)
            .up(rules(10000, 60, 0, 0, 0)),
        case("scaleUp with pod policy limitation", (1, 1000), 10, 50)
            .up(rules(30, 60, 0, 0, 0))
            .expect(40, ScaleUpLimit),
        case("scaleUp with percent policy limitation", (1, 1000), 10, 50)
            .up(rules(0, 0, 200, 60, 0))
            .expect(30, ScaleUpLimit),
        case("scaleDown with percent policy larger than pod policy", (1, 1000), 100, 2)
            .down(rules(20, 60, 1, 60, 300))
            .expect(80, ScaleDownLimit),
        case("scaleDown with pod policy larger than percent policy", (1, 1000), 100, 2)
            .down(rules(2, 60, 1, 60, 300))
            .expect(98, ScaleDownLimit),
        case("scaleDown with spec MinReplicas=nil limitation with large pod policy", (1, 1000), 10, 0)
            .down(rules(100, 60, 0, 0, 300))
            .expect(1, TooFewReplicas),
        case("scaleDown with spec MinReplicas limitation with large percent policy", (5, 1000), 10, 2)
            .down(rules(0, 0, 100, 60, 300))
            .expect(5, TooFewReplicas),
        case("scaleDown with pod policy limitation", (1, 1000), 10, 2)
            .down(rules(5, 60, 0, 0, 300))
            .expect(5, ScaleDownLimit),
        case("scaleDown with percent policy limitation", (1, 1000), 10, 5)
            .down(rules(0, 0, 50, 60, 300)),
        case("scaleUp with spec MaxReplicas limitation with large pod policy and events", (1, 200), 100, 500)
            .up_events(events(&[1, 5, 9], 120))
            .up(rules(300, 60, 0, 0, 0))
            .expect(200, TooManyReplicas),
        case("scaleUp with spec MaxReplicas limitation with large percent policy and events", (1, 200), 100, 500)
            .up_events(events(&[1, 5, 9], 120))
            .up(rules(0, 0, 10000, 60, 0))
            .expect(200, TooManyReplicas),
        case("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events", (1, 1000), 100, 500)
            .up_events(events(&[1, 5, 9], 120))
            .up(rules(5, 120, 0, 0, 0))
            .expect(100, ScaleUpLimit),
        case("scaleUp with pod policy and previous scale up events", (1, 1000), 100, 500)
            .up_events(events(&[1, 5, 9], 120))
            .up(rules(150, 120, 0, 0, 0))
            .expect(235, ScaleUpLimit),
        case("scaleUp with percent policy and previous scale up events", (1, 1000), 100, 500)
            .up_events(events(&[1, 5, 9], 120))
            .up(rules(0, 0, 200, 120, 0))
            .expect(255, ScaleUpLimit),
        case("scaleDown with default policy and previous events", (1, 1000), 10, 5)
            .down_events(events(&[1, 5, 9], 120)),
        case("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events", (1, 1000), 100, 0)
            .down_events(events(&[1, 5, 9], 120))
            .down(rules(115, 120, 0, 0, 300))
            .expect(1, TooFewReplicas),
        case("scaleDown with spec MinReplicas limitation with large pod policy and previous events", (5, 1000), 100, 0)
            .down_events(events(&[1, 5, 9], 120))
            .down(rules(130, 120, 0, 0, 300))
            .expect(5, TooFewReplicas),
        case("scaleDown with spec MinReplicas limitation with large percent policy and previous events", (5, 1000), 100, 2)
            .down_events(events(&[1, 5, 9], 120))
            .down(rules(0, 0, 100, 120, 300))
            .expect(5, TooFewReplicas),
        case("scaleDown with pod policy limitation and previous events", (1, 1000), 100, 2)
            .down_events(events(&[1, 5, 9], 120))
            .down(rules(5, 120, 0, 0, 300))
            .expect(100, ScaleDownLimit),
        case("scaleDown with percent policy limitation and previous events", (1, 1000), 100, 0)
            .down_events(events(&[2, 4, 6], 120))
            .down(rules(0, 0, 50, 120, 300))
            .expect(56, ScaleDownLimit),
        case("scaleDown with previous events preventing further scale down", (1, 1000), 100, 0)
            .down_events(events(&[10, 10, 10], 120))
            .down(rules(0, 0, 10, 120, 300))
            .expect(100, ScaleDownLimit),
        case("scaleDown with with previous events still allowing more scale down", (1, 1000), 10, 5)
            .down_events(events(&[10, 10, 10], 120))
            .down(rules(0, 0, 1000, 120, 300)),
        case("check 'outdated' flag for events for one behavior for up", (1, 1000), 100, 200)
            .up_events(events(&[8, 12, 9, 11], 120))
            .up(rules(1000, 60, 0, 0, 0)),
        case("check that events were marked 'outdated' for two different policies in the behavior for up", (1, 1000), 100, 200)
            .up_events(events(&[8, 12, 9, 11], 120))
            .up(rules(1000, 30, 100, 60, 0)),
        case("check that events were marked 'outdated' for two different policies in the behavior for down", (1, 1000), 100, 5)
            .down_events(events(&[8, 12, 9, 11], 120))
            .down(rules(1000, 30, 100, 60, 300)),
    ];
    for c in cases {
        let defaults = Behavior::defaults();
        let b = Behavior {
            up: c.up.clone().unwrap_or(defaults.up),
            down: c.down.clone().unwrap_or(defaults.down),
        };
        let history = History {
            recommendations: Vec::new(),
            scale_ups: c.up_events.clone(),
            scale_downs: c.down_events.clone(),
        };
        let n = behavior::normalize_with_behavior(
            c.current, c.desired, c.min, c.max, &b, &history, NOW,
        );
        assert_eq!((n.replicas, n.limit), (c.expected, c.limit), "{}", c.name);
    }
}

// TestConvertDesiredReplicasWithRules (no `behavior`).
#[test]
fn convert_desired_replicas_with_rules() {
    for (current, desired, min, max, expected, limit) in [
        (5, 7, 3, 8, 7, Limit::DesiredWithinRange),
        (3, 1, 2, 8, 2, Limit::TooFewReplicas),
        (1, 0, 0, 10, 0, Limit::DesiredWithinRange),
        (20, 1000, 1, 10, 10, Limit::TooManyReplicas),
        (3, 1000, 1, 2000, 6, Limit::ScaleUpLimit),
    ] {
        let n = behavior::normalize_default(
            current,
            desired,
            min,
            max,
            &History::default(),
            NOW,
            5 * MINUTE,
        );
        assert_eq!(
            (n.replicas, n.limit),
            (expected, limit),
            "{current} -> {desired}"
        );
    }
}

// TestNormalizeDesiredReplicas (the 5-minute recommendation window without `behavior`).
#[test]
fn normalize_desired_replicas() {
    for (name, recommendations, proposed, expected) in [
        ("empty log", vec![], 5, 5),
        (
            "stabilize",
            vec![(NOW - 2 * MINUTE, 4), (NOW - MINUTE, 5)],
            3,
            5,
        ),
        (
            "no stabilize",
            vec![(NOW - 2 * MINUTE, 1), (NOW - MINUTE, 2)],
            3,
            3,
        ),
        (
            "no stabilize - old recommendations",
            vec![(NOW - 10 * MINUTE, 10), (NOW - 9 * MINUTE, 9)],
            3,
            3,
        ),
        (
            "stabilize - old recommendations",
            vec![
                (NOW - 10 * MINUTE, 10),
                (NOW - MINUTE, 4),
                (NOW - 2 * MINUTE, 5),
                (NOW - 9 * MINUTE, 9),
            ],
            3,
            5,
        ),
    ] {
        let history = History {
            recommendations,
            ..History::default()
        };
        let n = behavior::normalize_default(3, proposed, 1, 100, &history, NOW, 5 * MINUTE);
        assert_eq!(n.stabilized, expected, "{name}");
    }
}

// TestCalculateScaleUpLimitWithScalingRules and TestCalculateScaleDownLimitWithBehaviors:
// selectPolicy Min picks the smaller change.
#[test]
fn scale_limits_with_select_min() {
    let mut min_rules = rules(2, 60, 50, 60, 300);
    min_rules.select = Select::Min;
    let b = Behavior {
        up: min_rules.clone(),
        down: min_rules,
    };
    let none = History::default();
    assert_eq!(
        behavior::normalize_with_behavior(1, 100, 1, 1000, &b, &none, NOW).replicas,
        2
    );
    assert_eq!(
        behavior::normalize_with_behavior(5, 0, 0, 1000, &b, &none, NOW).replicas,
        3
    );
}
