//! The explain report: a stable JSON structure (documented in docs/HPA-EXPLAIN.md) and its
//! text rendering.

use std::fmt::Write as _;

use serde::Serialize;

use super::fetch::{Call, Failure};
use crate::hpa::behavior::{Behavior, Limit};
use crate::hpa::decision::Decision;
use crate::hpa::replicas::{Outcome, Proposal, Tolerances};
use crate::hpa::spec::{Source, Target};

/// The scale target as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// `spec.replicas` (the controller's current replicas).
    pub spec_replicas: i32,
    /// `status.replicas` (used by AverageValue on Object and External metrics).
    pub status_replicas: i32,
    /// The pod selector.
    pub selector: String,
}

/// One metric's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MetricResult {
    /// A proposal.
    Proposal(Proposal),
    /// No value: why.
    Failed(Failure),
}

/// One metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricReport {
    /// Position in `spec.metrics`.
    pub index: usize,
    /// `Resource cpu`, `Pods rps`, ….
    pub description: String,
    /// The requests made for it (the controller's, then any explain added to find a cause).
    pub requests: Vec<Call>,
    /// Source.
    pub source: Source,
    /// Target, milli-units.
    pub target: Target,
    /// Result.
    pub result: MetricResult,
}

impl MetricReport {
    /// The proposal's replicas, if any.
    pub fn proposal(&self) -> Option<i32> {
        match &self.result {
            MetricResult::Proposal(p) => Some(p.replicas),
            MetricResult::Failed(_) => None,
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The HPA's namespace.
    pub namespace: String,
    /// The HPA's name.
    pub name: String,
    /// The scale target.
    pub target: TargetReport,
    /// Pods the selector matched.
    pub pod_count: usize,
    /// `cluster` or `file`.
    pub pods_from: &'static str,
    /// Requests for the target and its pods.
    pub requests: Vec<Call>,
    /// Tolerances applied.
    pub tolerances: Tolerances,
    /// `spec.behavior` with defaults, when set.
    pub behavior: Option<Behavior>,
    /// Per metric.
    pub metrics: Vec<MetricReport>,
    /// The combined decision.
    pub decision: Decision,
}

/// A milli-value as a plain number (`1500` → `1.5`).
fn number(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{}", milli as f64 / 1000.0)
    }
}

fn target_text(target: Target) -> String {
    match target {
        Target::Utilization(p) => format!("{p}% of requests (Utilization)"),
        Target::AverageValue(m) => format!("{} per pod (AverageValue)", number(m)),
        Target::Value(m) => format!("{} in total (Value)", number(m)),
    }
}

fn current_text(target: Target, p: &Proposal) -> String {
    match target {
        Target::Utilization(_) => format!("{}% of requests", p.current),
        Target::AverageValue(_) => format!("{} per pod", number(p.current)),
        Target::Value(_) => format!("{} in total", number(p.current)),
    }
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::WithinTolerance => "within tolerance: keep the current replicas",
        Outcome::Scaled => "outside tolerance: scale",
        Outcome::FromZero => "target at 0 replicas: ceil(ratio), no tolerance",
        Outcome::RebalancedWithinTolerance => {
            "counting missing/unready pods brings the ratio within tolerance: keep the current replicas"
        }
        Outcome::DirectionReversed => {
            "counting missing/unready pods reverses the direction: keep the current replicas"
        }
        Outcome::CountReversed => {
            "the recomputed count moves against the ratio: keep the current replicas"
        }
        Outcome::Rebalanced => "outside tolerance after counting missing/unready pods: scale",
    }
}

fn write_calls(out: &mut String, calls: &[Call]) {
    for c in calls {
        let status = c.status.map_or("no answer".into(), |s| s.to_string());
        let _ = writeln!(out, "    {} {} -> {status}", c.method, c.path);
    }
}

