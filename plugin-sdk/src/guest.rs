//! The wasm side: the generated bindings, the one plugin instance of the module, and
//! conversions between the generated types and the SDK's.

use std::cell::RefCell;

use crate::log::Level;
use crate::types::{
    ApiResource, CustomValue, CycleInput, CycleOutput, ExternalValue, InputFailure, InputSpec,
    Label, MetricFailure, MetricKind, MetricSpec, Plan, ResourceValue, Series, Source,
};
use crate::{ObjectRef, Plugin};

/// Bindings generated from `wit/plugin.wit`; plugins reach the export macro through
/// [`crate::export_plugin!`].
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_guest",
        default_bindings_module: "::metrics_gateway_sdk::__private::bindings",
        runtime_path: "::metrics_gateway_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::metrics_gateway::plugin::{host, types as wit};

/// A plugin behind a vtable, so the instance can live in a non-generic static.
trait Instance {
    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String>;
    fn snapshot(&self) -> Vec<u8>;
    fn restore(&mut self, state: &[u8]) -> Result<(), String>;
}

impl<P: Plugin> Instance for P {
    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        Plugin::process(self, input)
    }
    fn snapshot(&self) -> Vec<u8> {
        Plugin::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        Plugin::restore(self, state)
    }
}

thread_local! {
    /// The module's plugin instance, set by `configure`.
    static INSTANCE: RefCell<Option<Box<dyn Instance>>> = const { RefCell::new(None) };
}

const NOT_CONFIGURED: &str = "the plugin was called before `configure`";

/// The `configure` export.
pub fn configure<P: Plugin>(config: String) -> Result<wit::Plan, String> {
    let (plugin, plan) = crate::configure_json::<P>(&config)?;
    INSTANCE.with_borrow_mut(|slot| *slot = Some(Box::new(plugin)));
    Ok(plan.into())
}

/// The `process` export.
pub fn process(input: wit::CycleInput) -> Result<wit::CycleOutput, String> {
    let input = CycleInput::from(input);
    INSTANCE.with_borrow_mut(|slot| match slot {
        Some(plugin) => plugin.process(&input).map(Into::into),
        None => Err(NOT_CONFIGURED.to_owned()),
    })
}

/// The `snapshot` export.
pub fn snapshot() -> Vec<u8> {
    INSTANCE.with_borrow(|slot| slot.as_ref().map(|p| p.snapshot()).unwrap_or_default())
}

/// The `restore` export.
pub fn restore(state: Vec<u8>) -> Result<(), String> {
    INSTANCE.with_borrow_mut(|slot| match slot {
        Some(plugin) => plugin.restore(&state),
        None => Err(NOT_CONFIGURED.to_owned()),
    })
}

/// The `log` import.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

impl From<wit::Label> for Label {
    fn from(l: wit::Label) -> Label {
        Label {
            name: l.name,
            value: l.value,
        }
    }
}

impl From<Label> for wit::Label {
    fn from(l: Label) -> wit::Label {
        wit::Label {
            name: l.name,
            value: l.value,
        }
    }
}

fn labels_into<T: From<Label>>(labels: Vec<Label>) -> Vec<T> {
    labels.into_iter().map(Into::into).collect()
}

impl From<Source> for wit::Source {
    fn from(s: Source) -> wit::Source {
        match s {
            Source::KubeletResource => wit::Source::KubeletResource,
            Source::KubeletSummary => wit::Source::KubeletSummary,
            Source::KubeletCadvisor => wit::Source::KubeletCadvisor,
            Source::Cluster => wit::Source::Cluster,
            Source::Prometheus => wit::Source::Prometheus,
            Source::PrometheusSeries => wit::Source::PrometheusSeries,
            Source::PrometheusLabels => wit::Source::PrometheusLabels,
            Source::PrometheusSeriesShapes => wit::Source::PrometheusSeriesShapes,
            Source::Derived => wit::Source::Derived,
        }
    }
}

impl From<InputSpec> for wit::InputSpec {
    fn from(i: InputSpec) -> wit::InputSpec {
        wit::InputSpec {
            source: i.source.into(),
            name: i.name,
            backend: i.backend,
        }
    }
}

