//! Live reload: one path from a config source to a new running plugin set.
//!
//! [`prepare`] reads, parses and validates the file, checks every plugin's module, and compiles
//! and configures every plugin whose fingerprint (module sha256, config, limits) changed: a
//! [`Candidate`]. [`Reloader::reload`] then swaps it in between collection cycles (unchanged
//! plugins keep their instance and state), applies the reloadable settings, reports what needs
//! a restart, and records the outcome in logs and self-metrics. `[[prometheus]]` reloads too:
//! [`prepare`] sets up the new backends (unchanged ones are shared with the running source),
//! and the swap installs them with the plugins, refusing the config when a kept plugin reads
//! a backend it removes. `check-config` runs the same
//! [`prepare`] offline. Triggers (file watch, SIGHUP, `POST /-/reload`) go through
//! [`trigger::ReloadHandle`], which runs one reload at a time and coalesces the rest.

pub mod diff;
pub mod resources;
pub mod trigger;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::clock::Clock;
use crate::config::{self, Config, ConfigError, PluginConfig, ResourceSource};
use crate::pipeline::Collector;
use crate::plugins::plan::PlanRules;
use crate::plugins::set::{self, Fingerprint, FreshPlugin};
use crate::plugins::{PluginError, PluginRuntime, PluginSet};
use crate::sources::prometheus::PrometheusSource;
use crate::sources::prometheus::client::SetupError;
use crate::telemetry::{PluginLabels, ReloadLabels, Telemetry};
use diff::{PluginChanges, SettingChanges};
use resources::{ResourceBatch, ResourceOutcomes, ResourcePlugin, RunningResource};

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The config file changed on disk.
    File,
    /// The process received SIGHUP.
    Sighup,
    /// `POST /-/reload`.
    Http,
    /// A `MetricsPlugin` resource changed.
    Resource,
}

impl Trigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Sighup => "sighup",
            Trigger::Http => "http",
            Trigger::Resource => "resource",
        }
    }
}

/// Why a new config was refused (the running config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read, is not valid TOML or does not match the schema.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin cannot be loaded or configured; located at its `[[plugins]]` entry.
    #[error("{}:{line}:{column}: {source}", path.display())]
    Plugin {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the offending key.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The plugin.
        plugin: String,
        /// What failed.
        #[source]
        source: Box<PluginError>,
    },
    /// A `[[prometheus]]` backend cannot be set up (bad URL, CA, client certificate, header,
    /// unreadable credential file); located at its entry.
    #[error("{}:{line}:{column}: {source}", path.display())]
    Backend {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the entry's name.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What failed, naming the backend.
        #[source]
        source: SetupError,
    },
    /// The new config changes `metrics.resource_source`, which takes a restart.
    #[error(
        "{}: metrics.resource_source changed from \"{}\" to \"{}\": where metrics.k8s.io comes from cannot change by live reload; restart the gateway to switch (the running config keeps serving)",
        path.display(), from.as_str(), to.as_str()
    )]
    ResourceSource {
        /// The config file.
        path: PathBuf,
        /// The running source.
        from: ResourceSource,
        /// The new config's.
        to: ResourceSource,
    },
    /// The plugin runtime could not be created.
    #[error("{0}")]
    Runtime(#[source] PluginError),
    /// The reload task itself failed (a bug).
    #[error("reload task failed: {0}")]
    Internal(String),
}

/// A new config, validated, with its plugins ready to install.
#[derive(Debug)]
pub struct Candidate {
    /// The parsed config.
    pub config: Config,
    /// Its plugins in order: fresh ones, or `None` to keep the running instance.
    pub entries: Vec<(Arc<str>, Option<FreshPlugin>)>,
    /// Every plugin's fingerprint, in order.
    pub fingerprints: Vec<(String, Fingerprint)>,
    /// The Prometheus backends of the config (`None` without any).
    pub prometheus: Option<Arc<PrometheusSource>>,
    path: PathBuf,
    text: String,
}