/// Renders the report for people.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let t = &r.target;
    let _ = writeln!(
        out,
        "HPA {}/{} -> {} {} (spec.replicas {}, status.replicas {})",
        r.namespace, r.name, t.kind, t.name, t.spec_replicas, t.status_replicas
    );
    let _ = writeln!(
        out,
        "  pods: {} matched by {} (from the {})",
        r.pod_count, t.selector, r.pods_from
    );
    write_calls(&mut out, &r.requests);
    let _ = writeln!(
        out,
        "  tolerance: down {}, up {} (ratio within [{:.2}, {:.2}] keeps the current replicas)",
        r.tolerances.down,
        r.tolerances.up,
        1.0 - r.tolerances.down,
        1.0 + r.tolerances.up
    );
    for m in &r.metrics {
        let _ = writeln!(out, "\nmetric {}: {}", m.index, m.description);
        let _ = writeln!(out, "  target: {}", target_text(m.target));
        let _ = writeln!(out, "  requests:");
        write_calls(&mut out, &m.requests);
        match &m.result {
            MetricResult::Proposal(p) => write_proposal(&mut out, m.target, p),
            MetricResult::Failed(f) => {
                let _ = writeln!(out, "  FAILED ({}): {}", f.cause.label(), f.message);
                let _ = writeln!(
                    out,
                    "  the HPA: cannot compute this metric (event FailedGet…Metric); it still scales up on the other metrics but never down, and with none valid it holds at the current replicas (ScalingActive=False)"
                );
            }
        }
    }
    let _ = writeln!(out, "\ndecision:");
    write_decision(&mut out, r);
    out
}

fn write_proposal(out: &mut String, target: Target, p: &Proposal) {
    if !p.pods.is_empty() {
        let _ = writeln!(out, "  per pod:");
        for v in &p.pods {
            let mut line = format!("    {} [{}]", v.pod, v.group.describe());
            if let Some(m) = v.measured_milli {
                let _ = write!(line, " value {}", number(m));
            }
            if let Some(r) = v.request_milli {
                let _ = write!(line, " request {}", number(r));
            }
            if let Some(a) = v.assumed_milli {
                let _ = write!(line, " counted as {}", number(a));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(
        out,
        "  current: {} -> usage ratio {:.3} ({} ready pods counted)",
        current_text(target, p),
        p.usage_ratio,
        p.ready_pods
    );
    if let Some(r) = p.rebalanced_ratio {
        let _ = writeln!(out, "  with missing/unready pods counted: ratio {r:.3}");
    }
    let _ = writeln!(out, "  {}", outcome_text(p.outcome));
    let _ = writeln!(out, "  proposed replicas: {}", p.replicas);
}

fn write_decision(out: &mut String, r: &Report) {
    match &r.decision {
        Decision::ScalingDisabled => {
            let _ = writeln!(
                out,
                "  scaling is disabled: the target has 0 replicas and minReplicas is not 0"
            );
        }
        Decision::OutOfRange { replicas, reason } => {
            let _ = writeln!(out, "  {reason}: set to {replicas} without reading metrics");
        }
        Decision::Hold {
            failed,
            total,
            reason,
        } => {
            let _ = writeln!(
                out,
                "  HOLD at {} replicas: {failed} of {total} metrics failed; {reason}",
                r.target.spec_replicas
            );
        }
        Decision::Scale {
            proposal,
            metric,
            failed,
            normalized,
        } => {
            let _ = writeln!(
                out,
                "  highest proposal: {proposal} (metric {metric}){}",
                if *failed > 0 {
                    format!("; {failed} metric(s) failed, allowed only because this scales up")
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                out,
                "  stabilized: {} (no recommendation history: the controller keeps the highest recommendation of the last {} — explain cannot know it)",
                normalized.stabilized,
                match &r.behavior {
                    None => "300 s".to_owned(),
                    Some(b) => format!("{} s", b.down.stabilization_window_secs),
                }
            );
            let _ = writeln!(
                out,
                "  allowed range now: [{}, {}]",
                normalized.allowed.0, normalized.allowed.1
            );
            let limit = match normalized.limit {
                Limit::DesiredWithinRange => "none".to_owned(),
                l => format!("{l:?} ({})", l.message()),
            };
            let _ = writeln!(out, "  limit applied: {limit}");
            let verb = if normalized.replicas == r.target.spec_replicas {
                "keep"
            } else {
                "scale to"
            };
            let _ = writeln!(out, "  result: {verb} {} replicas", normalized.replicas);
        }
    }
}
