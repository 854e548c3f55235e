//! The configured plugins, run in config order every cycle, each with its own instance, state and
//! fault handling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::PluginError;
use super::input::{IdMap, InputState};
use super::instance::{Fault, Instance, Limits, Outcome};
use super::label_sets::LabelSets;
use super::output::{self, Accepted, Objects};
use super::plan::{Metric, MetricKey, MetricTarget, Plan, PlanRules, scope_mismatch};
use super::runtime::{LoadError, LoadedComponent, MAX_MEMORY_BYTES, PluginRuntime};
use super::wit::types;
use crate::config::{Config, PluginConfig};
use crate::samples::{Batch, CycleSamples, Series, Source};
use crate::sources::cluster::ClusterState;
use crate::sources::discovery::{ApiTable, ResourceInfo};
use crate::store::custom::{MetricState, ObjectResource, PluginMetrics, PublishedMetric};
use crate::telemetry::{
    PluginCallLabels, PluginDropLabels, PluginLabels, PluginOutcomeLabels, Telemetry,
};

/// Least cycle time between two snapshots of one instance whose last snapshot was large, ms. A
/// snapshot serializes a plugin's whole state (at 5,000 nodes `restarts` returns 300,000
/// histories, 0.5 s): taking such ones every cycle cost more than the plugins' `process` calls.
/// An instance always takes one after its first successful cycle; one restarted after a fault
/// resumes from state at most this old, which counters (a rate over a longer window) and
/// smoothing tolerate.
pub(crate) const SNAPSHOT_INTERVAL_MS: i64 = 60_000;

/// A snapshot smaller than this (bytes) is cheap: the next one is taken the next cycle.
pub(crate) const SMALL_SNAPSHOT_BYTES: usize = 64 * 1024;

/// The plugins of one config, loaded.
pub struct PluginSet {
    runtime: Arc<PluginRuntime>,
    plugins: Vec<Plugin>,
    /// Which plugin publishes each metric.
    owners: HashMap<MetricKey, Arc<str>>,
    /// The cluster's API resources, handed to plugins.
    api_resources: ApiResources,
}

/// The cluster's API resources as plugins get them, with a version bumped on every change.
#[derive(Debug, Clone)]
struct ApiResources {
    table: Arc<ApiTable>,
    list: Vec<types::ApiResource>,
    /// An instance sent version `v` gets the list again when it differs (0: none sent yet).
    version: u64,
}

impl Default for ApiResources {
    fn default() -> Self {
        let table = ApiTable::builtin();
        ApiResources {
            list: table.to_wit(),
            table: Arc::new(table),
            version: 1,
        }
    }
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

struct Plugin {
    name: Arc<str>,
    /// Loaded, or why not (for good: until the config changes).
    state: Result<Box<Running>, String>,
}

/// A loaded plugin: its component, limits and what survives its instances.
struct Running {
    component: Arc<LoadedComponent>,
    limits: Limits,
    max_output: usize,
    config_json: String,
    /// Module, config and limits: equal fingerprints mean the same running plugin.
    fingerprint: Fingerprint,
    /// What its plan is checked against (Prometheus backends, resource-metrics source).
    rules: PlanRules,
    /// Known once `configure` first succeeded; a new instance must return the same.
    configured: Option<Plan>,
    /// The plan in force: the configured one, or the last replan accepted.
    plan: Option<Plan>,
    /// A replan accepted this cycle, in force from the next.
    pending: Option<Plan>,
    live: Option<Live>,
    /// The previous instance was discarded after a fault.
    discarded: bool,
    /// The last `snapshot`, restored into the next instance.
    snapshot: Vec<u8>,
    /// Cycle time (ms) of the live instance's last `snapshot`; `None` until it took one.
    snapshot_at: Option<i64>,
    /// The plugin's derived series ids → host series.
    derived: IdMap<Arc<Series>>,
    /// The label sets of its published values.
    label_sets: LabelSets,
    /// Why the plugin is not running now.
    error: Option<String>,
    telemetry: PluginTelemetry,
}

struct Live {
    instance: Instance,
    input: InputState,
    /// The version of the API resources it was sent; 0: none yet.
    api_resources: u64,
}

/// One cycle's result, with the derived samples (for `plugin test`).
pub(crate) struct CycleResult {
    pub metrics: PluginMetrics,
    pub derived: Vec<(Arc<str>, Arc<Batch>)>,
}

/// What makes a plugin instance what it is: the module's sha256, its config and its limits. A
/// reload keeps a plugin's instance and state exactly when its fingerprint is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A fingerprint from raw bytes (tests).
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }
}

