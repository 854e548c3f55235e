//! The whole HPA's decision (`reconcileAutoscaler` and `computeReplicasForMetrics`): the
//! replica-count guards, the highest proposal of the valid metrics, the hold when metrics
//! failed and the rest would scale down, then stabilization and limits.

use serde::Serialize;

use super::behavior::{self, Behavior, History, Normalized};

/// What the decision reads besides the proposals.
#[derive(Debug, Clone)]
pub struct DecisionInput<'a> {
    /// The target's `spec.replicas`.
    pub current: i32,
    /// `minReplicas` (default 1).
    pub min: i32,
    /// `maxReplicas`.
    pub max: i32,
    /// `spec.behavior` with defaults, when set.
    pub behavior: Option<&'a Behavior>,
    /// Past recommendations and scale events.
    pub history: &'a History,
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// The controller's scale-down stabilization window without `behavior`, ms.
    pub downscale_window_ms: i64,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// `spec.replicas` is 0 and `minReplicas` is not: autoscaling is off.
    ScalingDisabled,
    /// `spec.replicas` is outside `[min, max]`: set to the bound, metrics unused.
    OutOfRange {
        /// The bound.
        replicas: i32,
        /// Why.
        reason: String,
    },
    /// No scaling: every metric failed, or some failed and the others would scale down.
    Hold {
        /// Metrics that failed.
        failed: usize,
        /// Of how many.
        total: usize,
        /// Why, as the controller reports it.
        reason: String,
    },
    /// Scaling to `normalized.replicas`.
    Scale {
        /// The highest proposal.
        proposal: i32,
        /// Index of the metric that made it.
        metric: usize,
        /// Metrics that failed (the others still scale up).
        failed: usize,
        /// Stabilized and limited.
        normalized: Normalized,
    },
}

impl Decision {
    /// The replicas the controller would set (`None`: it leaves them).
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Decision::ScalingDisabled | Decision::Hold { .. } => None,
            Decision::OutOfRange { replicas, .. } => Some(*replicas),
            Decision::Scale { normalized, .. } => Some(normalized.replicas),
        }
    }
}

/// Decides from one proposal per metric (`None` for a metric that failed).
pub fn decide(input: &DecisionInput<'_>, proposals: &[Option<i32>]) -> Decision {
    if input.current == 0 && input.min != 0 {
        return Decision::ScalingDisabled;
    }
    if input.current > input.max {
        return Decision::OutOfRange {
            replicas: input.max,
            reason: "Current number of replicas above Spec.MaxReplicas".into(),
        };
    }
    if input.current < input.min {
        return Decision::OutOfRange {
            replicas: input.min,
            reason: "Current number of replicas below Spec.MinReplicas".into(),
        };
    }
    let failed = proposals.iter().filter(|p| p.is_none()).count();
    let mut best: Option<(usize, i32)> = None;
    for (i, p) in proposals.iter().enumerate() {
        if let Some(r) = *p
            && best.is_none_or(|(_, b)| b == 0 || r > b)
        {
            best = Some((i, r));
        }
    }
    let total = proposals.len();
    let best_replicas = best.map_or(0, |(_, r)| r);
    if failed >= total || (failed > 0 && best_replicas < input.current) {
        let reason = if failed >= total {
            "every metric failed".to_owned()
        } else {
            format!(
                "{failed} of {total} metrics failed and the others propose {best_replicas} < {} current replicas: the controller does not scale down on partial data",
                input.current
            )
        };
        return Decision::Hold {
            failed,
            total,
            reason,
        };
    }
    let (metric, proposal) = best.unwrap_or((0, 0));
    let normalized = match input.behavior {
        None => behavior::normalize_default(
            input.current,
            proposal,
            input.min,
            input.max,
            input.history,
            input.now_ms,
            input.downscale_window_ms,
        ),
        Some(b) => behavior::normalize_with_behavior(
            input.current,
            proposal,
            input.min,
            input.max,
            b,
            input.history,
            input.now_ms,
        ),
    };
    Decision::Scale {
        proposal,
        metric,
        failed,
        normalized,
    }
}
