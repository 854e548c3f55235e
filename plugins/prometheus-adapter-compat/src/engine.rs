//! The whole adapter config at work: discovery selectors, the series they discovered (label
//! names only, counted per family), the cluster's API resources, and from those the list of
//! published metrics with one query each.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::AdapterConfig;
use crate::resource_rules::{CompiledResourceRules, ResourceQuery};
use metrics_gateway_sdk::types::ApiResource;

use crate::resources::{LabelMap, builtin_api_resources};
use crate::rules::{Kind, MetricQuery, Rule, Target};

/// A discovered series, as the engine keeps it: its selector, family and label-name set.
#[derive(Debug, Clone, Copy)]
struct Known {
    selector: u32,
    family: u32,
    label_set: u32,
}

/// The compiled config and what discovery found.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Distinct `seriesQuery` selectors; rule `i` reads `selectors[rule_selector[i]]`.
    selectors: Vec<String>,
    rule_selector: Vec<u32>,
    resource_rules: Option<CompiledResourceRules>,
    api: Vec<ApiResource>,
    label_maps: Vec<LabelMap>,
    /// Interned family names and label-name sets.
    families: Vec<String>,
    family_ids: HashMap<String, u32>,
    label_sets: Vec<Vec<String>>,
    label_set_ids: HashMap<Vec<String>, u32>,
    /// Live series by id.
    series: HashMap<u64, Known>,
    /// Live series count per (selector, family, label set).
    counts: BTreeMap<(u32, u32, u32), usize>,
}

/// The metrics the engine publishes now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// One query per metric and target, sorted.
    pub queries: Vec<MetricQuery>,
    /// Why some discovered families publish nothing (conflicts, unresolved overrides).
    pub warnings: Vec<String>,
}

impl Engine {
    /// Compiles `config`; the first error names the rule and field.
    pub fn new(config: &AdapterConfig) -> Result<Engine, String> {
        let mut rules = Vec::new();
        for (i, r) in config.rules.iter().enumerate() {
            rules.push(Rule::compile("rules", i, r, Kind::Custom)?);
        }
        for (i, r) in config.external_rules.iter().enumerate() {
            rules.push(Rule::compile("externalRules", i, r, Kind::External)?);
        }
        let mut selectors: Vec<String> = Vec::new();
        let mut rule_selector = Vec::new();
        for rule in &rules {
            let index = match selectors.iter().position(|s| *s == rule.series_query) {
                Some(i) => i,
                None => {
                    selectors.push(rule.series_query.clone());
                    selectors.len() - 1
                }
            };
            rule_selector.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        let resource_rules = config
            .resource_rules
            .as_ref()
            .map(CompiledResourceRules::compile)
            .transpose()?;
        let mut engine = Engine {
            rules,
            selectors,
            rule_selector,
            resource_rules,
            api: Vec::new(),
            label_maps: Vec::new(),
            families: Vec::new(),
            family_ids: HashMap::new(),
            label_sets: Vec::new(),
            label_set_ids: HashMap::new(),
            series: HashMap::new(),
            counts: BTreeMap::new(),
        };
        engine.set_api_resources(builtin_api_resources());
        Ok(engine)
    }

    /// The compiled rules, in config order (`rules` then `externalRules`).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The distinct series selectors discovery runs (`match[]` of `/api/v1/series`).
    pub fn selectors(&self) -> &[String] {
        &self.selectors
    }

    /// Replaces the API resources label names are resolved against: the cluster's, or the
    /// built-in list of common resources when `api` is empty (discovery not known yet).
    pub fn set_api_resources(&mut self, api: Vec<ApiResource>) {
        let api = if api.is_empty() {
            builtin_api_resources()
        } else {
            api
        };
        self.label_maps = self.rules.iter().map(|r| r.label_map(&api)).collect();
        self.api = api;
    }

    /// Records a discovered series: `id` answering selector `selector`, Prometheus name
    /// `name`, label names `label_names` (values are not kept). Unknown selectors are ignored.
    pub fn add_series<'a>(
        &mut self,
        id: u64,
        selector: u32,
        name: &str,
        label_names: impl IntoIterator<Item = &'a str>,
    ) {
        if selector as usize >= self.selectors.len() {
            return;
        }
        self.remove_series(id);
        let family = intern(&mut self.families, &mut self.family_ids, name.to_owned());
        let mut names: Vec<String> = label_names
            .into_iter()
            .filter(|l| *l != "__name__")
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        let label_set = intern(&mut self.label_sets, &mut self.label_set_ids, names);
        let known = Known {
            selector,
            family,
            label_set,
        };
        self.series.insert(id, known);
        *self
            .counts
            .entry((selector, family, label_set))
            .or_default() += 1;
    }

