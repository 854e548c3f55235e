//! The plugin contract, one `bindgen!` module per supported WIT package version.
//!
//! A component declares the contract it was built against by the name of the `guest` interface
//! it exports (`metrics-gateway:plugin/guest@X.Y.Z`). [`contract_version`] reads that name,
//! [`Pre::new`] picks the bindings of that version, and every version's calls return the types of
//! the newest one ([`types`]), so host logic exists once.

/// `process`, and conversions from an older contract's plan and cycle output into the newest
/// types, for the versions whose types differ from the newest only in the sources a plan can
/// name (listed as the arguments), so their `cycle-input` is the newest one's: expanded inside
/// that version's module, with its types as `old` and the newest as `new`.
macro_rules! from_older {
    ($($source:ident),+ $(,)?) => {
        /// Calls `process` with `input`, lowered into the instance from the borrowed series.
        pub fn process(
            plugin: &Plugin,
            store: &mut wasmtime::Store<$crate::plugins::instance::HostState>,
            input: &$crate::plugins::input::CycleInput<'_>,
        ) -> wasmtime::Result<Result<new::CycleOutput, String>> {
            let func = *plugin.metrics_gateway_plugin_guest().func_process().func();
            let output = super::v0_4_0::call_process::<old::CycleOutput>(func, store, input)?;
            Ok(output.map(Into::into))
        }

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
                                $(old::Source::$source => new::Source::$source,)+
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
    };
}
use from_older;

#[allow(missing_docs)]
pub mod v0_1_0;
#[allow(missing_docs)]
pub mod v0_2_0;
#[allow(missing_docs)]
pub mod v0_3_0;
#[allow(missing_docs)]
pub mod v0_4_0;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

use super::input::CycleInput;
use super::instance::HostState;

/// The types host logic works with: those of the newest contract.
pub use v0_4_0::metrics_gateway::plugin::types;

/// The exported interface whose version selects the bindings, without `@version`.
const GUEST_INTERFACE: &str = "metrics-gateway:plugin/guest";

/// A contract version the host supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    /// `metrics-gateway:plugin@0.1.0`.
    V0_1_0,
    /// `metrics-gateway:plugin@0.2.0`.
    V0_2_0,
    /// `metrics-gateway:plugin@0.3.0`.
    V0_3_0,
    /// `metrics-gateway:plugin@0.4.0`.
    V0_4_0,
}

impl ContractVersion {
    /// Every supported version, oldest first.
    pub const ALL: [ContractVersion; 4] = [
        ContractVersion::V0_1_0,
        ContractVersion::V0_2_0,
        ContractVersion::V0_3_0,
        ContractVersion::V0_4_0,
    ];

    /// The WIT package version, e.g. `0.1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
            ContractVersion::V0_3_0 => "0.3.0",
            ContractVersion::V0_4_0 => "0.4.0",
        }
    }

    /// The supported versions as a readable list, e.g. `0.1.0, 0.2.0`.
    pub fn supported() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// Why a component's contract version was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// It exports no `metrics-gateway:plugin/guest` interface.
    #[error(
        "the component does not export {GUEST_INTERFACE} (is it a metrics-gateway plugin?); it exports: {exports}"
    )]
    NotAPlugin {
        /// What it exports, comma-separated.
        exports: String,
    },
    /// It was built against a contract version this host does not support.
    #[error(
        "built against plugin contract {found}, which this gateway does not support (supported: {supported})"
    )]
    Unsupported {
        /// The version the component was built against.
        found: String,
        /// The versions supported, comma-separated.
        supported: String,
    },
}

/// Reads the contract version from the names of the component's exports.
pub fn contract_version(
    engine: &Engine,
    component: &Component,
) -> Result<ContractVersion, VersionError> {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    version_from_exports(&names)
}

/// Selects the contract version from export names.
fn version_from_exports(names: &[&str]) -> Result<ContractVersion, VersionError> {
    let Some(found) = names
        .iter()
        .find_map(|name| match name.strip_prefix(GUEST_INTERFACE)? {
            "" => Some(""),
            rest => rest.strip_prefix('@'),
        })
    else {
        return Err(VersionError::NotAPlugin {
            exports: if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            },
        });
    };
    ContractVersion::ALL
        .into_iter()
        .find(|v| v.as_str() == found)
        .ok_or_else(|| VersionError::Unsupported {
            found: if found.is_empty() {
                "(unversioned)".to_owned()
            } else {
                found.to_owned()
            },
            supported: ContractVersion::supported(),
        })
}

