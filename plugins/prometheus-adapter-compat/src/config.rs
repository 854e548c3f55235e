//! The plugin's config and the prometheus-adapter config file it carries, as serde types.
//!
//! The adapter config keeps prometheus-adapter's field names (camelCase). Unknown fields are
//! refused rather than ignored: a misspelt `metricQuery` would otherwise serve nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The plugin's `[plugins.config]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The prometheus-adapter config file's text (YAML: `rules`, `externalRules`,
    /// `resourceRules`), unchanged.
    pub adapter_config: String,
    /// The Prometheus backend the queries go to (`[[prometheus]]` name); empty: the default.
    #[serde(default)]
    pub backend: String,
    /// How long a value stays servable after its sample timestamp, ms; 0: the host's default.
    #[serde(default)]
    pub max_age_ms: u64,
}

/// A prometheus-adapter config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdapterConfig {
    /// Custom metrics rules.
    #[serde(default)]
    pub rules: Vec<DiscoveryRule>,
    /// External metrics rules.
    #[serde(default)]
    pub external_rules: Vec<DiscoveryRule>,
    /// Resource metrics (`metrics.k8s.io`) rules.
    #[serde(default)]
    pub resource_rules: Option<ResourceRules>,
}

/// One `rules` or `externalRules` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryRule {
    /// Series selector for `/api/v1/series`.
    pub series_query: String,
    /// Filters on discovered series names.
    #[serde(default)]
    pub series_filters: Vec<RegexFilter>,
    /// Label ↔ resource association.
    #[serde(default)]
    pub resources: ResourceMapping,
    /// Series name → API name.
    #[serde(default)]
    pub name: NameMapping,
    /// The query template.
    pub metrics_query: String,
}

/// One `seriesFilters` entry: `is` or `isNot`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexFilter {
    /// Keep series whose name matches.
    pub is: Option<String>,
    /// Keep series whose name does not match.
    pub is_not: Option<String>,
}

/// A rule's `resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMapping {
    /// Label name pattern with `<<.Group>>`/`<<.Resource>>`.
    pub template: Option<String>,
    /// Label → group-resource.
    #[serde(default)]
    pub overrides: BTreeMap<String, GroupResource>,
    /// External rules: whether values belong to a namespace (default true).
    pub namespaced: Option<bool>,
}

/// A group-resource as an override names it (`{group: "apps", resource: "deployment"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupResource {
    /// API group; empty for core.
    #[serde(default)]
    pub group: String,
    /// Resource, as kubectl accepts it (plural, singular or kind).
    pub resource: String,
}

/// A rule's `name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameMapping {
    /// Regex over the series name (default `.*`).
    #[serde(default)]
    pub matches: String,
    /// Replacement with `$1`-style references (default `$1` with one group, `$0` with none).
    #[serde(default, rename = "as")]
    pub as_: String,
}

/// `resourceRules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRules {
    /// CPU, in cores.
    pub cpu: ResourceRule,
    /// Memory, in bytes.
    pub memory: ResourceRule,
    /// The window values are reported over (`3m`); default: the longest range in the queries.
    pub window: Option<String>,
}

/// `resourceRules.cpu` or `resourceRules.memory`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRule {
    /// Per-container query template.
    pub container_query: String,
    /// Per-node query template.
    pub node_query: String,
    /// Label ↔ resource association (pods, nodes, namespaces).
    #[serde(default)]
    pub resources: ResourceMapping,
    /// The label naming the container.
    pub container_label: String,
}

/// Parses an adapter config file's text.
pub fn parse_adapter_config(text: &str) -> Result<AdapterConfig, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("adapter_config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shapes() {
        let config = parse_adapter_config(
            r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^container_(.*)_seconds_total$"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
- seriesQuery: '{__name__=~"^container_.*_total",container!="POD",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^container_.*_seconds_total$"
  name: {matches: "^container_(.*)_total$"}
  resources:
    template: "<<.Resource>>"
  metricsQuery: x
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    namespaced: false
resourceRules:
  cpu:
    containerQuery: c
    nodeQuery: n
    resources:
      overrides:
        node: {resource: node}
    containerLabel: container
  memory:
    containerQuery: c
    nodeQuery: n
    containerLabel: container
  window: 3m
"#,
        )
        .unwrap();
        assert_eq!(config.rules.len(), 2);
        assert_eq!(
            config.rules[0].resources.overrides["pod"],
            GroupResource {
                group: String::new(),
                resource: "pod".into()
            }
        );
        assert_eq!(
            config.rules[1].series_filters[0].is_not.as_deref(),
            Some("^container_.*_seconds_total$")
        );
        assert_eq!(config.external_rules[0].resources.namespaced, Some(false));
        let resource = config.resource_rules.unwrap();
        assert_eq!(resource.window.as_deref(), Some("3m"));
        assert_eq!(resource.cpu.container_label, "container");
    }

    #[test]
    fn refuses_unknown_fields_with_their_place() {
        let err = parse_adapter_config("rules:\n- seriesQuery: x\n  metricQuery: y\n").unwrap_err();
        assert!(err.contains("metricQuery"), "{err}");
        assert!(err.contains("line 3") || err.contains("3:"), "{err}");
    }
}