    /// Forgets series `id`.
    pub fn remove_series(&mut self, id: u64) {
        if let Some(k) = self.series.remove(&id) {
            let key = (k.selector, k.family, k.label_set);
            if let Some(n) = self.counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&key);
                }
            }
        }
    }

    /// Forgets every discovered series (the host announces them all again after a replan).
    pub fn clear_series(&mut self) {
        self.series.clear();
        self.counts.clear();
        self.families.clear();
        self.family_ids.clear();
        self.label_sets.clear();
        self.label_set_ids.clear();
    }

    /// The number of live discovered series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Every metric the rules publish for what discovery found: per rule, per discovered
    /// family its name accepts, per target. A metric name and target two families or rules
    /// produce goes to the first (rule order, then family name), with a warning.
    pub fn published(&self) -> Published {
        // Label names per (selector, family), across live series.
        let mut families: BTreeMap<(u32, &str), BTreeSet<String>> = BTreeMap::new();
        for &(selector, family, label_set) in self.counts.keys() {
            families
                .entry((selector, self.families[family as usize].as_str()))
                .or_default()
                .extend(self.label_sets[label_set as usize].iter().cloned());
        }
        let mut out = Published::default();
        for map in &self.label_maps {
            out.warnings.extend(map.unresolved.iter().cloned());
        }
        let mut seen: BTreeMap<(String, Target), String> = BTreeMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let selector = self.rule_selector[i];
            for ((_, name), label_names) in families
                .range((selector, "")..)
                .take_while(|((s, _), _)| *s == selector)
            {
                let queries = match rule.queries(name, label_names, &self.label_maps[i]) {
                    Ok(q) => q,
                    Err(e) => {
                        out.warnings.push(e);
                        continue;
                    }
                };
                for q in queries {
                    let key = (q.metric.clone(), q.target.clone());
                    let origin = format!("{} series {:?}", rule.place, q.series);
                    if let Some(first) = seen.get(&key) {
                        out.warnings.push(format!(
                            "metric {:?} of {origin} is already published by {first}: ignored",
                            q.metric
                        ));
                        continue;
                    }
                    seen.insert(key, origin);
                    out.queries.push(q);
                }
            }
        }
        out.queries.sort();
        out
    }

    /// The resource metric queries (none without `resourceRules`).
    pub fn resource_queries(&self) -> Result<Vec<ResourceQuery>, String> {
        match &self.resource_rules {
            Some(r) => r.queries(&self.api),
            None => Ok(Vec::new()),
        }
    }
}