/// A plugin's entry read and checked (module readable, sha256 matching, limits usable), not yet
/// compiled.
#[derive(Debug)]
pub struct Checked {
    name: Arc<str>,
    file: PathBuf,
    bytes: Vec<u8>,
    config_json: String,
    limits: Limits,
    max_output: usize,
    fingerprint: Fingerprint,
    rules: PlanRules,
}

impl Checked {
    /// The plugin's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// A plugin compiled and configured for a reload, not yet in a set.
pub struct FreshPlugin(Plugin);

impl FreshPlugin {
    /// The metrics its plan publishes (`pods/NAME`, `external/NAME`, ...).
    pub fn published(&self) -> Vec<String> {
        metric_names(self.0.state.as_ref().ok().and_then(|r| r.plan.as_ref()))
    }
}

fn metric_names(plan: Option<&Plan>) -> Vec<String> {
    plan.iter()
        .flat_map(|p| &p.metrics)
        .map(|m| match m.key() {
            MetricKey::Custom(resource, name) => format!("{resource}/{name}"),
            MetricKey::External(name) => format!("external/{name}"),
            MetricKey::Resource(resource, name) => format!("metrics.k8s.io/{resource}/{name}"),
        })
        .collect()
}

impl std::fmt::Debug for FreshPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FreshPlugin").field(&self.0.name).finish()
    }
}

/// A plugin from any source (a `[[plugins]]` entry, a `MetricsPlugin` resource), its module
/// already read: what [`check_entry`] turns into a [`Checked`].
#[derive(Debug, Clone)]
pub struct PluginEntry {
    /// Unique name.
    pub name: Arc<str>,
    /// Where the module came from, as errors name it (a path, a ConfigMap key, a URL).
    pub origin: PathBuf,
    /// The module's bytes.
    pub bytes: Vec<u8>,
    /// Expected sha256 of the module, hex.
    pub sha256: Option<String>,
    /// Deadline of one call, ms.
    pub timeout_ms: u32,
    /// Memory limit of one instance, MiB.
    pub memory_mib: u32,
    /// Most values accepted from one call.
    pub max_output: u32,
    /// The plugin's own configuration, as JSON.
    pub config_json: String,
}

/// Reads `pc`'s module (relative to `base_dir`), checks its sha256 and limits, and computes its
/// fingerprint; its plan will be checked against `rules`.
pub fn check(
    pc: &PluginConfig,
    base_dir: &Path,
    rules: &PlanRules,
) -> Result<Checked, PluginError> {
    let name: Arc<str> = pc.name.get_ref().as_str().into();
    let file = base_dir.join(pc.file.get_ref());
    let bytes = std::fs::read(&file).map_err(|source| PluginError::Read {
        plugin: name.to_string(),
        path: file.clone(),
        source,
    })?;
    let config_json = serde_json::to_string(&pc.config).map_err(|e| PluginError::Config {
        plugin: name.to_string(),
        message: format!("its config table cannot be passed as JSON: {e}"),
    })?;
    check_entry(
        PluginEntry {
            name,
            origin: file,
            bytes,
            sha256: pc.sha256.as_ref().map(|s| s.get_ref().clone()),
            timeout_ms: pc.timeout_ms.get(),
            memory_mib: pc.memory_mib.get(),
            max_output: pc.max_output.get(),
            config_json,
        },
        rules,
    )
}

/// Checks an entry's sha256 and limits and computes its fingerprint; its plan will be checked
/// against `rules`.
pub fn check_entry(entry: PluginEntry, rules: &PlanRules) -> Result<Checked, PluginError> {
    let PluginEntry {
        name,
        origin: file,
        bytes,
        sha256,
        timeout_ms,
        memory_mib,
        max_output,
        config_json,
    } = entry;
    let module_sha = Sha256::digest(&bytes);
    if let Some(expected) = &sha256 {
        let actual = hex::encode(module_sha);
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(PluginError::Sha256Mismatch {
                plugin: name.to_string(),
                path: file,
                expected: expected.clone(),
                actual,
            });
        }
    }
    let memory_bytes = memory_mib as usize * (1 << 20);
    if memory_bytes > MAX_MEMORY_BYTES {
        return Err(PluginError::Config {
            plugin: name.to_string(),
            message: format!(
                "memory_mib = {memory_mib} exceeds the {} MiB a plugin can address",
                MAX_MEMORY_BYTES >> 20
            ),
        });
    }
    let limits = Limits {
        timeout_ms: u64::from(timeout_ms),
        memory_bytes,
    };
    let max_output = max_output as usize;
    let mut hasher = Sha256::new();
    hasher.update(module_sha);
    hasher.update(limits.timeout_ms.to_le_bytes());
    hasher.update((limits.memory_bytes as u64).to_le_bytes());
    hasher.update((max_output as u64).to_le_bytes());
    hasher.update(config_json.as_bytes());
    Ok(Checked {
        name,
        file,
        bytes,
        config_json,
        limits,
        max_output,
        fingerprint: Fingerprint(hasher.finalize().into()),
        rules: rules.clone(),
    })
}

