//! From the metrics' proposal to the replicas the controller sets (`horizontal.go`): the
//! stabilization window over past recommendations, then the scale limits — without
//! `spec.behavior` a 5-minute scale-down window and `max(2 × current, 4)` up; with it, the
//! policies and windows of `scaleUp` / `scaleDown` with the API server's defaults filled in.
//! History (past recommendations, past scale events) is an input: the controller keeps it in
//! memory, so a tool without it passes an empty one and says so.

use k8s_openapi::api::autoscaling::v2 as autoscaling;
use serde::Serialize;

use crate::api::quantity::Quantity;

/// The controller's default `--horizontal-pod-autoscaler-downscale-stabilization`: 300 s.
pub const DOWNSCALE_STABILIZATION_MS: i64 = 300_000;

/// A scaling policy's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PolicyKind {
    /// A number of pods per period.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One `HPAScalingPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Unit.
    pub kind: PolicyKind,
    /// Pods or percent.
    pub value: i32,
    /// The period the change is allowed over, seconds.
    pub period_secs: i32,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Select {
    /// The policy allowing the largest change (default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One direction's rules, defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rules {
    /// Stabilization window, seconds.
    pub stabilization_window_secs: i32,
    /// `selectPolicy`.
    pub select: Select,
    /// Policies.
    pub policies: Vec<Policy>,
    /// `tolerance`, when set (else the controller's).
    pub tolerance: Option<f64>,
}

/// `spec.behavior` with the API server's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behavior {
    /// `scaleUp`.
    pub up: Rules,
    /// `scaleDown`.
    pub down: Rules,
}

/// A malformed `spec.behavior`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BehaviorError {
    /// `selectPolicy` is not Max, Min or Disabled.
    #[error("spec.behavior.{direction}.selectPolicy: {value:?} is not Max, Min or Disabled")]
    SelectPolicy {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
        /// The value.
        value: String,
    },
    /// A policy `type` is not Pods or Percent.
    #[error("spec.behavior.{direction}.policies[{index}].type: {value:?} is not Pods or Percent")]
    PolicyType {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
        /// Position.
        index: usize,
        /// The value.
        value: String,
    },
    /// `tolerance` is not a quantity.
    #[error("spec.behavior.{direction}.tolerance: {value:?} is not a quantity")]
    Tolerance {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
        /// The value.
        value: String,
    },
}

impl Behavior {
    /// The defaults of an empty `behavior: {}`: up — no window, 4 pods or 100 % per 15 s,
    /// whichever is more; down — the controller's 300 s window, 100 % per 15 s.
    pub fn defaults() -> Behavior {
        Behavior {
            up: Rules {
                stabilization_window_secs: 0,
                select: Select::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_secs: 15,
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_secs: 15,
                    },
                ],
                tolerance: None,
            },
            down: Rules {
                stabilization_window_secs: (DOWNSCALE_STABILIZATION_MS / 1000) as i32,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_secs: 15,
                }],
                tolerance: None,
            },
        }
    }

    /// `spec.behavior` with defaults for every field left out.
    pub fn from_spec(
        spec: &autoscaling::HorizontalPodAutoscalerBehavior,
    ) -> Result<Behavior, BehaviorError> {
        let defaults = Behavior::defaults();
        Ok(Behavior {
            up: rules("scaleUp", spec.scale_up.as_ref(), defaults.up)?,
            down: rules("scaleDown", spec.scale_down.as_ref(), defaults.down)?,
        })
    }
}

fn rules(
    direction: &'static str,
    spec: Option<&autoscaling::HPAScalingRules>,
    default: Rules,
) -> Result<Rules, BehaviorError> {
    let Some(spec) = spec else {
        return Ok(default);
    };
    let select = match spec.select_policy.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => {
            return Err(BehaviorError::SelectPolicy {
                direction,
                value: other.to_owned(),
            });
        }
    };
    let policies = match &spec.policies {
        None => default.policies,
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => {
                        return Err(BehaviorError::PolicyType {
                            direction,
                            index,
                            value: other.to_owned(),
                        });
                    }
                };
                Ok(Policy {
                    kind,
                    value: p.value,
                    period_secs: p.period_seconds,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let tolerance = spec
        .tolerance
        .as_ref()
        .map(|q| {
            q.0.parse::<Quantity>()
                .map(|q| q.as_f64())
                .map_err(|_| BehaviorError::Tolerance {
                    direction,
                    value: q.0.clone(),
                })
        })
        .transpose()?;
    Ok(Rules {
        stabilization_window_secs: spec
            .stabilization_window_seconds
            .unwrap_or(default.stabilization_window_secs),
        select,
        policies,
        tolerance,
    })
}

/// What the controller remembers of an HPA.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Past (unstabilized) recommendations: (ms since the epoch, replicas).
    pub recommendations: Vec<(i64, i32)>,
    /// Past scale-ups: (ms, pods added).
    pub scale_ups: Vec<(i64, i32)>,
    /// Past scale-downs: (ms, pods removed).
    pub scale_downs: Vec<(i64, i32)>,
}

/// The limit that shaped the result, named as in the `ScalingLimited` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Limit {
    /// Nothing limited the result.
    DesiredWithinRange,
    /// Capped by `maxReplicas`.
    TooManyReplicas,
    /// Raised to `minReplicas`.
    TooFewReplicas,
    /// Capped by the scale-up rate.
    ScaleUpLimit,
    /// Raised by the scale-down rate.
    ScaleDownLimit,
}

