//! Plugins from `MetricsPlugin` resources in the reload path. They run after the config file's
//! plugins, by `order` then name, and each stands alone: a resource that cannot be read,
//! compiled or configured, or whose metrics clash with another plugin's, is refused by itself
//! (its last good version keeps running, if it had one) while the file and the other resources
//! apply. Its outcome is reported per resource (the leader turns it into status and Events).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::plugins::plan::PlanRules;
use crate::plugins::set::{self, Fingerprint, FreshPlugin, PluginEntry};
use crate::plugins::{PluginError, PluginRuntime, PluginSet};

/// A `MetricsPlugin` as the reload path takes it.
#[derive(Debug, Clone)]
pub struct ResourcePlugin {
    /// The object's name, which names the plugin.
    pub name: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `spec.order`.
    pub order: i32,
    /// The module and settings, or why they could not be had.
    pub entry: Result<PluginEntry, Refusal>,
}

/// Why a resource's generation was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// CamelCase reason (`ModuleUnavailable`, `Sha256Mismatch`, `CompileFailed`,
    /// `ConfigureFailed`, `MetricConflict`, `NameConflict`, `InvalidSpec`).
    pub reason: &'static str,
    /// What failed, naming the plugin and where.
    pub message: String,
}

impl Refusal {
    /// The refusal of a plugin error.
    pub fn of(error: &PluginError) -> Refusal {
        let reason = match error {
            PluginError::Read { .. } => "ModuleUnavailable",
            PluginError::Sha256Mismatch { .. } => "Sha256Mismatch",
            PluginError::Compile { .. } | PluginError::Version { .. } => "CompileFailed",
            PluginError::Configure { .. } => "ConfigureFailed",
            PluginError::Config { message, .. } if message.contains("already published") => {
                "MetricConflict"
            }
            _ => "InvalidSpec",
        };
        Refusal {
            reason,
            message: error.to_string(),
        }
    }
}

/// What the last reload did with one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceOutcome {
    /// The generation considered.
    pub generation: i64,
    /// Applied, or why not.
    pub refused: Option<Refusal>,
    /// The generation running now (after a refusal: the last good one, if any).
    pub running: Option<i64>,
    /// What the running version publishes.
    pub metrics: Vec<String>,
}

/// Outcomes by resource name.
pub type ResourceOutcomes = BTreeMap<String, ResourceOutcome>;

/// A resource plugin running now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunningResource {
    pub generation: i64,
    pub metrics: Vec<String>,
}

/// The resources' part of a candidate.
#[derive(Debug, Default)]
pub(crate) struct ResourceBatch {
    pub outcomes: ResourceOutcomes,
    /// Resource plugins in the candidate, with what they will be once swapped in.
    pub running: HashMap<String, RunningResource>,
}