impl Candidate {
    /// `error` of plugin `name`, located at the most precise key of its entry.
    fn locate(&self, name: &str, error: PluginError) -> ReloadError {
        locate(&self.path, &self.text, &self.config, name, error)
    }
}

fn locate(path: &Path, text: &str, config: &Config, name: &str, error: PluginError) -> ReloadError {
    let entry = config.plugins.iter().find(|p| p.name.get_ref() == name);
    let offset = entry.map(|pc| span_of(pc, &error)).unwrap_or(0);
    let (line, column) = config::line_column(text, offset);
    ReloadError::Plugin {
        path: path.to_path_buf(),
        line,
        column,
        plugin: name.to_string(),
        source: Box::new(error),
    }
}

/// Where in a `[[plugins]]` entry an error points: the sha256 for a mismatch, the file for
/// read and compile errors, else the name.
fn span_of(pc: &PluginConfig, error: &PluginError) -> usize {
    match error {
        PluginError::Sha256Mismatch { .. } => pc
            .sha256
            .as_ref()
            .map(|s| s.span().start)
            .unwrap_or(pc.name.span().start),
        PluginError::Read { .. } | PluginError::Compile { .. } | PluginError::Version { .. } => {
            pc.file.span().start
        }
        _ => pc.name.span().start,
    }
}

/// The one validation path, for reloads and `check-config`: reads and validates `path`, sets
/// up its Prometheus backends (sharing those of `backends` — the running source — whose entry
/// is unchanged; the source's self-metrics go to `telemetry`), checks every plugin's module,
/// and compiles (or reads from the artifact cache) and configures every plugin whose
/// fingerprint differs from `running`'s. `runtime` is called at most once, when a plugin
/// needs compiling. Slow on a cache miss: call from a blocking thread.
pub fn prepare(
    path: &Path,
    mut runtime: impl FnMut(&Config) -> Result<Arc<PluginRuntime>, PluginError>,
    running: &HashMap<String, Fingerprint>,
    backends: Option<&Arc<PrometheusSource>>,
    telemetry: &Telemetry,
) -> Result<Candidate, ReloadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = config::parse(path, &text)?;
    let prometheus =
        PrometheusSource::reconfigure(&config.prometheus, &config.base_dir, telemetry, backends)
            .map_err(|source| {
                let entry = config
                    .prometheus
                    .iter()
                    .find(|b| *b.name.get_ref() == source.backend);
                let offset = entry.map_or(0, |b| b.name.span().start);
                let (line, column) = config::line_column(&text, offset);
                ReloadError::Backend {
                    path: path.to_path_buf(),
                    line,
                    column,
                    source,
                }
            })?;
    let mut candidate = Candidate {
        entries: Vec::with_capacity(config.plugins.len()),
        fingerprints: Vec::with_capacity(config.plugins.len()),
        prometheus,
        config,
        path: path.to_path_buf(),
        text,
    };
    let mut started: Option<Arc<PluginRuntime>> = None;
    let rules = PlanRules::of(&candidate.config);
    for pc in &candidate.config.plugins {
        let name = pc.name.get_ref();
        let checked = set::check(pc, &candidate.config.base_dir, &rules)
            .map_err(|e| candidate.locate(name, e))?;
        let fingerprint = checked.fingerprint();
        candidate.fingerprints.push((name.clone(), fingerprint));
        let fresh = if running.get(name) == Some(&fingerprint) {
            None
        } else {
            let rt = match &started {
                Some(rt) => rt.clone(),
                None => {
                    let rt = runtime(&candidate.config).map_err(ReloadError::Runtime)?;
                    started = Some(rt.clone());
                    rt
                }
            };
            let fresh =
                PluginSet::start_fresh(&rt, checked).map_err(|e| candidate.locate(name, e))?;
            Some(fresh)
        };
        candidate.entries.push((name.as_str().into(), fresh));
    }
    Ok(candidate)
}

