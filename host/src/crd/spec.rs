//! The `MetricsPlugin` resource (`metrics-gateway.io/v1alpha1`, cluster-scoped): its spec and
//! status as Rust types, and the checks the OpenAPI schema cannot express.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{
    DEFAULT_PLUGIN_MAX_OUTPUT, DEFAULT_PLUGIN_MEMORY_MIB, DEFAULT_PLUGIN_TIMEOUT_MS,
};

/// The API group.
pub const GROUP: &str = "metrics-gateway.io";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "MetricsPlugin";
/// The resource (plural).
pub const PLURAL: &str = "metricsplugins";

/// `spec` of a `MetricsPlugin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsPluginSpec {
    /// Where the component comes from.
    pub module: ModuleSource,
    /// Position among the resource plugins (which all run after the config file's plugins):
    /// lower first, then by name.
    #[serde(default)]
    pub order: i32,
    /// Deadline of one call into the plugin, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Memory limit of one instance, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Most values accepted from one call.
    #[serde(default = "default_max_output")]
    pub max_output: u32,
    /// The plugin's own configuration, passed to it as JSON.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
}

fn default_timeout_ms() -> u32 {
    DEFAULT_PLUGIN_TIMEOUT_MS
}

fn default_memory_mib() -> u32 {
    DEFAULT_PLUGIN_MEMORY_MIB
}

fn default_max_output() -> u32 {
    DEFAULT_PLUGIN_MAX_OUTPUT
}

/// `spec.module`: exactly one of `configMap`, `secret` and `https`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleSource {
    /// A key of a ConfigMap's `binaryData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<KeyRef>,
    /// A key of a Secret's `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KeyRef>,
    /// An HTTPS URL (then `sha256` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsSource>,
    /// Expected sha256 of the module, hex: required for `https`, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A key of a ConfigMap or Secret in an explicit namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRef {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The key holding the component.
    pub key: String,
}

/// `spec.module.https`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpsSource {
    /// The `https://` URL of the component.
    pub url: String,
    /// PEM CA certificates that verify the server (default: the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Where a module is read from, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// `binaryData[key]` of a ConfigMap.
    ConfigMap(KeyRef),
    /// `data[key]` of a Secret.
    Secret(KeyRef),
    /// An HTTPS URL.
    Https(HttpsSource),
}

impl ModuleRef {
    /// How errors and status name the module's origin.
    pub fn describe(&self) -> String {
        match self {
            ModuleRef::ConfigMap(r) => {
                format!("configmap {}/{} key {}", r.namespace, r.name, r.key)
            }
            ModuleRef::Secret(r) => format!("secret {}/{} key {}", r.namespace, r.name, r.key),
            ModuleRef::Https(h) => h.url.clone(),
        }
    }
}

impl MetricsPluginSpec {
    /// Checks what the schema cannot (one module source, sha256 form, limits) and returns the
    /// module's reference. Errors name the field (`spec.module.sha256: ...`).
    pub fn validate(&self) -> Result<ModuleRef, String> {
        let m = &self.module;
        let sources = [
            m.config_map.is_some(),
            m.secret.is_some(),
            m.https.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(
                "spec.module: exactly one of configMap, secret and https must be set".into(),
            );
        }
        if let Some(sha) = &m.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err("spec.module.sha256: must be 64 hexadecimal digits".into());
        }
        for (field, value) in [
            ("timeoutMs", self.timeout_ms),
            ("memoryMib", self.memory_mib),
            ("maxOutput", self.max_output),
        ] {
            if value == 0 {
                return Err(format!("spec.{field}: must be at least 1"));
            }
        }
        let key_ref = |field: &str, r: &KeyRef| {
            for (part, value) in [
                ("namespace", &r.namespace),
                ("name", &r.name),
                ("key", &r.key),
            ] {
                if value.is_empty() {
                    return Err(format!("spec.module.{field}.{part}: must not be empty"));
                }
            }
            Ok(r.clone())
        };
        if let Some(r) = &m.config_map {
            return key_ref("configMap", r).map(ModuleRef::ConfigMap);
        }
        if let Some(r) = &m.secret {
            return key_ref("secret", r).map(ModuleRef::Secret);
        }
        let https = m.https.clone().expect("one source is set");
        if !https.url.starts_with("https://") {
            return Err(format!(
                "spec.module.https.url: {:?} is not an https:// URL",
                https.url
            ));
        }
        if m.sha256.is_none() {
            return Err("spec.module.sha256: required when the module comes from a URL".into());
        }
        Ok(ModuleRef::Https(https))
    }

    /// The plugin's config as the JSON its `configure` receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).expect("JSON values serialize")
    }
}

/// Whether `name` can name a plugin (the config file's rule; object names are DNS subdomains,
/// so only `.` needs refusing).
pub fn valid_plugin_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "metadata.name: {name:?} must be 1-63 characters of a-z, 0-9 and '-' to name a plugin"
        ))
    }
}

/// `status` of a `MetricsPlugin`, as the leader writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsPluginStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the running plugin publishes (`pods/NAME`, `external/NAME`, ...).
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// A status condition (the `metav1.Condition` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The generation this was set for.
    #[serde(default)]
    pub observed_generation: i64,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(module: Value) -> MetricsPluginSpec {
        serde_json::from_value(json!({ "module": module })).unwrap()
    }

    #[test]
    fn defaults_match_the_config_file() {
        let s = spec(json!({"configMap": {"namespace": "a", "name": "b", "key": "c"}}));
        assert_eq!(
            (s.timeout_ms, s.memory_mib, s.max_output),
            (1000, 256, 1_000_000)
        );
        assert_eq!(s.order, 0);
        assert_eq!(s.config_json(), "{}");
        assert!(matches!(s.validate(), Ok(ModuleRef::ConfigMap(_))));
    }

    #[test]
    fn module_rules_name_the_field() {
        let err = |m: Value| spec(m).validate().unwrap_err();
        assert!(err(json!({})).starts_with("spec.module: exactly one"));
        assert!(
            err(json!({"https": {"url": "https://x/p.wasm"}})).starts_with("spec.module.sha256:")
        );
        assert!(
            err(json!({"https": {"url": "http://x/p.wasm"}, "sha256": "0".repeat(64)}))
                .starts_with("spec.module.https.url:")
        );
        assert!(
            err(json!({"secret": {"namespace": "", "name": "b", "key": "c"}}))
                .starts_with("spec.module.secret.namespace:")
        );
        assert!(
            err(json!({"secret": {"namespace": "a", "name": "b", "key": "c"}, "sha256": "xyz"}))
                .starts_with("spec.module.sha256:")
        );
        let unknown = serde_json::from_value::<MetricsPluginSpec>(
            json!({"module": {"secret": {"namespace": "a", "name": "b", "key": "c"}}, "oder": 1}),
        );
        assert!(unknown.unwrap_err().to_string().contains("oder"));
    }
}