impl PluginSet {
    /// Loads, compiles (or reads from the cache) and configures every plugin of `config`. A
    /// plugin that fails is left out and reported by [`PluginSet::errors`]; when it got as far
    /// as `configure`, it is retried every cycle. Slow on a cache miss: call from a blocking
    /// thread.
    pub fn load(runtime: &Arc<PluginRuntime>, config: &Config) -> PluginSet {
        let mut set = PluginSet {
            runtime: runtime.clone(),
            plugins: Vec::with_capacity(config.plugins.len()),
            owners: HashMap::new(),
            api_resources: ApiResources::default(),
        };
        let rules = PlanRules::of(config);
        for pc in &config.plugins {
            set.add(pc, &config.base_dir, &rules);
        }
        set
    }

    fn add(&mut self, pc: &PluginConfig, base_dir: &Path, rules: &PlanRules) {
        let name: Arc<str> = pc.name.get_ref().as_str().into();
        let file = base_dir.join(pc.file.get_ref());
        let state = if self.plugins.iter().any(|p| p.name == name) {
            Err(PluginError::Config {
                plugin: name.to_string(),
                message: "another plugin has the same name".into(),
            })
        } else {
            check(pc, base_dir, rules).and_then(|checked| self.prepare(checked))
        };
        let state = state.map_err(|e| {
            tracing::error!(plugin = &*name, "{e}");
            e.to_string()
        });
        let mut plugin = Plugin { name, state };
        if let Ok(running) = &mut plugin.state
            && let Err(message) = start(
                &plugin.name,
                running,
                &mut self.owners,
                &self.api_resources.table,
            )
        {
            let e = PluginError::Configure {
                plugin: plugin.name.to_string(),
                path: file,
                message,
            };
            tracing::error!(plugin = &*plugin.name, "{e}; retrying every cycle");
            running.error = Some(e.to_string());
        }
        self.plugins.push(plugin);
    }

    fn prepare(&self, checked: Checked) -> Result<Box<Running>, PluginError> {
        let component = self.runtime.load(&checked.bytes).map_err(|e| match e {
            LoadError::Version(error) => PluginError::Version {
                plugin: checked.name.to_string(),
                path: checked.file.clone(),
                error,
            },
            other => PluginError::Compile {
                plugin: checked.name.to_string(),
                path: checked.file.clone(),
                message: other.to_string(),
            },
        })?;
        Ok(Box::new(Running {
            component,
            limits: checked.limits,
            max_output: checked.max_output,
            config_json: checked.config_json,
            fingerprint: checked.fingerprint,
            configured: None,
            rules: checked.rules,
            plan: None,
            pending: None,
            live: None,
            discarded: false,
            snapshot: Vec::new(),
            snapshot_at: None,
            derived: IdMap::default(),
            label_sets: LabelSets::default(),
            error: None,
            telemetry: PluginTelemetry {
                telemetry: self.runtime.telemetry().clone(),
                plugin: checked.name.to_string(),
            },
        }))
    }

    /// Compiles (or reads from the artifact cache) and configures a plugin outside any set, for
    /// a reload: any failure, including `configure`, is an error.
    pub fn start_fresh(
        runtime: &Arc<PluginRuntime>,
        checked: Checked,
    ) -> Result<FreshPlugin, PluginError> {
        let scratch = PluginSet::empty(runtime);
        let name = checked.name.clone();
        let file = checked.file.clone();
        let mut running = scratch.prepare(checked)?;
        let table = scratch.api_resources.table.clone();
        start(&name, &mut running, &mut HashMap::new(), &table).map_err(|message| {
            PluginError::Configure {
                plugin: name.to_string(),
                path: file,
                message,
            }
        })?;
        Ok(FreshPlugin(Plugin {
            name,
            state: Ok(running),
        }))
    }

    /// A set without plugins.
    pub fn empty(runtime: &Arc<PluginRuntime>) -> PluginSet {
        PluginSet {
            runtime: runtime.clone(),
            plugins: Vec::new(),
            owners: HashMap::new(),
            api_resources: ApiResources::default(),
        }
    }

