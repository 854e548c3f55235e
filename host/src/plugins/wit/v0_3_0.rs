//! Bindings for contract `metrics-gateway:plugin@0.3.0` (archived in `host/wit/v0.3.0/`), and
//! conversions between its types and the newest ones. 0.4.0 only added a source
//! (`prometheus-series-shapes`), which a 0.3.0 plan cannot name, so every conversion is
//! lossless, and its `cycle-input` is lowered from the same borrowed records as 0.4.0's.

wasmtime::component::bindgen!({
    path: "wit/v0.3.0",
    world: "metrics-gateway:plugin/plugin@0.3.0",
});

use self::metrics_gateway::plugin::types as old;

use super::types as new;

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
