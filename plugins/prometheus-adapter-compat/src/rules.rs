//! A compiled `rules`/`externalRules` entry: from a discovered series family (name and label
//! names) to the metrics it publishes and the one query per metric and resource that computes
//! every object's value, and from that query's result series back to values.

use std::collections::{BTreeMap, BTreeSet};

use metrics_gateway_sdk::ObjectRef;
use metrics_gateway_sdk::types::{CustomValue, ExternalValue, Label, label};

use crate::config::DiscoveryRule;
use crate::naming::Naming;
use crate::promql;
use crate::resources::{Association, LabelMap, NAMESPACES};
use crate::template::{Template, Value};

/// The fields of a `metricsQuery` (and of resourceRules' queries).
pub const QUERY_FIELDS: &[&str] = &[
    "Series",
    "LabelMatchers",
    "GroupBy",
    "GroupBySlice",
    "LabelValuesByName",
];

/// The label a namespaced external rule reads the namespace from when its `resources` name
/// none (prometheus-adapter's convention).
pub const DEFAULT_NAMESPACE_LABEL: &str = "namespace";

/// Which API a rule serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `rules`: custom metrics on objects.
    Custom,
    /// `externalRules`: external metrics.
    External,
}

/// A rule ready to use.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where it is in the config: `rules[2]`, `externalRules[0]`.
    pub place: String,
    /// Its API.
    pub kind: Kind,
    /// The series selector for discovery.
    pub series_query: String,
    /// External rules: values belong to namespaces.
    pub namespaced: bool,
    naming: Naming,
    association: Association,
    query: Template,
}

/// What a metric's values are attached to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Objects of `resource` named by `object_label`, in the namespace `namespace_label` names
    /// (namespaced resources).
    Custom {
        /// `pods`, `deployments.apps`.
        resource: String,
        /// Whether the objects are namespaced.
        namespaced: bool,
        /// The label naming the object.
        object_label: String,
        /// The label naming its namespace (namespaced resources).
        namespace_label: Option<String>,
    },
    /// External values, with their namespace from `namespace_label` when namespaced.
    External {
        /// The label naming the namespace (namespaced rules).
        namespace_label: Option<String>,
    },
}

/// One published metric and the query computing it for every object at once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricQuery {
    /// API name.
    pub metric: String,
    /// What the values describe.
    pub target: Target,
    /// The PromQL instant query.
    pub query: String,
    /// The Prometheus series name it was discovered as.
    pub series: String,
    /// The longest range in the query, ms (the values' window); 0 for instant values.
    pub window_ms: u64,
}

/// A value computed from one result series.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A custom metric value.
    Custom(CustomValue),
    /// An external metric value.
    External(ExternalValue),
}