impl From<MetricSpec> for wit::MetricSpec {
    fn from(m: MetricSpec) -> wit::MetricSpec {
        wit::MetricSpec {
            name: m.name,
            kind: match m.kind {
                MetricKind::Custom => wit::MetricKind::Custom,
                MetricKind::External => wit::MetricKind::External,
                MetricKind::Resource => wit::MetricKind::Resource,
            },
            resource: m.resource,
            namespaced: m.namespaced,
            max_age_ms: m.max_age_ms,
        }
    }
}

impl From<Plan> for wit::Plan {
    fn from(p: Plan) -> wit::Plan {
        wit::Plan {
            inputs: p.inputs.into_iter().map(Into::into).collect(),
            metrics: p.metrics.into_iter().map(Into::into).collect(),
            derived: p.derived,
        }
    }
}

impl From<wit::Series> for Series {
    fn from(s: wit::Series) -> Series {
        Series {
            id: s.id,
            input: s.input,
            name: s.name,
            labels: s.labels.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Series> for wit::Series {
    fn from(s: Series) -> wit::Series {
        wit::Series {
            id: s.id,
            input: s.input,
            name: s.name,
            labels: labels_into(s.labels),
        }
    }
}

impl From<wit::CycleInput> for CycleInput {
    fn from(i: wit::CycleInput) -> CycleInput {
        CycleInput {
            timestamp_ms: i.timestamp_ms,
            interval_ms: i.interval_ms,
            added: i.added.into_iter().map(Into::into).collect(),
            removed: i.removed,
            ids: i.ids,
            timestamps_ms: i.timestamps_ms,
            values: i.values,
            failures: i
                .failures
                .into_iter()
                .map(|f| InputFailure {
                    input: f.input,
                    message: f.message,
                })
                .collect(),
            api_resources: i.api_resources.map(|list| {
                list.into_iter()
                    .map(|r| ApiResource {
                        group: r.group,
                        version: r.version,
                        resource: r.resource,
                        singular: r.singular,
                        kind: r.kind,
                        namespaced: r.namespaced,
                    })
                    .collect()
            }),
        }
    }
}

impl From<ObjectRef> for wit::ObjectRef {
    fn from(o: ObjectRef) -> wit::ObjectRef {
        wit::ObjectRef {
            resource: o.resource,
            namespace: o.namespace,
            name: o.name,
        }
    }
}

impl From<CustomValue> for wit::CustomValue {
    fn from(v: CustomValue) -> wit::CustomValue {
        wit::CustomValue {
            metric: v.metric,
            object: v.object.into(),
            labels: labels_into(v.labels),
            value: v.value,
            timestamp_ms: v.timestamp_ms,
            window_ms: v.window_ms,
        }
    }
}

impl From<ExternalValue> for wit::ExternalValue {
    fn from(v: ExternalValue) -> wit::ExternalValue {
        wit::ExternalValue {
            metric: v.metric,
            namespace: v.namespace,
            labels: labels_into(v.labels),
            value: v.value,
            timestamp_ms: v.timestamp_ms,
            window_ms: v.window_ms,
        }
    }
}

impl From<ResourceValue> for wit::ResourceValue {
    fn from(v: ResourceValue) -> wit::ResourceValue {
        wit::ResourceValue {
            metric: v.metric,
            object: v.object.into(),
            container: v.container,
            value: v.value,
            timestamp_ms: v.timestamp_ms,
            window_ms: v.window_ms,
        }
    }
}

impl From<MetricFailure> for wit::MetricFailure {
    fn from(f: MetricFailure) -> wit::MetricFailure {
        wit::MetricFailure {
            metric: f.metric,
            message: f.message,
        }
    }
}

impl From<CycleOutput> for wit::CycleOutput {
    fn from(o: CycleOutput) -> wit::CycleOutput {
        wit::CycleOutput {
            custom: o.custom.into_iter().map(Into::into).collect(),
            external: o.external.into_iter().map(Into::into).collect(),
            derived_added: o.derived_added.into_iter().map(Into::into).collect(),
            derived_removed: o.derived_removed,
            derived_ids: o.derived_ids,
            derived_timestamps_ms: o.derived_timestamps_ms,
            derived_values: o.derived_values,
            resource: o.resource.into_iter().map(Into::into).collect(),
            failed: o.failed.into_iter().map(Into::into).collect(),
            replan: o.replan.map(Into::into),
        }
    }
}