    /// Replaces the cluster's API resources (the built-in table until called): when they
    /// changed, every instance gets the new list in its next cycle, and custom metrics are
    /// resolved against them from this cycle on.
    pub fn set_api_table(&mut self, table: Arc<ApiTable>) {
        let current = &self.api_resources.table;
        if Arc::ptr_eq(current, &table) || **current == *table {
            return;
        }
        self.api_resources.list = table.to_wit();
        self.api_resources.table = table;
        self.api_resources.version += 1;
    }

    /// The API resources the set resolves custom metrics against.
    pub fn api_table(&self) -> &Arc<ApiTable> {
        &self.api_resources.table
    }

    /// The resources of the set's custom metrics that the table lists.
    pub fn described_resources(&self) -> Vec<Arc<ResourceInfo>> {
        let mut out: Vec<Arc<ResourceInfo>> = Vec::new();
        for (_, plan) in self.plans() {
            for metric in &plan.metrics {
                if let MetricTarget::Custom(resource) = &metric.target
                    && let Some(info) = self.api_resources.table.get(resource)
                    && !out.iter().any(|o| o.resource == *resource)
                {
                    out.push(info.clone());
                }
            }
        }
        out
    }

    /// The fingerprint of every loaded plugin (plugins that failed to load have none).
    pub fn fingerprints(&self) -> HashMap<String, Fingerprint> {
        self.plugins
            .iter()
            .filter_map(|p| Some((p.name.to_string(), p.state.as_ref().ok()?.fingerprint)))
            .collect()
    }

    /// Which plugin of `entries` (kept from `old` or fresh) publishes each metric; the error
    /// names the later of two plugins publishing the same metric.
    pub fn owners(
        old: Option<&PluginSet>,
        entries: &[(Arc<str>, Option<FreshPlugin>)],
    ) -> Result<HashMap<MetricKey, Arc<str>>, PluginError> {
        let mut owners: HashMap<MetricKey, Arc<str>> = HashMap::new();
        for (name, fresh) in entries {
            let plan = match fresh {
                Some(fresh) => fresh.0.state.as_ref().ok().and_then(|r| r.plan.as_ref()),
                None => old.and_then(|o| o.plan_of(name)),
            };
            for metric in plan.iter().flat_map(|p| &p.metrics) {
                if let Some(other) = owners.insert(metric.key(), name.clone()) {
                    return Err(PluginError::Config {
                        plugin: name.to_string(),
                        message: format!("{} is already published by plugin {other}", metric.key()),
                    });
                }
            }
        }
        Ok(owners)
    }

    fn plan_of(&self, name: &str) -> Option<&Plan> {
        self.plugins
            .iter()
            .find(|p| &*p.name == name)?
            .state
            .as_ref()
            .ok()?
            .plan
            .as_ref()
    }

    /// The metrics plugin `name` of this set publishes.
    pub fn published(&self, name: &str) -> Vec<String> {
        metric_names(self.plan_of(name))
    }

    /// Checks the plans of the plugins of `entries` kept from `old` (`None` entries) against
    /// a new config's `rules`: the configured plan, the plan in force and a pending replan must
    /// all pass (e.g. every Prometheus backend they read is still configured). The error names
    /// the first plugin that fails.
    pub fn check_kept(
        old: Option<&PluginSet>,
        entries: &[(Arc<str>, Option<FreshPlugin>)],
        rules: &PlanRules,
    ) -> Result<(), PluginError> {
        let Some(old) = old else { return Ok(()) };
        for (name, _) in entries.iter().filter(|(_, fresh)| fresh.is_none()) {
            let Some(Ok(running)) = old
                .plugins
                .iter()
                .find(|p| p.name == *name)
                .map(|p| p.state.as_ref())
            else {
                continue;
            };
            let plans = [&running.configured, &running.plan, &running.pending];
            for plan in plans.into_iter().flatten() {
                rules.check(plan).map_err(|message| PluginError::Config {
                    plugin: name.to_string(),
                    message: format!(
                        "the running plugin's plan no longer fits the new config: {message}"
                    ),
                })?;
            }
        }
        Ok(())
    }