/// Whether `name` can be a metric name in the API's URL paths (as the host checks plans).
fn valid_metric_name(name: &str) -> bool {
    name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// `l!=""` for each label: the selection every object satisfies.
fn non_empty_matchers(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("{l}!=\"\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders `template` for `series` grouped by `group_by`, then makes sure every aggregation
/// keeps those labels. `<<.LabelMatchers>>` is `l!=""` for each of them, `<<.GroupBy>>` the
/// labels, `<<.LabelValuesByName>>` `.+` for each (the regex every object matches).
pub fn render_query(
    template: &Template,
    series: &str,
    matched: &[String],
    group_by: &[String],
) -> Result<String, String> {
    let fields = BTreeMap::from([
        ("Series", Value::Str(series.to_owned())),
        ("LabelMatchers", Value::Str(non_empty_matchers(matched))),
        ("GroupBy", Value::Str(group_by.join(","))),
        ("GroupBySlice", Value::List(group_by.to_vec())),
        (
            "LabelValuesByName",
            Value::Map(
                matched
                    .iter()
                    .map(|l| (l.clone(), ".+".to_owned()))
                    .collect(),
            ),
        ),
    ]);
    let query = template.render(&fields);
    if query.trim().is_empty() {
        return Err("the query renders empty".to_owned());
    }
    promql::keep_labels(&query, group_by)
}

impl Rule {
    /// Compiles rule `index` of `section` (`rules`, `externalRules`); errors name the place
    /// and the field (`rules[3].metricsQuery: template function "foo" is not supported`).
    pub fn compile(
        section: &str,
        index: usize,
        rule: &DiscoveryRule,
        kind: Kind,
    ) -> Result<Rule, String> {
        let place = format!("{section}[{index}]");
        let err = |e: String| format!("{place}.{e}");
        if rule.series_query.trim().is_empty() {
            return Err(err("seriesQuery: empty".to_owned()));
        }
        let naming = Naming::new(&rule.name, &rule.series_filters).map_err(err)?;
        let association = Association::new(&rule.resources).map_err(err)?;
        if kind == Kind::Custom && rule.resources.namespaced.is_some() {
            return Err(err(
                "resources.namespaced: only external rules have it (custom metrics take the scope of their resource)"
                    .to_owned(),
            ));
        }
        let query = Template::parse(&rule.metrics_query, QUERY_FIELDS)
            .map_err(|e| err(format!("metricsQuery: {e}")))?;
        let compiled = Rule {
            place: place.clone(),
            kind,
            series_query: rule.series_query.clone(),
            namespaced: rule.resources.namespaced.unwrap_or(true),
            naming,
            association,
            query,
        };
        // Check the query keeps an object's labels, with the labels of a typical object.
        let sample: Vec<String> = match (kind, compiled.namespaced) {
            (Kind::Custom, _) => vec!["namespace".into(), "pod".into()],
            (Kind::External, true) => vec![DEFAULT_NAMESPACE_LABEL.into()],
            (Kind::External, false) => Vec::new(),
        };
        render_query(&compiled.query, "series", &sample, &sample)
            .map_err(|e| err(format!("metricsQuery: {e}")))?;
        Ok(compiled)
    }

    /// The label map of this rule against the cluster's API resources.
    pub fn label_map(&self, api: &[metrics_gateway_sdk::types::ApiResource]) -> LabelMap {
        self.association.resolve(api)
    }

    /// The metrics a discovered family (series `name` with `label_names` across its series)
    /// publishes and their queries: custom rules one per resource whose label the family has
    /// (namespaced resources also need the namespace label), external rules one. Empty when
    /// the rule's naming rejects the name.
    pub fn queries(
        &self,
        name: &str,
        label_names: &BTreeSet<String>,
        map: &LabelMap,
    ) -> Result<Vec<MetricQuery>, String> {
        let Some(metric) = self.naming.api_name(name) else {
            return Ok(Vec::new());
        };
        if !valid_metric_name(&metric) {
            return Err(format!(
                "{}.name.as: series {name:?} gets the metric name {metric:?}, which is not 1-253 \
                 letters, digits, '_', '-', '.', ':' starting with a letter or digit",
                self.place
            ));
        }
        let namespace_label = map.namespace_label().map(str::to_owned);
        let mut out = Vec::new();
        let mut push = |target: Target, group: Vec<String>| -> Result<(), String> {
            let query = render_query(&self.query, name, &group, &group)
                .map_err(|e| format!("{}.metricsQuery: {e}", self.place))?;
            let window_ms = promql::longest_range_ms(&query)
                .map_err(|e| format!("{}.metricsQuery: {e}", self.place))?;
            out.push(MetricQuery {
                metric: metric.clone(),
                target,
                query,
                series: name.to_owned(),
                window_ms,
            });
            Ok(())
        };
        match self.kind {
            Kind::External => {
                let namespace_label = self.namespaced.then(|| {
                    namespace_label
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE_LABEL.to_owned())
                });
                let group: Vec<String> = namespace_label.iter().cloned().collect();
                push(Target::External { namespace_label }, group)?;
            }
            Kind::Custom => {
                for (label, resolved) in &map.labels {
                    if !label_names.contains(label) {
                        continue;
                    }
                    let (namespace, group) = if resolved.resource == NAMESPACES {
                        (None, vec![label.clone()])
                    } else if resolved.namespaced {
                        match &namespace_label {
                            Some(ns) if label_names.contains(ns) => {
                                (Some(ns.clone()), vec![ns.clone(), label.clone()])
                            }
                            _ => continue,
                        }
                    } else {
                        (None, vec![label.clone()])
                    };
                    let target = Target::Custom {
                        resource: resolved.resource.clone(),
                        namespaced: resolved.namespaced,
                        object_label: label.clone(),
                        namespace_label: namespace,
                    };
                    push(target, group)?;
                }
            }
        }
        Ok(out)
    }
}

impl MetricQuery {
    /// The value one result series of this query gives: its object (custom) or namespace
    /// (external) read from its labels; `None` when a label it needs is missing or empty.
    /// All the series' labels are kept (for `metricLabelSelector` / `labelSelector`).
    pub fn value(&self, labels: &[Label], value: f64, timestamp_ms: i64) -> Option<MetricValue> {
        let non_empty = |name: &str| label(labels, name).filter(|v| !v.is_empty());
        match &self.target {
            Target::Custom {
                resource,
                object_label,
                namespace_label,
                ..
            } => {
                let name = non_empty(object_label)?;
                let namespace = match namespace_label {
                    Some(l) => non_empty(l)?,
                    None => "",
                };
                Some(MetricValue::Custom(CustomValue {
                    metric: self.metric.clone(),
                    object: ObjectRef::new(resource.as_str(), namespace, name),
                    labels: labels.to_vec(),
                    value,
                    timestamp_ms,
                    window_ms: self.window_ms,
                }))
            }
            Target::External { namespace_label } => {
                let namespace = match namespace_label {
                    Some(l) => non_empty(l)?,
                    None => "",
                };
                Some(MetricValue::External(ExternalValue {
                    metric: self.metric.clone(),
                    namespace: namespace.to_owned(),
                    labels: labels.to_vec(),
                    value,
                    timestamp_ms,
                    window_ms: self.window_ms,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_adapter_config;
    use crate::resources::builtin_api_resources;
    use metrics_gateway_sdk::types::labels;

    fn rule(yaml: &str, kind: Kind) -> Result<Rule, String> {
        let config = parse_adapter_config(yaml).unwrap();
        match kind {
            Kind::Custom => Rule::compile("rules", 0, &config.rules[0], kind),
            Kind::External => Rule::compile("externalRules", 0, &config.external_rules[0], kind),
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn queries(rule: &Rule, series: &str, label_names: &[&str]) -> Vec<MetricQuery> {
        let map = rule.label_map(&builtin_api_resources());
        rule.queries(series, &names(label_names), &map).unwrap()
    }

    const CONTAINER_RATES: &str = r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^container_(.*)_seconds_total$"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
"#;

    #[test]
    fn container_rates_of_the_docs() {
        let rule = rule(CONTAINER_RATES, Kind::Custom).unwrap();
        let qs = queries(
            &rule,
            "container_cpu_usage_seconds_total",
            &["container", "namespace", "pod", "node"],
        );
        assert_eq!(qs.len(), 2, "{qs:#?}");
        let namespaces = &qs[0];
        assert_eq!(namespaces.metric, "cpu_usage");
        assert_eq!(
            namespaces.query,
            r#"sum(rate(container_cpu_usage_seconds_total{namespace!="",container!="POD"}[2m])) by (namespace)"#
        );
        let pods = &qs[1];
        assert_eq!(
            pods.query,
            r#"sum(rate(container_cpu_usage_seconds_total{namespace!="",pod!="",container!="POD"}[2m])) by (namespace,pod)"#
        );
        assert_eq!(pods.window_ms, 120_000);
        assert_eq!(
            pods.target,
            Target::Custom {
                resource: "pods".into(),
                namespaced: true,
                object_label: "pod".into(),
                namespace_label: Some("namespace".into()),
            }
        );
        // Not named by the rule: nothing.
        assert!(queries(&rule, "container_memory_usage_bytes", &["namespace", "pod"]).is_empty());
    }

    #[test]
    fn result_series_map_to_exact_objects() {
        let rule = rule(CONTAINER_RATES, Kind::Custom).unwrap();
        let pods = queries(
            &rule,
            "container_cpu_usage_seconds_total",
            &["namespace", "pod"],
        )
        .remove(1);
        for pod in ["web.1", "web-1", "web1", "a+b(c)*"] {
            let l = labels(&[("namespace", "prod.eu-1"), ("pod", pod)]);
            let Some(MetricValue::Custom(v)) = pods.value(&l, 0.25, 1_700_000_000_123) else {
                panic!("no value for {pod}");
            };
            assert_eq!(v.object, ObjectRef::pod("prod.eu-1", pod));
            assert_eq!(v.timestamp_ms, 1_700_000_000_123);
            assert_eq!(v.window_ms, 120_000);
        }
        assert_eq!(pods.value(&labels(&[("pod", "a")]), 1.0, 0), None);
        assert_eq!(
            pods.value(&labels(&[("namespace", "n"), ("pod", "")]), 1.0, 0),
            None
        );
    }

    #[test]
    fn generic_gauges_and_rates_with_a_template() {
        let yaml = r#"
rules:
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  resources:
    template: "<<.Resource>>"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"
"#;
        let rule = rule(yaml, Kind::Custom).unwrap();
        let qs = queries(
            &rule,
            "http_requests_total",
            &["namespace", "pod", "service", "verb"],
        );
        let got: Vec<(&str, &str)> = qs
            .iter()
            .map(|q| match &q.target {
                Target::Custom { resource, .. } => (resource.as_str(), q.query.as_str()),
                Target::External { .. } => panic!("custom rule"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "namespaces",
                    r#"sum(rate(http_requests_total{namespace!=""}[2m])) by (namespace)"#
                ),
                (
                    "pods",
                    r#"sum(rate(http_requests_total{namespace!="",pod!=""}[2m])) by (namespace,pod)"#
                ),
                (
                    "services",
                    r#"sum(rate(http_requests_total{namespace!="",service!=""}[2m])) by (namespace,service)"#
                ),
            ]
        );
        assert!(qs.iter().all(|q| q.metric == "http_requests_per_second"));

        let gauges = r#"
rules:
- seriesQuery: '{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_bytes$"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (pod)'
"#;
        let rule = super::tests::rule(gauges, Kind::Custom).unwrap();
        let qs = queries(&rule, "memory_bytes", &["namespace", "pod"]);
        // The hard-coded `by (pod)` gains the namespace: one query answers every namespace.
        assert_eq!(
            qs[1].query,
            r#"max(memory_bytes{namespace!="",pod!=""}) by (pod,namespace)"#
        );
        assert_eq!(qs[1].metric, "memory");
    }

    #[test]
    fn external_queue_depth_namespaced_or_not() {
        let namespaced = r#"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
"#;
        let rule = rule(namespaced, Kind::External).unwrap();
        let q = queries(&rule, "queue_depth", &["topic", "name", "namespace"]).remove(0);
        assert_eq!(q.metric, "queue_depth");
        assert_eq!(
            q.query,
            r#"sum(queue_depth{namespace!=""}) by (name,namespace)"#
        );
        let l = labels(&[("name", "orders.v2"), ("namespace", "shop")]);
        let Some(MetricValue::External(v)) = q.value(&l, 7.0, 5) else {
            panic!()
        };
        assert_eq!(
            (v.namespace.as_str(), v.value, v.labels.len()),
            ("shop", 7.0, 2)
        );

        let global = r#"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    namespaced: false
"#;
        let rule = super::tests::rule(global, Kind::External).unwrap();
        assert!(!rule.namespaced);
        let q = queries(&rule, "queue_depth", &["topic", "name", "namespace"]).remove(0);
        assert_eq!(q.query, "sum(queue_depth{}) by (name)");
        let Some(MetricValue::External(v)) = q.value(&labels(&[("name", "q")]), 3.0, 5) else {
            panic!()
        };
        assert_eq!(v.namespace, "");
        assert_eq!(v.labels, labels(&[("name", "q")]));
    }

    #[test]
    fn refusals_name_section_index_and_field() {
        let bad = |query: &str| {
            let yaml = format!("rules:\n- seriesQuery: x\n  metricsQuery: '{query}'\n");
            let config = parse_adapter_config(&yaml).unwrap();
            Rule::compile("rules", 3, &config.rules[0], Kind::Custom).unwrap_err()
        };
        assert_eq!(
            bad("<<foo .Series>>"),
            r#"rules[3].metricsQuery: template function "foo" is not supported"#
        );
        assert_eq!(
            bad("sum(<<.Series>>{<<.LabelMatchers>>})"),
            "rules[3].metricsQuery: `sum(…)` without `by (…)` merges every object into one value; group it `by (<<.GroupBy>>)`"
        );
        let yaml = "rules:\n- seriesQuery: x\n  name: {matches: '[a&&b]'}\n  metricsQuery: y\n";
        let config = parse_adapter_config(yaml).unwrap();
        let err = Rule::compile("rules", 0, &config.rules[0], Kind::Custom).unwrap_err();
        assert!(err.starts_with("rules[0].name.matches: regex"), "{err}");
        let yaml =
            "rules:\n- seriesQuery: x\n  resources: {namespaced: false}\n  metricsQuery: y\n";
        let config = parse_adapter_config(yaml).unwrap();
        let err = Rule::compile("rules", 0, &config.rules[0], Kind::Custom).unwrap_err();
        assert!(err.starts_with("rules[0].resources.namespaced:"), "{err}");
    }

    #[test]
    fn invalid_api_names_are_reported() {
        let yaml = "rules:\n- seriesQuery: x\n  resources: {template: \"<<.Resource>>\"}\n  name: {as: \"my metric\"}\n  metricsQuery: 'max(<<.Series>>) by (<<.GroupBy>>)'\n";
        let rule = rule(yaml, Kind::Custom).unwrap();
        let map = rule.label_map(&builtin_api_resources());
        let err = rule.queries("x", &names(&["node"]), &map).unwrap_err();
        assert!(
            err.starts_with(r#"rules[0].name.as: series "x" gets the metric name "my metric""#),
            "{err}"
        );
    }

    #[test]
    fn the_query_for_thousands_of_pods_stays_short() {
        let rule = rule(CONTAINER_RATES, Kind::Custom).unwrap();
        let pods = queries(
            &rule,
            "container_cpu_usage_seconds_total",
            &["namespace", "pod"],
        )
        .remove(1);
        // The same query serves 2,000 pods or 2 million: no pod name enters it.
        assert!(
            pods.query.len() < 150,
            "{} bytes: {}",
            pods.query.len(),
            pods.query
        );
        let values: Vec<_> = (0..2000)
            .filter_map(|i| {
                let pod = format!("web-{i}");
                pods.value(
                    &labels(&[("namespace", "big"), ("pod", &pod)]),
                    f64::from(i),
                    0,
                )
            })
            .collect();
        assert_eq!(values.len(), 2000);
    }
}
