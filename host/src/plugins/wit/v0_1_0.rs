//! Bindings for contract `metrics-gateway:plugin@0.1.0` (archived in `host/wit/v0.1.0/`), and
//! conversions between its types and the newest ones.

wasmtime::component::bindgen!({
    path: "wit/v0.1.0",
    world: "metrics-gateway:plugin/plugin@0.1.0",
});

use self::metrics_gateway::plugin::types as old;

use super::types as new;
use crate::plugins::input::CycleInput;
use crate::samples::Series;

fn label_in(l: old::Label) -> new::Label {
    new::Label {
        name: l.name,
        value: l.value,
    }
}

fn labels_in(labels: Vec<old::Label>) -> Vec<new::Label> {
    labels.into_iter().map(label_in).collect()
}

fn series_in(s: old::Series) -> new::Series {
    new::Series {
        id: s.id,
        input: s.input,
        name: s.name,
        labels: labels_in(s.labels),
    }
}

fn series_out((s, input): &(&Series, u32)) -> old::Series {
    old::Series {
        id: s.id,
        input: *input,
        name: s.name.to_string(),
        labels: s
            .labels
            .iter()
            .map(|(name, value)| old::Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
    }
}

impl From<old::Plan> for new::Plan {
    fn from(p: old::Plan) -> new::Plan {
        new::Plan {
            inputs: p
                .inputs
                .into_iter()
                .map(|i| new::InputSpec {
                    source: match i.source {
                        old::Source::KubeletResource => new::Source::KubeletResource,
                        old::Source::KubeletSummary => new::Source::KubeletSummary,
                        old::Source::KubeletCadvisor => new::Source::KubeletCadvisor,
                        old::Source::Cluster => new::Source::Cluster,
                        old::Source::Prometheus => new::Source::Prometheus,
                        old::Source::Derived => new::Source::Derived,
                    },
                    name: i.name,
                    backend: i.backend,
                })
                .collect(),
            metrics: p
                .metrics
                .into_iter()
                .map(|m| new::MetricSpec {
                    name: m.name,
                    kind: match m.kind {
                        old::MetricKind::Custom => new::MetricKind::Custom,
                        old::MetricKind::External => new::MetricKind::External,
                    },
                    resource: m.resource,
                    namespaced: m.namespaced,
                    max_age_ms: m.max_age_ms,
                })
                .collect(),
            derived: p.derived,
        }
    }
}

/// The 0.1.0 form of a cycle's input: without failures (a failed input's series are simply
/// neither sent nor removed) and API resources.
pub fn cycle_input(i: &CycleInput<'_>) -> old::CycleInput {
    old::CycleInput {
        timestamp_ms: i.timestamp_ms,
        interval_ms: i.interval_ms,
        added: i.added.iter().map(series_out).collect(),
        removed: i.removed.clone(),
        ids: i.ids.clone(),
        timestamps_ms: i.timestamps_ms.clone(),
        values: i.values.clone(),
    }
}

impl From<old::CycleOutput> for new::CycleOutput {
    fn from(o: old::CycleOutput) -> new::CycleOutput {
        let object = |o: old::ObjectRef| new::ObjectRef {
            resource: o.resource,
            namespace: o.namespace,
            name: o.name,
        };
        new::CycleOutput {
            custom: o
                .custom
                .into_iter()
                .map(|v| new::CustomValue {
                    metric: v.metric,
                    object: object(v.object),
                    labels: labels_in(v.labels),
                    value: v.value,
                    timestamp_ms: v.timestamp_ms,
                    window_ms: v.window_ms,
                })
                .collect(),
            external: o
                .external
                .into_iter()
                .map(|v| new::ExternalValue {
                    metric: v.metric,
                    namespace: v.namespace,
                    labels: labels_in(v.labels),
                    value: v.value,
                    timestamp_ms: v.timestamp_ms,
                    window_ms: v.window_ms,
                })
                .collect(),
            derived_added: o.derived_added.into_iter().map(series_in).collect(),
            derived_removed: o.derived_removed,
            derived_ids: o.derived_ids,
            derived_timestamps_ms: o.derived_timestamps_ms,
            derived_values: o.derived_values,
            resource: Vec::new(),
            failed: Vec::new(),
            replan: None,
        }
    }
}