    /// The set of a new config, in its order: each entry is a plugin kept from `old` with its
    /// instance and state (`None`) or a fresh one. Kept plugins check their replans against
    /// the new config's `rules` from now on. Plugins of `old` not kept are dropped. When two
    /// plugins would publish the same metric, or a kept plugin's plan fails `rules`
    /// ([`PluginSet::check_kept`]), nothing changes and `old` is handed back.
    #[allow(clippy::result_large_err)]
    pub fn rebuild(
        old: Option<PluginSet>,
        runtime: &Arc<PluginRuntime>,
        entries: Vec<(Arc<str>, Option<FreshPlugin>)>,
        rules: &PlanRules,
    ) -> Result<PluginSet, (Option<PluginSet>, PluginError)> {
        if let Err(error) = PluginSet::check_kept(old.as_ref(), &entries, rules) {
            return Err((old, error));
        }
        let owners = match PluginSet::owners(old.as_ref(), &entries) {
            Ok(owners) => owners,
            Err(error) => return Err((old, error)),
        };
        let api_resources = old
            .as_ref()
            .map(|o| o.api_resources.clone())
            .unwrap_or_default();
        let mut previous: HashMap<Arc<str>, Plugin> = old
            .map(|o| o.plugins.into_iter().map(|p| (p.name.clone(), p)).collect())
            .unwrap_or_default();
        let mut set = PluginSet::empty(runtime);
        set.owners = owners;
        set.api_resources = api_resources;
        for (name, fresh) in entries {
            let plugin = match fresh {
                Some(fresh) => fresh.0,
                None => {
                    let mut kept = previous.remove(&name).unwrap_or(Plugin {
                        name: name.clone(),
                        state: Err("not loaded".into()),
                    });
                    if let Ok(running) = &mut kept.state {
                        running.rules = rules.clone();
                    }
                    kept
                }
            };
            set.plugins.push(plugin);
        }
        Ok(set)
    }

    /// The plugins not running now, with why: load failures, and plugins whose last
    /// instantiation, configuration or cycle failed.
    pub fn errors(&self) -> Vec<(String, String)> {
        self.plugins
            .iter()
            .filter_map(|p| match &p.state {
                Err(e) => Some((p.name.to_string(), e.clone())),
                Ok(r) => r.error.clone().map(|e| (p.name.to_string(), e)),
            })
            .collect()
    }

    /// Number of plugins configured (running or not).
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// No plugins configured.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plans of plugins configured at least once, in config order.
    pub(crate) fn plans(&self) -> impl Iterator<Item = (&str, &Plan)> {
        self.plugins.iter().filter_map(|p| {
            let plan = p.state.as_ref().ok()?.plan.as_ref()?;
            Some((&*p.name, plan))
        })
    }

    /// Runs one cycle: every plugin in config order over `samples` (plus the derived series of
    /// the plugins before it), objects checked against `cluster`. Every metric of every
    /// configured plugin is in the result, with values or as failed.
    pub fn run_cycle(
        &mut self,
        samples: &CycleSamples,
        cluster: &ClusterState,
        now_ms: i64,
        interval_ms: u64,
    ) -> PluginMetrics {
        self.cycle(samples, Objects::Cluster(cluster), now_ms, interval_ms)
            .metrics
    }

    pub(crate) fn cycle(
        &mut self,
        samples: &CycleSamples,
        objects: Objects<'_>,
        now_ms: i64,
        interval_ms: u64,
    ) -> CycleResult {
        let mut work = samples.clone();
        let mut result = CycleResult {
            metrics: PluginMetrics::default(),
            derived: Vec::new(),
        };
        let default_max_age_ms = i64::try_from(interval_ms.saturating_mul(3)).unwrap_or(i64::MAX);
        for plugin in &mut self.plugins {
            let Ok(running) = &mut plugin.state else {
                continue;
            };
            let outcome = run_one(
                &plugin.name,
                running,
                &mut self.owners,
                &self.api_resources,
                &work,
                objects,
                now_ms,
                interval_ms,
            );
            let mut accepted = match outcome {
                Ok(accepted) => {
                    running.error = None;
                    Some(accepted)
                }
                Err(message) => {
                    running.error = Some(message);
                    None
                }
            };
            let Some(plan) = &running.plan else { continue };
            let failed: Option<Arc<str>> = running
                .error
                .as_ref()
                .map(|e| format!("plugin {}: {e}", plugin.name).into());
            for (i, metric) in plan.metrics.iter().enumerate() {
                let max_age_ms = match metric.max_age_ms {
                    0 => default_max_age_ms,
                    ms => i64::try_from(ms).unwrap_or(i64::MAX),
                };
                match &metric.target {
                    MetricTarget::Custom(resource) => {
                        let values = accepted
                            .as_mut()
                            .map(|a| std::mem::take(&mut a.custom[i]))
                            .unwrap_or_default();
                        let described = self.api_resources.table.get(resource).cloned();
                        // `plugin test` fixtures check neither objects nor resources.
                        let resolved = match objects {
                            Objects::Cluster(_) => {
                                resolve(&self.api_resources.table, metric, resource)
                            }
                            Objects::Unchecked => Ok(()),
                        };
                        let state = match resolved {
                            Err(reason) => MetricState::Unresolved(reason.into()),
                            Ok(()) => metric_state(&failed, accepted.as_ref(), metric, values),
                        };
                        let mut served = published(metric, &plugin.name, max_age_ms, state);
                        served.described = described;
                        result
                            .metrics
                            .custom
                            .insert((resource.clone(), metric.name.clone()), served);
                    }
                    MetricTarget::External => {
                        let values = accepted
                            .as_mut()
                            .map(|a| std::mem::take(&mut a.external[i]))
                            .unwrap_or_default();
                        let state = metric_state(&failed, accepted.as_ref(), metric, values);
                        result.metrics.external.insert(
                            metric.name.clone(),
                            published(metric, &plugin.name, max_age_ms, state),
                        );
                    }
                    MetricTarget::Resource(resource) => {
                        let values = accepted
                            .as_mut()
                            .map(|a| std::mem::take(&mut a.resource[i]))
                            .unwrap_or_default();
                        let state = metric_state(&failed, accepted.as_ref(), metric, values);
                        result.metrics.resource.insert(
                            (resource.clone(), metric.name.clone()),
                            published(metric, &plugin.name, max_age_ms, state),
                        );
                    }
                }
            }
            if let Some(accepted) = accepted
                && !accepted.derived.is_empty()
            {
                let batch = Arc::new(accepted.derived);
                work.add(Source::Derived, batch.clone());
                result.derived.push((plugin.name.clone(), batch));
            }
        }
        result
    }
}

