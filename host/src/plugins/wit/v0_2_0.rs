//! Bindings for contract `metrics-gateway:plugin@0.2.0` (archived in `host/wit/v0.2.0/`), and
//! conversions between its types and the newest ones. 0.3.0 and 0.4.0 only added sources
//! (`prometheus-labels`, `prometheus-series-shapes`), which a 0.2.0 plan cannot name, so every
//! conversion is lossless.

wasmtime::component::bindgen!({
    path: "wit/v0.2.0",
    world: "metrics-gateway:plugin/plugin@0.2.0",
});

use self::metrics_gateway::plugin::types as old;

use super::types as new;
use crate::plugins::input::CycleInput;
use crate::samples::Series;

super::from_older!(
    KubeletResource,
    KubeletSummary,
    KubeletCadvisor,
    Cluster,
    Prometheus,
    PrometheusSeries,
    Derived,
);

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