/// Appends the resource plugins to `entries` and `fingerprints` (after the file's, by order
/// then name): kept when unchanged, fresh when changed and good, the last good version kept
/// (or nothing) when refused. `runtime` starts the plugin runtime on first need.
pub(crate) fn prepare(
    desired: &[ResourcePlugin],
    config: &Config,
    running: &HashMap<String, Fingerprint>,
    previous: &HashMap<String, RunningResource>,
    runtime: &mut dyn FnMut() -> Result<Arc<PluginRuntime>, PluginError>,
    entries: &mut Vec<(Arc<str>, Option<FreshPlugin>)>,
    fingerprints: &mut Vec<(String, Fingerprint)>,
) -> ResourceBatch {
    let mut sorted: Vec<&ResourcePlugin> = desired.iter().collect();
    sorted.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    let mut batch = ResourceBatch::default();
    for plugin in sorted {
        let name = plugin.name.as_str();
        let fresh = if config.plugins.iter().any(|f| f.name.get_ref() == name) {
            Err(Refusal {
                reason: "NameConflict",
                message: format!(
                    "plugin {name}: the config file has a plugin of that name, which runs instead"
                ),
            })
        } else {
            start(plugin, running, runtime, &PlanRules::of(config))
        };
        let key: Arc<str> = name.into();
        match fresh {
            Ok((fingerprint, fresh)) => {
                let metrics = match &fresh {
                    Some(f) => f.published(),
                    None => previous
                        .get(name)
                        .map(|p| p.metrics.clone())
                        .unwrap_or_default(),
                };
                entries.push((key, fresh));
                fingerprints.push((name.to_string(), fingerprint));
                batch.running.insert(
                    name.to_string(),
                    RunningResource {
                        generation: plugin.generation,
                        metrics: metrics.clone(),
                    },
                );
                batch.outcomes.insert(
                    name.to_string(),
                    ResourceOutcome {
                        generation: plugin.generation,
                        refused: None,
                        running: Some(plugin.generation),
                        metrics,
                    },
                );
            }
            Err(refusal) => {
                let kept = match (previous.get(name), running.get(name)) {
                    (Some(prev), Some(fp)) if refusal.reason != "NameConflict" => {
                        entries.push((key, None));
                        fingerprints.push((name.to_string(), *fp));
                        batch.running.insert(name.to_string(), prev.clone());
                        Some(prev.clone())
                    }
                    _ => None,
                };
                batch.outcomes.insert(
                    name.to_string(),
                    ResourceOutcome {
                        generation: plugin.generation,
                        refused: Some(refusal),
                        running: kept.as_ref().map(|k| k.generation),
                        metrics: kept.map(|k| k.metrics).unwrap_or_default(),
                    },
                );
            }
        }
    }
    batch
}

/// Checks a resource's module and, unless its fingerprint is running, compiles and configures
/// it: `None` keeps the running instance.
fn start(
    plugin: &ResourcePlugin,
    running: &HashMap<String, Fingerprint>,
    runtime: &mut dyn FnMut() -> Result<Arc<PluginRuntime>, PluginError>,
    rules: &PlanRules,
) -> Result<(Fingerprint, Option<FreshPlugin>), Refusal> {
    let entry = plugin.entry.clone()?;
    let checked = set::check_entry(entry, rules).map_err(|e| Refusal::of(&e))?;
    let fingerprint = checked.fingerprint();
    if running.get(&plugin.name) == Some(&fingerprint) {
        return Ok((fingerprint, None));
    }
    let rt = runtime().map_err(|e| Refusal::of(&e))?;
    let fresh = PluginSet::start_fresh(&rt, checked).map_err(|e| Refusal::of(&e))?;
    Ok((fingerprint, Some(fresh)))
}

/// Drops or reverts resource plugins whose metrics clash with an earlier plugin's, until the
/// set is consistent. A clash with a file plugin named last is the file's: returned as is.
pub(crate) fn resolve_conflicts(
    old: Option<&PluginSet>,
    entries: &mut Vec<(Arc<str>, Option<FreshPlugin>)>,
    fingerprints: &mut Vec<(String, Fingerprint)>,
    batch: &mut ResourceBatch,
    running: &HashMap<String, Fingerprint>,
    previous: &HashMap<String, RunningResource>,
) -> Result<(), PluginError> {
    loop {
        let error = match PluginSet::owners(old, entries) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let PluginError::Config { plugin, .. } = &error else {
            return Err(error);
        };
        let Some(outcome) = batch.outcomes.get_mut(plugin) else {
            return Err(error);
        };
        let index = entries
            .iter()
            .position(|(n, _)| &**n == plugin)
            .expect("a conflicting plugin is an entry");
        let was_fresh = entries[index].1.is_some();
        let refusal = Refusal::of(&error);
        match (previous.get(plugin), running.get(plugin)) {
            (Some(prev), Some(fp)) if was_fresh => {
                entries[index].1 = None;
                fingerprints[index] = (plugin.clone(), *fp);
                batch.running.insert(plugin.clone(), prev.clone());
                outcome.running = Some(prev.generation);
                outcome.metrics = prev.metrics.clone();
            }
            _ => {
                entries.remove(index);
                fingerprints.remove(index);
                batch.running.remove(plugin);
                outcome.running = None;
                outcome.metrics.clear();
            }
        }
        // A refusal already recorded (the last good version clashing too) stays the first one.
        if outcome.refused.is_none() {
            outcome.refused = Some(refusal);
        }
    }
}
