//! What a new config changes compared with the running one: plugins added, removed, changed or
//! unchanged, and settings applied live or needing a restart.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Config;
use crate::plugins::set::Fingerprint;

/// Plugin names by what a reload does to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginChanges {
    /// In the new config only: started fresh.
    pub added: Vec<String>,
    /// In the old config only: dropped, their metrics leave discovery.
    pub removed: Vec<String>,
    /// Module, config or limits changed (or not running before): started fresh.
    pub changed: Vec<String>,
    /// Same fingerprint: instance and state kept.
    pub unchanged: Vec<String>,
}

impl PluginChanges {
    /// Sorts `new` (name and fingerprint, in config order) against the running plugins.
    /// `configured` names every plugin of the running config, `running` the fingerprints of
    /// those loaded.
    pub fn of<'a>(
        configured: impl IntoIterator<Item = &'a str>,
        running: &HashMap<String, Fingerprint>,
        new: &[(String, Fingerprint)],
    ) -> PluginChanges {
        let mut changes = PluginChanges::default();
        let configured: Vec<&str> = configured.into_iter().collect();
        for (name, fingerprint) in new {
            let list = match running.get(name) {
                Some(old) if old == fingerprint => &mut changes.unchanged,
                _ if configured.contains(&name.as_str()) => &mut changes.changed,
                _ => &mut changes.added,
            };
            list.push(name.clone());
        }
        changes.removed = configured
            .into_iter()
            .filter(|old| !new.iter().any(|(name, _)| name == old))
            .map(str::to_string)
            .collect();
        changes
    }

    /// Whether a plugin is kept with its instance and state.
    pub fn keeps(&self, name: &str) -> bool {
        self.unchanged.iter().any(|n| n == name)
    }
}

/// Top-level sections that differ, split by whether a reload applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettingChanges {
    /// Sections applied by the reload (besides `plugins`).
    pub applied: Vec<&'static str>,
    /// Sections that changed but only take effect after a restart (the running values stay).
    pub needs_restart: Vec<&'static str>,
}

impl SettingChanges {
    /// Compares every section but `plugins`.
    pub fn of(old: &Config, new: &Config) -> SettingChanges {
        let mut changes = SettingChanges::default();
        if old.metrics != new.metrics {
            changes.applied.push("metrics");
        }
        if old.prometheus != new.prometheus {
            changes.applied.push("prometheus");
        }
        let restart = [
            ("server", old.server != new.server),
            ("kubernetes", old.kubernetes != new.kubernetes),
            ("kubelet", old.kubelet != new.kubelet),
            ("authentication", old.authentication != new.authentication),
            ("authorization", old.authorization != new.authorization),
            ("plugin_runtime", old.plugin_runtime != new.plugin_runtime),
            (
                "custom_resources",
                old.custom_resources != new.custom_resources,
            ),
        ];
        changes.needs_restart = restart
            .into_iter()
            .filter_map(|(section, changed)| changed.then_some(section))
            .collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint::from_bytes([byte; 32])
    }

    #[test]
    fn plugins_are_sorted_by_fingerprint_and_name() {
        let running: HashMap<String, Fingerprint> =
            [("a".to_string(), fp(1)), ("b".to_string(), fp(2))].into();
        let new = [
            ("a".to_string(), fp(1)),
            ("b".to_string(), fp(3)),
            ("c".to_string(), fp(4)),
            ("failed".to_string(), fp(5)),
        ];
        let changes = PluginChanges::of(["a", "b", "failed", "gone"], &running, &new);
        assert_eq!(changes.unchanged, ["a"]);
        assert_eq!(changes.changed, ["b", "failed"]);
        assert_eq!(changes.added, ["c"]);
        assert_eq!(changes.removed, ["gone"]);
        assert!(changes.keeps("a") && !changes.keeps("b"));
    }

    #[test]
    fn settings_split_into_applied_and_restart() {
        let parse = |t: &str| crate::config::parse(Path::new("g.toml"), t).unwrap();
        let old = parse("[server]\nself_signed = true\n");
        let same = parse("[server]\nself_signed = true\n\n# a comment\n");
        assert_eq!(SettingChanges::of(&old, &same), SettingChanges::default());
        let new = parse(
            "[server]\nself_signed = true\nlisten_addr = \"127.0.0.1:1\"\n\
             [metrics]\nmax_sample_age_secs = 5\n[kubelet]\nconcurrency = 3\n\
             [[prometheus]]\nname = \"p\"\nurl = \"http://p:9090\"\n",
        );
        let changes = SettingChanges::of(&old, &new);
        assert_eq!(changes.applied, ["metrics", "prometheus"]);
        assert_eq!(changes.needs_restart, ["server", "kubelet"]);
    }
}