impl Limit {
    /// The controller's message for it.
    pub fn message(self) -> &'static str {
        match self {
            Limit::DesiredWithinRange => "the desired count is within the acceptable range",
            Limit::TooManyReplicas => {
                "the desired replica count is more than the maximum replica count"
            }
            Limit::TooFewReplicas => {
                "the desired replica count is less than the minimum replica count"
            }
            Limit::ScaleUpLimit => {
                "the desired replica count is increasing faster than the maximum scale rate"
            }
            Limit::ScaleDownLimit => {
                "the desired replica count is decreasing faster than the maximum scale rate"
            }
        }
    }
}

/// The normalized result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Normalized {
    /// After stabilization.
    pub stabilized: i32,
    /// After the limits: what the controller sets.
    pub replicas: i32,
    /// The limit that applied.
    pub limit: Limit,
    /// The bounds the rate limits allowed: (lowest, highest).
    pub allowed: (i32, i32),
}

/// Without `spec.behavior`: the highest recommendation of the last `window_ms` (this one
/// included), then `[min, min(max, max(2 × current, 4))]`.
pub fn normalize_default(
    current: i32,
    proposed: i32,
    min: i32,
    max: i32,
    history: &History,
    now_ms: i64,
    window_ms: i64,
) -> Normalized {
    let cutoff = now_ms - window_ms;
    let stabilized = history
        .recommendations
        .iter()
        .filter(|(at, _)| *at >= cutoff)
        .map(|(_, r)| *r)
        .fold(proposed, i32::max);
    let scale_up_limit = (2.0 * f64::from(current)).max(4.0) as i32;
    let (highest, up_limit) = if max > scale_up_limit {
        (scale_up_limit, Limit::ScaleUpLimit)
    } else {
        (max, Limit::TooManyReplicas)
    };
    let (replicas, limit) = if stabilized < min {
        (min, Limit::TooFewReplicas)
    } else if stabilized > highest {
        (highest, up_limit)
    } else {
        (stabilized, Limit::DesiredWithinRange)
    };
    Normalized {
        stabilized,
        replicas,
        limit,
        allowed: (min, highest),
    }
}

/// With `spec.behavior`: stabilization within both windows, then the policies' rate limits
/// and `[min, max]`.
pub fn normalize_with_behavior(
    current: i32,
    proposed: i32,
    min: i32,
    max: i32,
    behavior: &Behavior,
    history: &History,
    now_ms: i64,
) -> Normalized {
    let up_cutoff = now_ms - i64::from(behavior.up.stabilization_window_secs) * 1000;
    let down_cutoff = now_ms - i64::from(behavior.down.stabilization_window_secs) * 1000;
    let (mut up, mut down) = (proposed, proposed);
    for (at, r) in &history.recommendations {
        if *at > up_cutoff {
            up = up.min(*r);
        }
        if *at > down_cutoff {
            down = down.max(*r);
        }
    }
    let stabilized = current.max(up).min(down);
    let mut result = Normalized {
        stabilized,
        replicas: stabilized,
        limit: Limit::DesiredWithinRange,
        allowed: (min, max),
    };
    if stabilized > current {
        let limit = scale_up_limit(current, history, &behavior.up, now_ms).max(current);
        let (highest, reason) = if max > limit {
            (limit, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        result.allowed = (min, highest);
        if stabilized > highest {
            result.replicas = highest;
            result.limit = reason;
        }
    } else if stabilized < current {
        let limit = scale_down_limit(current, history, &behavior.down, now_ms).min(current);
        let (lowest, reason) = if min < limit {
            (limit, Limit::ScaleDownLimit)
        } else {
            (min, Limit::TooFewReplicas)
        };
        result.allowed = (lowest, max);
        if stabilized < lowest {
            result.replicas = lowest;
            result.limit = reason;
        }
    }
    result
}

/// Pods changed within the last `period_secs`.
fn changed_within(events: &[(i64, i32)], period_secs: i32, now_ms: i64) -> i32 {
    let cutoff = now_ms - i64::from(period_secs) * 1000;
    events
        .iter()
        .filter(|(at, _)| *at > cutoff)
        .map(|(_, n)| *n)
        .sum()
}

fn period_start(current: i32, history: &History, policy: &Policy, now_ms: i64) -> i32 {
    current - changed_within(&history.scale_ups, policy.period_secs, now_ms)
        + changed_within(&history.scale_downs, policy.period_secs, now_ms)
}

fn scale_up_limit(current: i32, history: &History, rules: &Rules, now_ms: i64) -> i32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(current, history, p, now_ms);
        match p.kind {
            PolicyKind::Pods => start + p.value,
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        }
    });
    match rules.select {
        Select::Disabled => current,
        Select::Min => proposals.min().unwrap_or(i32::MAX),
        Select::Max => proposals.max().unwrap_or(i32::MIN),
    }
}

fn scale_down_limit(current: i32, history: &History, rules: &Rules, now_ms: i64) -> i32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(current, history, p, now_ms);
        match p.kind {
            PolicyKind::Pods => start - p.value,
            PolicyKind::Percent => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        }
    });
    match rules.select {
        Select::Disabled => current,
        // The smallest change down is the highest count.
        Select::Min => proposals.max().unwrap_or(i32::MIN),
        Select::Max => proposals.min().unwrap_or(i32::MAX),
    }
}