fn intern<T: Clone + Eq + std::hash::Hash>(
    list: &mut Vec<T>,
    ids: &mut HashMap<T, u32>,
    value: T,
) -> u32 {
    if let Some(&id) = ids.get(&value) {
        return id;
    }
    let id = u32::try_from(list.len()).unwrap_or(u32::MAX);
    list.push(value.clone());
    ids.insert(value, id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_adapter_config;

    const CONFIG: &str = r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^container_(.*)_seconds_total$"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  seriesFilters:
  - isNot: "^container_.*_seconds_total$"
  name:
    matches: "^container_(.*)_total$"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    namespaced: false
"#;

    fn engine() -> Engine {
        Engine::new(&parse_adapter_config(CONFIG).unwrap()).unwrap()
    }

    fn metrics(e: &Engine) -> Vec<(String, String)> {
        e.published()
            .queries
            .iter()
            .map(|q| {
                let target = match &q.target {
                    Target::Custom { resource, .. } => resource.clone(),
                    Target::External { .. } => "external".to_owned(),
                };
                (q.metric.clone(), target)
            })
            .collect()
    }

    #[test]
    fn rules_sharing_a_selector_share_discovery() {
        let e = engine();
        assert_eq!(e.selectors().len(), 2);
        assert_eq!(e.rules().len(), 3);
    }

    #[test]
    fn discovery_publishes_and_forgets() {
        let mut e = engine();
        assert!(metrics(&e).is_empty());
        let pod_labels = ["__name__", "container", "namespace", "pod"];
        for id in 0..1000 {
            e.add_series(id, 0, "container_cpu_usage_seconds_total", pod_labels);
        }
        e.add_series(1000, 0, "container_network_receive_bytes_total", pod_labels);
        e.add_series(1001, 1, "queue_depth", ["name", "topic"]);
        e.add_series(1002, 7, "ignored", ["x"]);
        let expected = [
            ("cpu_usage", "namespaces"),
            ("cpu_usage", "pods"),
            ("network_receive_bytes", "namespaces"),
            ("network_receive_bytes", "pods"),
            ("queue_depth", "external"),
        ];
        let mut got = metrics(&e);
        got.sort();
        assert_eq!(got, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
        assert_eq!(e.series_count(), 1002);
        // One query per metric and target, whatever the number of series.
        assert_eq!(e.published().queries.len(), 5);

        e.remove_series(1000);
        e.remove_series(1001);
        for id in 0..999 {
            e.remove_series(id);
        }
        assert_eq!(metrics(&e).len(), 2, "one cpu series is left");
        e.remove_series(999);
        assert!(metrics(&e).is_empty());
    }

    #[test]
    fn conflicting_names_go_to_the_first_rule() {
        let yaml = r#"
rules:
- seriesQuery: 'a'
  resources: {template: "<<.Resource>>"}
  name: {as: "same"}
  metricsQuery: "max(<<.Series>>) by (<<.GroupBy>>)"
- seriesQuery: 'b'
  resources: {template: "<<.Resource>>"}
  name: {as: "same"}
  metricsQuery: "min(<<.Series>>) by (<<.GroupBy>>)"
"#;
        let mut e = Engine::new(&parse_adapter_config(yaml).unwrap()).unwrap();
        e.add_series(1, 0, "a", ["node"]);
        e.add_series(2, 1, "b", ["node"]);
        let p = e.published();
        assert_eq!(p.queries.len(), 1);
        assert!(p.queries[0].query.starts_with("max("));
        assert!(
            p.warnings[0].contains("already published by rules[0]"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn api_resources_change_the_association() {
        let yaml = r#"
rules:
- seriesQuery: 'kafka_lag'
  resources:
    overrides:
      namespace: {resource: namespace}
      consumer: {group: "kafka.example.com", resource: "consumer"}
  metricsQuery: "sum(<<.Series>>) by (<<.GroupBy>>)"
"#;
        let mut e = Engine::new(&parse_adapter_config(yaml).unwrap()).unwrap();
        e.add_series(1, 0, "kafka_lag", ["consumer", "namespace"]);
        assert_eq!(
            metrics(&e),
            [("kafka_lag".to_owned(), "namespaces".to_owned())]
        );
        assert!(e.published().warnings[0].contains("overrides.consumer"));
        let mut api = builtin_api_resources();
        api.push(ApiResource {
            group: "kafka.example.com".into(),
            version: "v1".into(),
            resource: "consumers".into(),
            singular: "consumer".into(),
            kind: "Consumer".into(),
            namespaced: true,
        });
        e.set_api_resources(api);
        let got = metrics(&e);
        assert_eq!(
            got[0],
            (
                "kafka_lag".to_owned(),
                "consumers.kafka.example.com".to_owned()
            )
        );
        assert!(e.published().warnings.is_empty());
    }
}