/// What one reload did, as logged and answered by `POST /-/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// What started it.
    pub trigger: Trigger,
    /// `success` or `error`.
    pub outcome: &'static str,
    /// Trigger to new plugin set installed, seconds.
    pub duration_seconds: f64,
    /// Plugins by what happened to them (empty on error).
    pub plugins: PluginChanges,
    /// Settings: applied, or changed but needing a restart (empty on error).
    pub settings: SettingChanges,
    /// Why the new config was refused, with its location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReloadReport {
    /// The new config is running.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// The running config as far as reloads are concerned.
#[derive(Debug)]
struct Applied {
    /// Non-reloadable sections as started; reloadable ones as last applied.
    config: Config,
    fingerprints: HashMap<String, Fingerprint>,
    /// Resource plugins running now.
    resources: HashMap<String, RunningResource>,
}

/// Applies new configs to a running gateway.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    collector: Arc<Collector>,
    telemetry: Telemetry,
    clock: Clock,
    max_sample_age_ms: Arc<AtomicI64>,
    runtime: Mutex<Option<Arc<PluginRuntime>>>,
    applied: Mutex<Applied>,
    cycle_after: bool,
    serial: tokio::sync::Mutex<()>,
    /// The `MetricsPlugin`s to apply, as the resource source last saw them.
    desired: Mutex<Vec<ResourcePlugin>>,
    outcomes: tokio::sync::watch::Sender<Arc<ResourceOutcomes>>,
}