/// Whether a custom metric's resource can be served: the table lists it, with the scope the
/// metric declares.
fn resolve(table: &ApiTable, metric: &Metric, resource: &ObjectResource) -> Result<(), String> {
    match table.get(resource) {
        None if table.is_discovered() => Err(format!(
            "the cluster's API discovery does not list the resource {resource}"
        )),
        None => Err(format!(
            "the resource {resource} is not known until the cluster's API discovery answers"
        )),
        Some(info) if info.namespaced != metric.namespaced => {
            Err(scope_mismatch(&metric.name, metric.namespaced, resource))
        }
        Some(_) => Ok(()),
    }
}

/// The served form of `metric`, published by `plugin`.
fn published<T>(
    metric: &Metric,
    plugin: &Arc<str>,
    max_age_ms: i64,
    state: MetricState<T>,
) -> PublishedMetric<T> {
    PublishedMetric {
        name: metric.name.clone(),
        plugin: plugin.clone(),
        namespaced: metric.namespaced,
        max_age_ms,
        described: None,
        state,
    }
}

/// `metric`'s state: failed with its plugin, unavailable when the plugin said it could not
/// compute it, its values otherwise.
fn metric_state<T>(
    failed: &Option<Arc<str>>,
    accepted: Option<&Accepted>,
    metric: &Metric,
    values: Vec<T>,
) -> MetricState<T> {
    if let Some(message) = failed {
        return MetricState::Failed(message.clone());
    }
    match accepted.and_then(|a| a.failure(&metric.name)) {
        Some(message) => MetricState::Unavailable(message.clone()),
        None => MetricState::Values(values),
    }
}

