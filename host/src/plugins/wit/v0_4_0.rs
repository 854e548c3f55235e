//! Bindings for contract `metrics-gateway:plugin@0.4.0`, the newest: host logic uses its types
//! directly, and older versions convert into them.
//!
//! `process`' argument is lowered from [`CycleInputArg`], which borrows the announced series'
//! interned strings, instead of the generated owned `cycle-input`: an announcement of 100,000
//! series then costs the host a few flat arrays of references, not a `String` per name, label
//! name and value. Its records are type-checked by their fields, so 0.2.0 and 0.3.0, whose
//! `cycle-input` is the same, are called with it too.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{ComponentType, Lift, Lower};

use super::super::input::CycleInput;
use super::super::instance::HostState;

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "metrics-gateway:plugin/plugin@0.4.0",
});

use self::metrics_gateway::plugin::types;

/// `label`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
struct LabelArg<'a> {
    #[component(name = "name")]
    name: &'a Arc<str>,
    #[component(name = "value")]
    value: &'a Arc<str>,
}

/// `series`, borrowed; its labels are a range of one flat array.
#[derive(ComponentType, Lower)]
#[component(record)]
struct SeriesArg<'a> {
    #[component(name = "id")]
    id: u64,
    #[component(name = "input")]
    input: u32,
    #[component(name = "name")]
    name: &'a Arc<str>,
    #[component(name = "labels")]
    labels: &'a [LabelArg<'a>],
}

/// `cycle-input`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
struct CycleInputArg<'a> {
    #[component(name = "timestamp-ms")]
    timestamp_ms: i64,
    #[component(name = "interval-ms")]
    interval_ms: u64,
    #[component(name = "added")]
    added: &'a [SeriesArg<'a>],
    #[component(name = "removed")]
    removed: &'a [u64],
    #[component(name = "ids")]
    ids: &'a [u64],
    #[component(name = "timestamps-ms")]
    timestamps_ms: &'a [i64],
    #[component(name = "values")]
    values: &'a [f64],
    #[component(name = "failures")]
    failures: &'a [types::InputFailure],
    #[component(name = "api-resources")]
    api_resources: Option<&'a [types::ApiResource]>,
}

/// Calls `process` with `input`, lowered into the instance from the borrowed series.
pub fn process(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    input: &CycleInput<'_>,
) -> wasmtime::Result<Result<types::CycleOutput, String>> {
    let func = *plugin.metrics_gateway_plugin_guest().func_process().func();
    call_process(func, store, input)
}

/// Calls the `process` export `func`, whose `cycle-input` is 0.4.0's and whose output lifts as
/// `O` (the cycle output of the component's contract version).
pub fn call_process<O: ComponentType + Lift + 'static>(
    func: wasmtime::component::Func,
    store: &mut Store<HostState>,
    input: &CycleInput<'_>,
) -> wasmtime::Result<Result<O, String>> {
    let labels: Vec<LabelArg<'_>> = input
        .added
        .iter()
        .flat_map(|(series, _)| series.labels.iter())
        .map(|(name, value)| LabelArg { name, value })
        .collect();
    let mut rest = labels.as_slice();
    let added: Vec<SeriesArg<'_>> = input
        .added
        .iter()
        .map(|(series, index)| {
            let (labels, tail) = rest.split_at(series.labels.len());
            rest = tail;
            SeriesArg {
                id: series.id,
                input: *index,
                name: &series.name,
                labels,
            }
        })
        .collect();
    let arg = CycleInputArg {
        timestamp_ms: input.timestamp_ms,
        interval_ms: input.interval_ms,
        added: &added,
        removed: &input.removed,
        ids: &input.ids,
        timestamps_ms: &input.timestamps_ms,
        values: &input.values,
        failures: &input.failures,
        api_resources: input.api_resources,
    };
    let typed = func.typed::<(CycleInputArg<'_>,), (Result<O, String>,)>(&*store)?;
    let (output,) = typed.call(store, (arg,))?;
    Ok(output)
}
