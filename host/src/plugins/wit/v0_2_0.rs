//! Bindings for contract `metrics-gateway:plugin@0.2.0` (archived in `host/wit/v0.2.0/`), and
//! conversions between its types and the newest ones. 0.3.0 only added a source
//! (`prometheus-labels`), which a 0.2.0 plan cannot name, so every conversion is lossless.

wasmtime::component::bindgen!({
    path: "wit/v0.2.0",
    world: "metrics-gateway:plugin/plugin@0.2.0",
});

use self::metrics_gateway::plugin::types as old;

use super::types as new;
use crate::plugins::input::CycleInput;
use crate::samples::Series;

fn labels_in(labels: Vec<old::Label>) -> Vec<new::Label> {
    labels
        .into_iter()
        .map(|l| new::Label {
            name: l.name,
            value: l.value,
        })
        .collect()
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

fn object_in(o: old::ObjectRef) -> new::ObjectRef {
    new::ObjectRef {
        resource: o.resource,
        namespace: o.namespace,
        name: o.name,
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
                        old::Source::PrometheusSeries => new::Source::PrometheusSeries,
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
                        old::MetricKind::Resource => new::MetricKind::Resource,
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

/// The 0.2.0 form of a cycle's input (the same fields; a 0.2.0 plan has no labels input, so no
/// label-name series are ever sent to it).
pub fn cycle_input(i: &CycleInput<'_>) -> old::CycleInput {
    old::CycleInput {
        timestamp_ms: i.timestamp_ms,
        interval_ms: i.interval_ms,
        added: i.added.iter().map(series_out).collect(),
        removed: i.removed.clone(),
        ids: i.ids.clone(),
        timestamps_ms: i.timestamps_ms.clone(),
        values: i.values.clone(),
        failures: i
            .failures
            .iter()
            .map(|f| old::InputFailure {
                input: f.input,
                message: f.message.clone(),
            })
            .collect(),
        api_resources: i.api_resources.as_ref().map(|list| {
            list.iter()
                .map(|r| old::ApiResource {
                    group: r.group.clone(),
                    version: r.version.clone(),
                    resource: r.resource.clone(),
                    singular: r.singular.clone(),
                    kind: r.kind.clone(),
                    namespaced: r.namespaced,
                })
                .collect()
        }),
    }
}

impl From<old::CycleOutput> for new::CycleOutput {
    fn from(o: old::CycleOutput) -> new::CycleOutput {
        new::CycleOutput {
            custom: o
                .custom
                .into_iter()
                .map(|v| new::CustomValue {
                    metric: v.metric,
                    object: object_in(v.object),
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
            resource: o
                .resource
                .into_iter()
                .map(|v| new::ResourceValue {
                    metric: v.metric,
                    object: object_in(v.object),
                    container: v.container,
                    value: v.value,
                    timestamp_ms: v.timestamp_ms,
                    window_ms: v.window_ms,
                })
                .collect(),
            failed: o
                .failed
                .into_iter()
                .map(|f| new::MetricFailure {
                    metric: f.metric,
                    message: f.message,
                })
                .collect(),
            replan: o.replan.map(Into::into),
        }
    }
}