/// What a [`Reloader`] works on.
#[derive(Debug)]
pub struct ReloaderParts {
    /// The config file.
    pub path: PathBuf,
    /// The config running now.
    pub config: Config,
    /// Fingerprints of the plugins running now.
    pub fingerprints: HashMap<String, Fingerprint>,
    /// The runtime the running plugins use, if any.
    pub runtime: Option<Arc<PluginRuntime>>,
    /// The collector whose plugin set is replaced.
    pub collector: Arc<Collector>,
    /// Self-metrics.
    pub telemetry: Telemetry,
    /// Time source (the success timestamp).
    pub clock: Clock,
    /// The API's sample age limit, ms (`metrics.max_sample_age_secs`).
    pub max_sample_age_ms: Arc<AtomicI64>,
    /// Ask the collector for a cycle right after a swap (false when tests drive cycles).
    pub cycle_after: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reloader {
    /// A reloader; records the running config as applied now.
    pub fn new(parts: ReloaderParts) -> Reloader {
        parts
            .telemetry
            .config_last_reload_success_timestamp
            .set(parts.clock.now_ms() as f64 / 1000.0);
        Reloader {
            path: parts.path,
            collector: parts.collector,
            telemetry: parts.telemetry,
            clock: parts.clock,
            max_sample_age_ms: parts.max_sample_age_ms,
            runtime: Mutex::new(parts.runtime),
            applied: Mutex::new(Applied {
                config: parts.config,
                fingerprints: parts.fingerprints,
                resources: HashMap::new(),
            }),
            cycle_after: parts.cycle_after,
            serial: tokio::sync::Mutex::new(()),
            desired: Mutex::new(Vec::new()),
            outcomes: tokio::sync::watch::Sender::new(Arc::default()),
        }
    }

    /// Replaces the `MetricsPlugin`s the next reload applies.
    pub fn set_resources(&self, desired: Vec<ResourcePlugin>) {
        *lock(&self.desired) = desired;
    }

    /// Each resource's outcome, as of the latest reload that got as far as the resources.
    pub fn outcomes(&self) -> tokio::sync::watch::Receiver<Arc<ResourceOutcomes>> {
        self.outcomes.subscribe()
    }

    /// The config file reloads read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads now (after any reload in flight), logs and records the outcome. A refused config
    /// leaves everything running as it was.
    pub async fn reload(self: &Arc<Self>, trigger: Trigger) -> ReloadReport {
        let _serial = self.serial.lock().await;
        let started = Instant::now();
        let result = self.apply().await;
        let elapsed = started.elapsed();
        let t = &self.telemetry;
        t.config_reload_duration.observe(elapsed.as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "error" };
        t.config_reloads
            .get_or_create(&ReloadLabels {
                trigger: trigger.as_str(),
                outcome,
            })
            .inc();
        let mut report = ReloadReport {
            trigger,
            outcome,
            duration_seconds: elapsed.as_secs_f64(),
            plugins: PluginChanges::default(),
            settings: SettingChanges::default(),
            error: None,
        };
        match result {
            Ok((plugins, settings)) => {
                t.config_last_reload_successful.set(1);
                t.config_last_reload_success_timestamp
                    .set(self.clock.now_ms() as f64 / 1000.0);
                tracing::info!(
                    trigger = trigger.as_str(),
                    added = ?plugins.added,
                    removed = ?plugins.removed,
                    changed = ?plugins.changed,
                    unchanged = plugins.unchanged.len(),
                    settings_applied = ?settings.applied,
                    needs_restart = ?settings.needs_restart,
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "config reloaded"
                );
                if !settings.needs_restart.is_empty() {
                    tracing::warn!(
                        sections = ?settings.needs_restart,
                        "config sections changed that only take effect after a restart; \
                         their running values are kept"
                    );
                }
                report.plugins = plugins;
                report.settings = settings;
                if self.cycle_after {
                    self.collector.request_cycle();
                }
            }
            Err(error) => {
                t.config_last_reload_successful.set(0);
                if let ReloadError::Plugin { plugin, .. } = &error {
                    t.config_plugin_load_errors
                        .get_or_create(&PluginLabels {
                            plugin: plugin.clone(),
                        })
                        .inc();
                }
                tracing::error!(
                    trigger = trigger.as_str(),
                    %error,
                    "config reload failed; the running config keeps serving"
                );
                report.error = Some(error.to_string());
            }
        }
        report
    }

    async fn apply(self: &Arc<Self>) -> Result<(PluginChanges, SettingChanges), ReloadError> {
        let this = self.clone();
        // Reading modules, compiling and configuring are blocking: off the async workers.
        let (mut candidate, mut batch, running, previous) =
            tokio::task::spawn_blocking(move || {
                let (running, previous, source) = {
                    let applied = lock(&this.applied);
                    (
                        applied.fingerprints.clone(),
                        applied.resources.clone(),
                        applied.config.metrics.resource_source,
                    )
                };
                // Only reloads replace the backends, one at a time: these stay the running ones
                // until this reload's swap.
                let backends = this.collector.prometheus();
                let mut candidate = prepare(
                    &this.path,
                    |_| this.runtime(),
                    &running,
                    backends.as_ref(),
                    &this.telemetry,
                )?;
                let to = candidate.config.metrics.resource_source;
                if to != source {
                    return Err(ReloadError::ResourceSource {
                        path: this.path.clone(),
                        from: source,
                        to,
                    });
                }
                let desired = lock(&this.desired).clone();
                let batch = resources::prepare(
                    &desired,
                    &candidate.config,
                    &running,
                    &previous,
                    &mut || this.runtime(),
                    &mut candidate.entries,
                    &mut candidate.fingerprints,
                );
                Ok::<_, ReloadError>((candidate, batch, running, previous))
            })
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))??;
        let (plugins, settings) = {
            let applied = lock(&self.applied);
            let configured = applied
                .config
                .plugins
                .iter()
                .map(|p| p.name.get_ref().as_str())
                .chain(applied.resources.keys().map(String::as_str));
            (
                PluginChanges::of(configured, &applied.fingerprints, &candidate.fingerprints),
                SettingChanges::of(&applied.config, &candidate.config),
            )
        };
        let runtime = if candidate.entries.is_empty() {
            None
        } else {
            Some(self.runtime().map_err(ReloadError::Runtime)?)
        };
        let rules = PlanRules::of(&candidate.config);
        let backends = candidate.prometheus.take();
        let swapped = self
            .collector
            .replace_plugins(|old, running_backends| {
                let resolved = resources::resolve_conflicts(
                    old.as_ref(),
                    &mut candidate.entries,
                    &mut candidate.fingerprints,
                    &mut batch,
                    &running,
                    &previous,
                );
                if let Err(error) = resolved {
                    return (old, Err(error));
                }
                let entries = std::mem::take(&mut candidate.entries);
                let set = match runtime {
                    None => None,
                    Some(runtime) => match PluginSet::rebuild(old, &runtime, entries, &rules) {
                        Ok(set) => Some(set),
                        Err((old, error)) => return (old, Err(error)),
                    },
                };
                install_backends(running_backends, backends);
                (set, Ok(()))
            })
            .await;
        let Candidate {
            config,
            fingerprints,
            path,
            text,
            ..
        } = candidate;
        if let Err(error) = swapped {
            let name = match &error {
                PluginError::Config { plugin, .. } => plugin.clone(),
                _ => String::new(),
            };
            return Err(locate(&path, &text, &config, &name, error));
        }
        // Plugins refused by the conflict check are no longer in the candidate.
        let plugins = PluginChanges {
            added: retain(plugins.added, &fingerprints),
            changed: retain(plugins.changed, &fingerprints),
            ..plugins
        };
        {
            let mut applied = lock(&self.applied);
            applied.config.metrics = config.metrics;
            applied.config.plugins = config.plugins;
            applied.config.prometheus = config.prometheus;
            applied.fingerprints = fingerprints.into_iter().collect();
            applied.resources = std::mem::take(&mut batch.running);
            self.max_sample_age_ms.store(
                i64::from(applied.config.max_sample_age_secs()) * 1000,
                Ordering::Release,
            );
        }
        self.publish_outcomes(batch);
        Ok((plugins, settings))
    }

    /// Logs and counts refusals that are new, and publishes every resource's outcome.
    fn publish_outcomes(&self, batch: ResourceBatch) {
        let before = self.outcomes.borrow().clone();
        for (name, outcome) in &batch.outcomes {
            let Some(refusal) = &outcome.refused else {
                continue;
            };
            if before.get(name) == Some(outcome) {
                continue;
            }
            self.telemetry
                .config_plugin_load_errors
                .get_or_create(&PluginLabels {
                    plugin: name.clone(),
                })
                .inc();
            tracing::error!(
                resource = %name,
                generation = outcome.generation,
                reason = refusal.reason,
                running_generation = ?outcome.running,
                "MetricsPlugin refused: {}",
                refusal.message
            );
        }
        self.outcomes.send_replace(Arc::new(batch.outcomes));
    }

    /// The plugin runtime, created with the running `[plugin_runtime]` on first need.
    fn runtime(&self) -> Result<Arc<PluginRuntime>, PluginError> {
        let mut slot = lock(&self.runtime);
        if let Some(runtime) = &*slot {
            return Ok(runtime.clone());
        }
        let config = lock(&self.applied).config.plugin_runtime.clone();
        let runtime = PluginRuntime::new(&config, &self.telemetry)?;
        *slot = Some(runtime.clone());
        Ok(runtime)
    }
}

/// Puts `new` in `slot` (between cycles): the source it replaces hands over the state of the
/// backends they share.
fn install_backends(slot: &mut Option<Arc<PrometheusSource>>, new: Option<Arc<PrometheusSource>>) {
    match (slot.as_ref(), new.as_ref()) {
        (Some(old), Some(new)) if Arc::ptr_eq(old, new) => return,
        (Some(old), new) => old.hand_over(new.map(|n| &**n)),
        (None, _) => {}
    }
    *slot = new;
}

/// `names` without those not in `fingerprints`.
fn retain(names: Vec<String>, fingerprints: &[(String, Fingerprint)]) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| fingerprints.iter().any(|(f, _)| f == n))
        .collect()
}

#[cfg(test)]
mod tests;