/// The host imports of every supported version, ready to pre-instantiate components.
pub struct Linkers {
    v0_1_0: Linker<HostState>,
    v0_2_0: Linker<HostState>,
    v0_3_0: Linker<HostState>,
    v0_4_0: Linker<HostState>,
}

impl Linkers {
    /// Defines the host imports of every version.
    pub fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut v0_1_0 = Linker::new(engine);
        v0_1_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut v0_1_0, |s| s)?;
        let mut v0_2_0 = Linker::new(engine);
        v0_2_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut v0_2_0, |s| s)?;
        let mut v0_3_0 = Linker::new(engine);
        v0_3_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut v0_3_0, |s| s)?;
        let mut v0_4_0 = Linker::new(engine);
        v0_4_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut v0_4_0, |s| s)?;
        Ok(Linkers {
            v0_1_0,
            v0_2_0,
            v0_3_0,
            v0_4_0,
        })
    }
}

/// A component pre-instantiated with the bindings of its contract version.
pub enum Pre {
    /// Contract 0.1.0.
    V0_1_0(v0_1_0::PluginPre<HostState>),
    /// Contract 0.2.0.
    V0_2_0(v0_2_0::PluginPre<HostState>),
    /// Contract 0.3.0.
    V0_3_0(v0_3_0::PluginPre<HostState>),
    /// Contract 0.4.0.
    V0_4_0(v0_4_0::PluginPre<HostState>),
}

impl Pre {
    /// Type-checks `component` against the imports and exports of `version`.
    pub fn new(
        linkers: &Linkers,
        version: ContractVersion,
        component: &Component,
    ) -> wasmtime::Result<Pre> {
        match version {
            ContractVersion::V0_1_0 => Ok(Pre::V0_1_0(v0_1_0::PluginPre::new(
                linkers.v0_1_0.instantiate_pre(component)?,
            )?)),
            ContractVersion::V0_2_0 => Ok(Pre::V0_2_0(v0_2_0::PluginPre::new(
                linkers.v0_2_0.instantiate_pre(component)?,
            )?)),
            ContractVersion::V0_3_0 => Ok(Pre::V0_3_0(v0_3_0::PluginPre::new(
                linkers.v0_3_0.instantiate_pre(component)?,
            )?)),
            ContractVersion::V0_4_0 => Ok(Pre::V0_4_0(v0_4_0::PluginPre::new(
                linkers.v0_4_0.instantiate_pre(component)?,
            )?)),
        }
    }

    /// The engine it was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            Pre::V0_1_0(pre) => pre.engine(),
            Pre::V0_2_0(pre) => pre.engine(),
            Pre::V0_3_0(pre) => pre.engine(),
            Pre::V0_4_0(pre) => pre.engine(),
        }
    }

    /// Instantiates into `store`.
    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        match self {
            Pre::V0_1_0(pre) => Ok(Bindings::V0_1_0(pre.instantiate(store)?)),
            Pre::V0_2_0(pre) => Ok(Bindings::V0_2_0(pre.instantiate(store)?)),
            Pre::V0_3_0(pre) => Ok(Bindings::V0_3_0(pre.instantiate(store)?)),
            Pre::V0_4_0(pre) => Ok(Bindings::V0_4_0(pre.instantiate(store)?)),
        }
    }
}

/// The exports of one instance, whatever its contract version.
pub enum Bindings {
    /// Contract 0.1.0.
    V0_1_0(v0_1_0::Plugin),
    /// Contract 0.2.0.
    V0_2_0(v0_2_0::Plugin),
    /// Contract 0.3.0.
    V0_3_0(v0_3_0::Plugin),
    /// Contract 0.4.0.
    V0_4_0(v0_4_0::Plugin),
}