/// Runs one plugin's cycle: (re)starts its instance when needed, builds its input, calls
/// `process`, validates the output and takes a snapshot when one is due (every cycle while
/// they are small, else every [`SNAPSHOT_INTERVAL_MS`]).
#[allow(clippy::too_many_arguments)]
fn run_one(
    name: &Arc<str>,
    r: &mut Running,
    owners: &mut HashMap<MetricKey, Arc<str>>,
    api_resources: &ApiResources,
    samples: &CycleSamples,
    objects: Objects<'_>,
    now_ms: i64,
    interval_ms: u64,
) -> Result<Accepted, String> {
    start(name, r, owners, &api_resources.table)?;
    if let Some(plan) = r.pending.take()
        && let Some(live) = &mut r.live
    {
        // A replan: every series is announced again, under the new input indices.
        live.input = InputState::default();
        r.plan = Some(plan);
    }
    let (Some(plan), Some(live)) = (&r.plan, &mut r.live) else {
        return Err("not configured".into());
    };
    let mut input = live.input.build(&plan.inputs, samples, now_ms, interval_ms);
    if live.api_resources != api_resources.version || live.api_resources == 0 {
        input.api_resources = Some(&api_resources.list);
        live.api_resources = api_resources.version.max(1);
    }
    let started = Instant::now();
    let called = live.instance.call(|b, s| b.process(s, &input));
    let elapsed = started.elapsed();
    drop(input);
    let result = match called {
        Err(fault) => Err(fault),
        Ok(Err(message)) => Ok(Err(format!("process returned an error: {message}"))),
        Ok(Ok(output)) => Ok(output::validate(
            output,
            plan,
            &mut r.derived,
            &mut r.label_sets,
            objects,
            r.max_output,
        )),
    };
    let accepted = match result {
        Err(fault) => {
            r.telemetry.call("process", fault.outcome, elapsed);
            return Err(discard(name, r, "process", fault));
        }
        Ok(Err(message)) => {
            r.telemetry.call("process", Outcome::Error, elapsed);
            tracing::warn!(plugin = &**name, "plugin cycle failed: {message}");
            return Err(message);
        }
        Ok(Ok(accepted)) => {
            r.telemetry.call("process", Outcome::Ok, elapsed);
            accepted
        }
    };
    let due = r.snapshot_at.is_none_or(|at| {
        r.snapshot.len() < SMALL_SNAPSHOT_BYTES || now_ms.saturating_sub(at) >= SNAPSHOT_INTERVAL_MS
    });
    if due {
        let snapshot = r.timed("snapshot", |i| i.call(|b, s| b.snapshot(s)));
        match snapshot {
            Ok(state) => {
                r.snapshot = state;
                r.snapshot_at = Some(now_ms);
            }
            Err(fault) => return Err(discard(name, r, "snapshot", fault)),
        }
    }
    let mut accepted = accepted;
    if let Some(replan) = accepted.replan.take() {
        accept_replan(name, r, owners, &api_resources.table, replan);
    }
    r.telemetry.published(accepted.published());
    for (reason, count, example) in accepted.drops.iter() {
        r.telemetry.dropped(reason.as_str(), count);
        tracing::warn!(
            plugin = &**name,
            reason = reason.as_str(),
            count,
            example,
            "dropped plugin output values"
        );
    }
    Ok(accepted)
}

/// Validates a replan and, unless it is invalid or takes another plugin's metric, claims its
/// metrics and puts it in force from the next cycle. A refused replan is counted and logged; the
/// plan in force stays.
fn accept_replan(
    name: &Arc<str>,
    r: &mut Running,
    owners: &mut HashMap<MetricKey, Arc<str>>,
    table: &ApiTable,
    replan: types::Plan,
) {
    let checked = Plan::validate(replan)
        .and_then(|plan| r.rules.check(&plan).map(|()| plan))
        .and_then(|plan| check_resources(name, &plan, table).map(|()| plan))
        .and_then(|plan| claim(name, owners, &plan).map(|()| plan));
    match checked {
        Ok(plan) => {
            tracing::info!(
                plugin = &**name,
                inputs = plan.inputs.len(),
                metrics = plan.metrics.len(),
                "plugin replanned; the new plan is in force from the next cycle"
            );
            r.pending = Some(plan);
        }
        Err(message) => {
            r.telemetry.replan_refused();
            tracing::warn!(
                plugin = &**name,
                "plugin replan refused, keeping its plan: {message}"
            );
        }
    }
}

/// Makes `name` the owner of `plan`'s metrics (and of no others), unless one is another
/// plugin's.
fn claim(
    name: &Arc<str>,
    owners: &mut HashMap<MetricKey, Arc<str>>,
    plan: &Plan,
) -> Result<(), String> {
    for metric in &plan.metrics {
        if let Some(other) = owners.get(&metric.key())
            && other != name
        {
            return Err(format!(
                "{} is already published by plugin {other}",
                metric.key()
            ));
        }
    }
    owners.retain(|_, owner| owner != name);
    for metric in &plan.metrics {
        owners.insert(metric.key(), name.clone());
    }
    Ok(())
}

/// Discards the instance after a fault; the next cycle starts a new one.
fn discard(name: &str, r: &mut Running, call: &str, fault: Fault) -> String {
    r.live = None;
    r.discarded = true;
    let message = format!("{call} {}", fault.message);
    tracing::warn!(
        plugin = name,
        outcome = fault.outcome.as_str(),
        "plugin instance discarded: {message}"
    );
    message
}

/// Checks a plan's custom metrics against the API resources (scope), warning about resources the
/// cluster's discovery does not list.
fn check_resources(name: &str, plan: &Plan, table: &ApiTable) -> Result<(), String> {
    let unknown = plan.check_resources(table)?;
    if table.is_discovered() {
        for resource in unknown {
            tracing::warn!(
                plugin = name,
                resource = %resource,
                "a custom metric describes a resource the cluster's API discovery does not list; \
                 its values are served once it does"
            );
        }
    }
    Ok(())
}

