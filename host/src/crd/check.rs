//! `check-config --resource FILE`: `MetricsPlugin` YAML (one or many documents) checked offline
//! with the live path's functions and messages: the spec, then, for plugins given a module with
//! `--module NAME=PATH`, its sha256, compilation and `configure`. Without a module the spec
//! alone is checked, and the report says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::source::{entry, parse};
use super::spec::{GROUP, KIND, VERSION};
use crate::plugins::plan::PlanRules;
use crate::plugins::{PluginError, PluginRuntime, PluginSet, set};
use crate::reload::resources::Refusal;

/// One document's verdict.
#[derive(Debug)]
pub struct ResourceCheck {
    /// `FILE#N` (1-based document) and the object's name.
    pub location: String,
    /// What was checked, or why it is refused.
    pub result: Result<&'static str, Refusal>,
}

/// Checks every `MetricsPlugin` document of `files`. `file_plugins` are the config file's
/// plugin names (a resource may not reuse one); `modules` maps plugin names to local component
/// files. Errors are files that cannot be read or are not YAML.
pub fn check_files(
    files: &[PathBuf],
    file_plugins: &[String],
    modules: &BTreeMap<String, PathBuf>,
    runtime: &mut dyn FnMut() -> Result<Arc<PluginRuntime>, PluginError>,
    rules: &PlanRules,
) -> Result<Vec<ResourceCheck>, String> {
    let mut checks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
        for (index, document) in documents.iter().enumerate() {
            if document.is_null() {
                continue;
            }
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            let location = format!("{}#{} ({name})", file.display(), index + 1);
            let result = check_document(document, name, file_plugins, modules, runtime, rules);
            checks.push(ResourceCheck { location, result });
        }
    }
    Ok(checks)
}

fn check_document(
    document: &Value,
    name: &str,
    file_plugins: &[String],
    modules: &BTreeMap<String, PathBuf>,
    runtime: &mut dyn FnMut() -> Result<Arc<PluginRuntime>, PluginError>,
    rules: &PlanRules,
) -> Result<&'static str, Refusal> {
    let api_version = format!("{GROUP}/{VERSION}");
    if document["apiVersion"] != api_version.as_str() || document["kind"] != KIND {
        return Err(Refusal {
            reason: "InvalidSpec",
            message: format!(
                "not a {api_version} {KIND} (apiVersion {}, kind {})",
                document["apiVersion"], document["kind"]
            ),
        });
    }
    let (spec, module) = parse(name, &document["spec"])?;
    if file_plugins.iter().any(|f| f == name) {
        return Err(Refusal {
            reason: "NameConflict",
            message: format!(
                "plugin {name}: the config file has a plugin of that name, which runs instead"
            ),
        });
    }
    let Some(path) = modules.get(name) else {
        return Ok(
            "spec valid; module not checked (give --module NAME=PATH to compile and configure it)",
        );
    };
    let bytes = std::fs::read(path).map_err(|source| {
        Refusal::of(&PluginError::Read {
            plugin: name.into(),
            path: path.clone(),
            source,
        })
    })?;
    let checked =
        set::check_entry(entry(name, &spec, &module, bytes), rules).map_err(|e| Refusal::of(&e))?;
    let rt = runtime().map_err(|e| Refusal::of(&e))?;
    PluginSet::start_fresh(&rt, checked).map_err(|e| Refusal::of(&e))?;
    Ok("spec valid; module verified, compiled and configured")
}

/// Parses `NAME=PATH` of `--module`.
pub fn parse_module_arg(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected NAME=PATH"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("{arg:?}: expected NAME=PATH"));
    }
    Ok((name.to_string(), Path::new(path).to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str, modules: &BTreeMap<String, PathBuf>) -> Vec<ResourceCheck> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plugins.yaml");
        std::fs::write(&file, yaml).unwrap();
        let telemetry = crate::telemetry::Telemetry::new();
        let cache = dir.path().join("cache");
        let mut runtime = || {
            let config = crate::config::PluginRuntimeConfig {
                cache_dir: Some(cache.clone()),
            };
            PluginRuntime::new(&config, &telemetry)
        };
        check_files(
            &[file],
            &["restarts".into()],
            modules,
            &mut runtime,
            &PlanRules::default(),
        )
        .unwrap()
    }

    #[test]
    fn documents_are_checked_with_the_live_messages() {
        let yaml = "\
apiVersion: metrics-gateway.io/v1alpha1
kind: MetricsPlugin
metadata: {name: ok}
spec:
  module: {configMap: {namespace: plugins, name: modules, key: rate.wasm}}
---
apiVersion: metrics-gateway.io/v1alpha1
kind: MetricsPlugin
metadata: {name: typo}
spec:
  module: {configMap: {namespace: plugins, name: modules, key: rate.wasm}}
  timeoutMS: 5
---
apiVersion: metrics-gateway.io/v1alpha1
kind: MetricsPlugin
metadata: {name: restarts}
spec:
  module: {https: {url: 'https://example.invalid/r.wasm'}, sha256: '0000000000000000000000000000000000000000000000000000000000000000'}
---
apiVersion: metrics-gateway.io/v1alpha1
kind: MetricsPlugin
metadata: {name: junk}
spec:
  module: {secret: {namespace: plugins, name: modules, key: junk.wasm}}
";
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.wasm");
        std::fs::write(&junk, b"not a component").unwrap();
        let modules = BTreeMap::from([("junk".to_string(), junk)]);
        let checks = run(yaml, &modules);
        assert_eq!(checks.len(), 4);
        assert!(checks[0].location.ends_with("#1 (ok)"));
        assert!(
            checks[0]
                .result
                .as_ref()
                .unwrap()
                .contains("module not checked")
        );
        let refusal = |i: usize| checks[i].result.as_ref().unwrap_err();
        assert_eq!(refusal(1).reason, "InvalidSpec");
        assert!(
            refusal(1).message.contains("timeoutMS"),
            "{}",
            refusal(1).message
        );
        assert_eq!(refusal(2).reason, "NameConflict");
        assert_eq!(refusal(3).reason, "CompileFailed");
        assert!(
            refusal(3)
                .message
                .starts_with("plugin junk: secret plugins/modules key junk.wasm:"),
            "{}",
            refusal(3).message
        );
    }

    #[test]
    fn module_args_need_a_name_and_a_path() {
        assert_eq!(
            parse_module_arg("rate=/p/rate.wasm").unwrap(),
            ("rate".to_string(), PathBuf::from("/p/rate.wasm"))
        );
        assert!(parse_module_arg("rate").is_err());
        assert!(parse_module_arg("=x").is_err());
    }
}
