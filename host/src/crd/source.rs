//! The resource source: watches `MetricsPlugin` objects (kube-runtime watcher), reads each new
//! generation's module, hands the set to the [`Reloader`] and requests a reload. Status-only
//! changes (the leader's own writes) do not reload.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::api_resource;
use super::module::ModuleFetcher;
use super::spec::{MetricsPluginSpec, ModuleRef, valid_plugin_name};
use crate::plugins::set::PluginEntry;
use crate::reload::resources::{Refusal, ResourcePlugin};
use crate::reload::trigger::ReloadHandle;
use crate::reload::{Reloader, Trigger};

/// The `MetricsPlugin` objects as last seen, by name.
pub type Objects = Arc<BTreeMap<String, DynamicObject>>;

/// How often modules that could not be read are tried again.
const RETRY_FAILED: Duration = Duration::from_secs(30);

/// The spec of `object` checked, with its module's reference; refusals name the field.
pub fn parse(
    name: &str,
    spec: &serde_json::Value,
) -> Result<(MetricsPluginSpec, ModuleRef), Refusal> {
    let invalid = |message: String| Refusal {
        reason: "InvalidSpec",
        message: format!("plugin {name}: {message}"),
    };
    valid_plugin_name(name).map_err(invalid)?;
    let spec: MetricsPluginSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        invalid(format!("spec.{path}: {}", e.inner()))
    })?;
    let module = spec.validate().map_err(invalid)?;
    Ok((spec, module))
}

/// The reload path's entry for a checked spec and its module's bytes.
pub fn entry(
    name: &str,
    spec: &MetricsPluginSpec,
    module: &ModuleRef,
    bytes: Vec<u8>,
) -> PluginEntry {
    PluginEntry {
        name: name.into(),
        origin: PathBuf::from(module.describe()),
        bytes,
        sha256: spec.module.sha256.clone(),
        timeout_ms: spec.timeout_ms,
        memory_mib: spec.memory_mib,
        max_output: spec.max_output,
        config_json: spec.config_json(),
    }
}

/// Resolves one object: its spec checked and its module read.
async fn resolve(object: &DynamicObject, fetcher: &ModuleFetcher) -> ResourcePlugin {
    let name = object.metadata.name.clone().unwrap_or_default();
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let (order, entry) = match parse(&name, &spec) {
        Err(refusal) => (0, Err(refusal)),
        Ok((spec, module)) => {
            let entry = match fetcher.fetch(&module).await {
                Ok(bytes) => Ok(entry(&name, &spec, &module, bytes)),
                Err(message) => Err(Refusal {
                    reason: "ModuleUnavailable",
                    message: format!("plugin {name}: {message}"),
                }),
            };
            (spec.order, entry)
        }
    };
    ResourcePlugin {
        name,
        generation: object.metadata.generation.unwrap_or(0),
        order,
        entry,
    }
}

/// What identifies a resolved plugin for change detection: generation and module digest, or
/// the refusal.
type Signature = (i64, Result<[u8; 32], String>);

fn signature(p: &ResourcePlugin) -> Signature {
    let digest = p
        .entry
        .as_ref()
        .map(|e| Sha256::digest(&e.bytes).into())
        .map_err(|r| r.message.clone());
    (p.generation, digest)
}

/// Which generation of which object (by uid) a resolution was for.
type SpecView = (Option<String>, Option<i64>);

fn spec_view(object: &DynamicObject) -> SpecView {
    (object.metadata.uid.clone(), object.metadata.generation)
}

/// Watches `MetricsPlugin`s until aborted; publishes the objects (status included) for the
/// status writer.
pub fn spawn(
    client: kube::Client,
    fetcher: ModuleFetcher,
    reloader: Arc<Reloader>,
    reload: ReloadHandle,
) -> (watch::Receiver<Objects>, tokio::task::JoinHandle<()>) {
    let (objects_tx, objects_rx) = watch::channel(Objects::default());
    let task = tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(client, &api_resource());
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut objects: BTreeMap<String, DynamicObject> = BTreeMap::new();
        let mut buffer: BTreeMap<String, DynamicObject> = BTreeMap::new();
        let mut synced = false;
        let mut resolved: HashMap<String, (SpecView, ResourcePlugin)> = HashMap::new();
        let mut applied: Option<Vec<(String, Signature)>> = None;
        let mut retry = tokio::time::interval(RETRY_FAILED);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut retry_failed = false;
            tokio::select! {
                event = stream.next() => {
                    let Some(event) = event else { break };
                    match event {
                        Ok(watcher::Event::Init) => buffer.clear(),
                        Ok(watcher::Event::InitApply(o)) => {
                            buffer.insert(o.metadata.name.clone().unwrap_or_default(), o);
                            continue;
                        }
                        Ok(watcher::Event::InitDone) => {
                            objects = std::mem::take(&mut buffer);
                            synced = true;
                        }
                        Ok(watcher::Event::Apply(o)) => {
                            objects.insert(o.metadata.name.clone().unwrap_or_default(), o);
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            objects.remove(o.metadata.name.as_deref().unwrap_or_default());
                        }
                        Err(error) => {
                            tracing::warn!(%error, "watching MetricsPlugins");
                            continue;
                        }
                    }
                }
                _ = retry.tick() => retry_failed = true,
            }
            if !synced {
                continue;
            }
            objects_tx.send_replace(Arc::new(objects.clone()));
            let mut desired = Vec::with_capacity(objects.len());
            for (name, object) in &objects {
                let view = spec_view(object);
                let cached = resolved
                    .get(name)
                    .filter(|(v, p)| *v == view && !(retry_failed && p.entry.is_err()));
                let plugin = match cached {
                    Some((_, p)) => p.clone(),
                    None => {
                        let p = resolve(object, &fetcher).await;
                        resolved.insert(name.clone(), (view, p.clone()));
                        p
                    }
                };
                desired.push(plugin);
            }
            resolved.retain(|name, _| objects.contains_key(name));
            let signatures: Vec<_> = desired
                .iter()
                .map(|p| (p.name.clone(), signature(p)))
                .collect();
            if applied.as_ref() == Some(&signatures) {
                continue;
            }
            applied = Some(signatures);
            reloader.set_resources(desired);
            reload.request(Trigger::Resource);
        }
    });
    (objects_rx, task)
}