/// Makes sure the plugin has a configured, restored instance.
fn start(
    name: &Arc<str>,
    r: &mut Running,
    owners: &mut HashMap<MetricKey, Arc<str>>,
    table: &ApiTable,
) -> Result<(), String> {
    if r.live.is_some() {
        return Ok(());
    }
    if std::mem::take(&mut r.discarded) {
        r.telemetry.restart();
    }
    let mut instance = Instance::new(&r.component.pre, name.clone(), r.limits)
        .map_err(|f| format!("instantiating: {}", f.message))?;
    let started = Instant::now();
    let configured = instance.call(|b, s| b.configure(s, &r.config_json));
    let elapsed = started.elapsed();
    let plan = match configured {
        Err(fault) => {
            r.telemetry.call("configure", fault.outcome, elapsed);
            return Err(format!("configure {}", fault.message));
        }
        Ok(Err(message)) => {
            r.telemetry.call("configure", Outcome::Error, elapsed);
            return Err(format!("configure returned an error: {message}"));
        }
        Ok(Ok(plan)) => {
            r.telemetry.call("configure", Outcome::Ok, elapsed);
            plan
        }
    };
    let plan = Plan::validate(plan)
        .and_then(|p| r.rules.check(&p).map(|()| p))
        .and_then(|p| check_resources(name, &p, table).map(|()| p))
        .map_err(|e| format!("invalid plan: {e}"))?;
    match &r.configured {
        Some(old) if *old != plan => {
            return Err("a new instance returned a different plan for the same config".into());
        }
        // A new instance starts from its configured plan, even after a replan: it replans
        // again if it wants to.
        Some(_) if r.plan.as_ref() == Some(&plan) => {}
        _ => {
            claim(name, owners, &plan)?;
            r.configured = Some(plan.clone());
            r.plan = Some(plan);
        }
    }
    r.pending = None;
    if !r.snapshot.is_empty() {
        let started = Instant::now();
        let restored = instance.call(|b, s| b.restore(s, &r.snapshot));
        let elapsed = started.elapsed();
        match restored {
            Err(fault) => {
                r.telemetry.call("restore", fault.outcome, elapsed);
                // The snapshot may be what makes it fail: start afresh next time.
                r.snapshot.clear();
                return Err(format!("restore {}", fault.message));
            }
            Ok(Err(message)) => {
                r.telemetry.call("restore", Outcome::Error, elapsed);
                tracing::warn!(
                    plugin = &**name,
                    "plugin refused its snapshot ({message}); continuing without its state"
                );
                r.snapshot.clear();
            }
            Ok(Ok(())) => r.telemetry.call("restore", Outcome::Ok, elapsed),
        }
    }
    r.snapshot_at = None;
    r.live = Some(Live {
        instance,
        input: InputState::default(),
        api_resources: 0,
    });
    Ok(())
}

impl Running {
    /// Calls into the live instance, recording the call's outcome and duration.
    fn timed<R>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&mut Instance) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let Some(live) = &mut self.live else {
            return Err(Fault {
                outcome: Outcome::Trap,
                message: "has no instance".into(),
            });
        };
        let started = Instant::now();
        let result = f(&mut live.instance);
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(fault) => fault.outcome,
        };
        self.telemetry.call(call, outcome, started.elapsed());
        result
    }
}

/// A plugin's self-metrics.
struct PluginTelemetry {
    telemetry: Telemetry,
    plugin: String,
}

impl PluginTelemetry {
    fn call(&self, call: &'static str, outcome: Outcome, elapsed: std::time::Duration) {
        self.telemetry
            .plugin_calls
            .get_or_create(&PluginOutcomeLabels {
                plugin: self.plugin.clone(),
                call,
                outcome: outcome.as_str(),
            })
            .inc();
        self.telemetry
            .plugin_call_duration
            .get_or_create(&PluginCallLabels {
                plugin: self.plugin.clone(),
                call,
            })
            .observe(elapsed.as_secs_f64());
    }

    fn published(&self, n: u64) {
        self.telemetry
            .plugin_values_published
            .get_or_create(&PluginLabels {
                plugin: self.plugin.clone(),
            })
            .inc_by(n);
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        self.telemetry
            .plugin_values_dropped
            .get_or_create(&PluginDropLabels {
                plugin: self.plugin.clone(),
                reason,
            })
            .inc_by(n);
    }

    fn replan_refused(&self) {
        self.telemetry
            .plugin_replans_refused
            .get_or_create(&PluginLabels {
                plugin: self.plugin.clone(),
            })
            .inc();
    }

    fn restart(&self) {
        self.telemetry
            .plugin_restarts
            .get_or_create(&PluginLabels {
                plugin: self.plugin.clone(),
            })
            .inc();
    }
}
