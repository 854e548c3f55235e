//! Write metrics-gateway plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export_plugin!`]:
//!
//! ```
//! use metrics_gateway_sdk::{CycleInput, CycleOutput, MetricSpec, ObjectRef, Plan, Plugin};
//! use metrics_gateway_sdk::{InputSpec, SeriesTable, Source, export_plugin};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     metric: String,
//! }
//!
//! struct Ready {
//!     metric: String,
//!     series: SeriesTable,
//! }
//!
//! impl Plugin for Ready {
//!     type Config = Config;
//!
//!     fn configure(config: Config) -> Result<(Self, Plan), String> {
//!         let mut plan = Plan::new();
//!         plan.add_input(InputSpec::new(Source::Cluster, "kube_pod_status_ready"));
//!         plan.add_metric(MetricSpec::custom(&config.metric, "pods"))?;
//!         Ok((Ready { metric: config.metric, series: SeriesTable::new() }, plan))
//!     }
//!
//!     fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
//!         self.series.apply(input);
//!         let mut out = CycleOutput::new();
//!         for sample in input.samples() {
//!             let Some(series) = self.series.get(sample.id) else { continue };
//!             if let Some(pod) = ObjectRef::from_labels("pods", &series.labels) {
//!                 out.push_custom(&self.metric, pod, sample.value, sample.timestamp_ms);
//!             }
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! export_plugin!(Ready);
//! ```
//!
//! Natively the crate builds without wasm or wit-bindgen, and [`testing::Harness`] runs a
//! plugin over cycles built from named series, so plugin logic is tested with `cargo test`.
//! Compiled for `wasm32`, [`export_plugin!`] exports the WIT contract in `plugin-sdk/wit/`.

// The generated bindings refer to this crate by name, also from inside it.
extern crate self as metrics_gateway_sdk;

pub mod counter;
pub mod derived;
pub mod ewma;
pub mod idmap;
pub mod log;
pub mod object;
pub mod rate_rules;
pub mod resources;
pub mod rules;
pub mod selector;
pub mod series;
pub mod testing;
pub mod types;

#[cfg(target_arch = "wasm32")]
mod guest;

pub use counter::{Counter, CounterRate, Rate, counter_increase};
pub use derived::DerivedEmitter;
pub use ewma::Ewma;
pub use idmap::IdMap;
pub use object::ObjectRef;
pub use rate_rules::RateRules;
pub use resources::{ResolvedResource, ResourceMapper};
pub use rules::{OBJECT_RESOURCES, Router, Routes, Rule, RuleSet, Target};
pub use selector::{Matcher, Selector};
pub use series::SeriesTable;
pub use types::{
    ApiResource, CustomValue, CycleInput, CycleOutput, ExternalValue, InputFailure, InputSpec,
    Label, MetricFailure, MetricKind, MetricSpec, Plan, ResourceValue, Sample, Series, Source,
    label, labels,
};

/// The version of the WIT contract (`metrics-gateway:plugin@…`) this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.4.0";

/// A plugin: configured once per instance, then called once per collection cycle. The instance
/// lives across cycles, so state is kept in ordinary fields.
///
/// Every method but [`Plugin::configure`] and [`Plugin::process`] has a default, so methods
/// added later break no plugin. A panic fails the call: the host discards the instance and
/// creates a new one (restored from the last [`Plugin::snapshot`]) next cycle.
pub trait Plugin: Sized + 'static {
    /// The plugin's section of the gateway config, deserialized from JSON (an empty config is
    /// `{}`).
    type Config: serde::de::DeserializeOwned;

    /// Builds an instance and the plan of what it reads and publishes.
    fn configure(config: Self::Config) -> Result<(Self, Plan), String>;

    /// Processes one cycle.
    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String>;

    /// The state worth keeping if this instance is replaced; empty (the default) for none. The
    /// gateway asks after each successful cycle, or at most once a minute once it is large.
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Restores a [`Plugin::snapshot`] into a freshly configured instance. The default ignores
    /// it.
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

/// Configures `P` from its JSON config text, as the host passes it (empty text counts as
/// `{}`). Errors name the offending key.
pub fn configure_json<P: Plugin>(config: &str) -> Result<(P, Plan), String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let config: P::Config =
        serde_json::from_str(text).map_err(|e| format!("invalid plugin config: {e}"))?;
    P::configure(config)
}

/// Exports a [`Plugin`] type as the plugin of this crate (build it as a `cdylib`). Use it once
/// per crate. Natively it only checks that the type is a plugin.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: fn() = || {
            fn is_plugin<P: $crate::Plugin>() {}
            is_plugin::<$plugin>();
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct MetricsGatewayGuest;
            impl $crate::__private::Guest for MetricsGatewayGuest {
                fn configure(
                    config: $crate::__private::String,
                ) -> $crate::__private::Result<$crate::__private::WitPlan, $crate::__private::String> {
                    $crate::__private::configure::<$plugin>(config)
                }
                fn process(
                    input: $crate::__private::WitCycleInput,
                ) -> $crate::__private::Result<
                    $crate::__private::WitCycleOutput,
                    $crate::__private::String,
                > {
                    $crate::__private::process(input)
                }
                fn snapshot() -> $crate::__private::Vec<u8> {
                    $crate::__private::snapshot()
                }
                fn restore(
                    state: $crate::__private::Vec<u8>,
                ) -> $crate::__private::Result<(), $crate::__private::String> {
                    $crate::__private::restore(state)
                }
            }
            $crate::__private::export_guest!(MetricsGatewayGuest with_types_in $crate::__private::bindings);
        };
    };
}

/// Used by [`export_plugin!`]; not part of the API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use std::result::Result;
    pub use std::string::String;
    pub use std::vec::Vec;

    pub use crate::guest::bindings;
    pub use crate::guest::bindings::export_guest;
    pub use crate::guest::bindings::exports::metrics_gateway::plugin::guest::Guest;
    pub use crate::guest::bindings::metrics_gateway::plugin::types::{
        CycleInput as WitCycleInput, CycleOutput as WitCycleOutput, Plan as WitPlan,
    };
    pub use crate::guest::{configure, process, restore, snapshot};
    pub use wit_bindgen;
}
