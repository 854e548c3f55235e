//! Bindings for contract `metrics-gateway:plugin@0.3.0` (archived in `host/wit/v0.3.0/`), and
//! conversions between its types and the newest ones. 0.4.0 only added a source
//! (`prometheus-series-shapes`), which a 0.3.0 plan cannot name, so every conversion is
//! lossless, and its `cycle-input` is lowered from the same borrowed records as 0.4.0's.

wasmtime::component::bindgen!({
    path: "wit/v0.3.0",
    world: "metrics-gateway:plugin/plugin@0.3.0",
});

use wasmtime::Store;

use self::metrics_gateway::plugin::types as old;

use super::types as new;
use crate::plugins::input::CycleInput;
use crate::plugins::instance::HostState;

super::from_older!(
    KubeletResource,
    KubeletSummary,
    KubeletCadvisor,
    Cluster,
    Prometheus,
    PrometheusSeries,
    PrometheusLabels,
    Derived,
);

/// Calls `process` with `input`, lowered into the instance from the borrowed series.
pub fn process(
    plugin: &Plugin,
    store: &mut Store<HostState>,
    input: &CycleInput<'_>,
) -> wasmtime::Result<Result<new::CycleOutput, String>> {
    let func = *plugin.metrics_gateway_plugin_guest().func_process().func();
    Ok(super::v0_4_0::call_process::<old::CycleOutput>(func, store, input)?.map(Into::into))
}