impl Bindings {
    /// `configure`.
    pub fn configure(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<types::Plan, String>> {
        match self {
            Bindings::V0_1_0(p) => Ok(p
                .metrics_gateway_plugin_guest()
                .call_configure(store, config)?
                .map(Into::into)),
            Bindings::V0_2_0(p) => Ok(p
                .metrics_gateway_plugin_guest()
                .call_configure(store, config)?
                .map(Into::into)),
            Bindings::V0_3_0(p) => Ok(p
                .metrics_gateway_plugin_guest()
                .call_configure(store, config)?
                .map(Into::into)),
            Bindings::V0_4_0(p) => p
                .metrics_gateway_plugin_guest()
                .call_configure(store, config),
        }
    }

    /// `process`.
    pub fn process(
        &self,
        store: &mut Store<HostState>,
        input: &CycleInput<'_>,
    ) -> wasmtime::Result<Result<types::CycleOutput, String>> {
        match self {
            Bindings::V0_1_0(p) => Ok(p
                .metrics_gateway_plugin_guest()
                .call_process(store, &v0_1_0::cycle_input(input))?
                .map(Into::into)),
            Bindings::V0_2_0(p) => v0_2_0::process(p, store, input),
            Bindings::V0_3_0(p) => v0_3_0::process(p, store, input),
            Bindings::V0_4_0(p) => v0_4_0::process(p, store, input),
        }
    }

    /// `snapshot`.
    pub fn snapshot(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<u8>> {
        match self {
            Bindings::V0_1_0(p) => p.metrics_gateway_plugin_guest().call_snapshot(store),
            Bindings::V0_2_0(p) => p.metrics_gateway_plugin_guest().call_snapshot(store),
            Bindings::V0_3_0(p) => p.metrics_gateway_plugin_guest().call_snapshot(store),
            Bindings::V0_4_0(p) => p.metrics_gateway_plugin_guest().call_snapshot(store),
        }
    }

    /// `restore`.
    pub fn restore(
        &self,
        store: &mut Store<HostState>,
        state: &[u8],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bindings::V0_1_0(p) => p.metrics_gateway_plugin_guest().call_restore(store, state),
            Bindings::V0_2_0(p) => p.metrics_gateway_plugin_guest().call_restore(store, state),
            Bindings::V0_3_0(p) => p.metrics_gateway_plugin_guest().call_restore(store, state),
            Bindings::V0_4_0(p) => p.metrics_gateway_plugin_guest().call_restore(store, state),
        }
    }
}

/// Implements a contract version's host imports (its `log`) for [`HostState`].
macro_rules! host_imports {
    ($version:ident) => {
        impl $version::metrics_gateway::plugin::types::Host for HostState {}

        impl $version::metrics_gateway::plugin::host::Host for HostState {
            fn log(
                &mut self,
                level: $version::metrics_gateway::plugin::host::Level,
                message: String,
            ) {
                use $version::metrics_gateway::plugin::host::Level as L;
                let level = match level {
                    L::Trace => tracing::Level::TRACE,
                    L::Debug => tracing::Level::DEBUG,
                    L::Info => tracing::Level::INFO,
                    L::Warn => tracing::Level::WARN,
                    L::Error => tracing::Level::ERROR,
                };
                self.log(level, &message);
            }
        }
    };
}

host_imports!(v0_1_0);
host_imports!(v0_2_0);
host_imports!(v0_3_0);
host_imports!(v0_4_0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_selected_from_the_guest_export() {
        assert_eq!(
            version_from_exports(&["metrics-gateway:plugin/guest@0.1.0"]),
            Ok(ContractVersion::V0_1_0)
        );
        assert_eq!(
            version_from_exports(&["metrics-gateway:plugin/guest@0.2.0"]),
            Ok(ContractVersion::V0_2_0)
        );
        assert_eq!(
            version_from_exports(&["metrics-gateway:plugin/guest@0.3.0"]),
            Ok(ContractVersion::V0_3_0)
        );
        assert_eq!(
            version_from_exports(&["metrics-gateway:plugin/guest@0.4.0"]),
            Ok(ContractVersion::V0_4_0)
        );
        let err = version_from_exports(&[
            "metrics-gateway:plugin/guest-extra@0.1.0",
            "metrics-gateway:plugin/guest@0.9.0",
        ])
        .unwrap_err();
        assert_eq!(
            err,
            VersionError::Unsupported {
                found: "0.9.0".into(),
                supported: "0.1.0, 0.2.0, 0.3.0, 0.4.0".into()
            }
        );
        assert!(err.to_string().contains("0.9.0") && err.to_string().contains("0.1.0"));
        assert!(matches!(
            version_from_exports(&["metrics-gateway:plugin/guest"]),
            Err(VersionError::Unsupported { found, .. }) if found == "(unversioned)"
        ));
        assert!(matches!(
            version_from_exports(&[]),
            Err(VersionError::NotAPlugin { exports }) if exports == "nothing"
        ));
    }
}
