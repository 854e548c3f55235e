//! `resourceRules`: CPU and memory of containers and nodes for `metrics.k8s.io`, one query per
//! metric and scope per cycle.

use metrics_gateway_sdk::ObjectRef;
use metrics_gateway_sdk::types::{Label, ResourceValue, label};

use crate::config::{ResourceRule, ResourceRules};
use crate::promql;
use metrics_gateway_sdk::types::ApiResource;

use crate::resources::Association;
use crate::rules::{QUERY_FIELDS, render_query};
use crate::template::Template;

/// What a resource query's result series describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Containers of pods: the namespace, pod and container labels.
    Containers {
        /// Label naming the namespace.
        namespace_label: String,
        /// Label naming the pod.
        pod_label: String,
        /// Label naming the container.
        container_label: String,
    },
    /// Nodes: the label naming the node.
    Nodes {
        /// Label naming the node.
        node_label: String,
    },
}

/// One resource query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceQuery {
    /// `cpu` or `memory`.
    pub metric: &'static str,
    /// What its series describe.
    pub scope: Scope,
    /// The PromQL instant query.
    pub query: String,
    /// The values' window, ms.
    pub window_ms: u64,
}

/// One compiled metric of `resourceRules`.
#[derive(Debug, Clone)]
struct Compiled {
    metric: &'static str,
    container_query: Template,
    node_query: Template,
    association: Association,
    container_label: String,
}

/// Compiled `resourceRules`.
#[derive(Debug, Clone)]
pub struct CompiledResourceRules {
    metrics: [Compiled; 2],
    window_ms: u64,
}

impl Compiled {
    fn new(metric: &'static str, rule: &ResourceRule) -> Result<Compiled, String> {
        let place = |field: &str| format!("resourceRules.{metric}.{field}");
        let parse = |field: &str, text: &str| {
            Template::parse(text, QUERY_FIELDS).map_err(|e| format!("{}: {e}", place(field)))
        };
        if rule.container_label.is_empty() {
            return Err(format!("{}: empty", place("containerLabel")));
        }
        Ok(Compiled {
            metric,
            container_query: parse("containerQuery", &rule.container_query)?,
            node_query: parse("nodeQuery", &rule.node_query)?,
            association: Association::new(&rule.resources)
                .map_err(|e| format!("resourceRules.{metric}.{e}"))?,
            container_label: rule.container_label.clone(),
        })
    }
}

impl CompiledResourceRules {
    /// Compiles `rules`; the window defaults to the longest range in the queries.
    pub fn compile(rules: &ResourceRules) -> Result<CompiledResourceRules, String> {
        let metrics = [
            Compiled::new("cpu", &rules.cpu)?,
            Compiled::new("memory", &rules.memory)?,
        ];
        let window_ms = match &rules.window {
            Some(w) => {
                promql::parse_duration_ms(w).map_err(|e| format!("resourceRules.window: {e}"))?
            }
            None => {
                let mut longest = 0;
                for (rule, name) in [(&rules.cpu, "cpu"), (&rules.memory, "memory")] {
                    for (field, text) in [
                        ("containerQuery", &rule.container_query),
                        ("nodeQuery", &rule.node_query),
                    ] {
                        longest = longest.max(
                            promql::longest_range_ms(text)
                                .map_err(|e| format!("resourceRules.{name}.{field}: {e}"))?,
                        );
                    }
                }
                if longest == 0 {
                    return Err(
                        "resourceRules.window: required when no query has a range".to_owned()
                    );
                }
                longest
            }
        };
        let compiled = CompiledResourceRules { metrics, window_ms };
        // Refuse queries that merge objects now rather than at the first cycle.
        compiled.queries(&crate::resources::builtin_api_resources())?;
        Ok(compiled)
    }

    /// The queries against `api`: per metric, containers (by namespace, pod and container
    /// label) and nodes (by node label), for the scopes whose labels the rule maps.
    pub fn queries(&self, api: &[ApiResource]) -> Result<Vec<ResourceQuery>, String> {
        let mut out = Vec::new();
        for m in &self.metrics {
            let map = m.association.resolve(api);
            let label_of = |resource: &str| {
                map.labels
                    .iter()
                    .find(|(_, r)| r.resource == resource)
                    .map(|(l, _)| l.clone())
            };
            let place = |field: &str, e: String| format!("resourceRules.{}.{field}: {e}", m.metric);
            if let (Some(namespace_label), Some(pod_label)) =
                (label_of("namespaces"), label_of("pods"))
            {
                let matched = vec![namespace_label.clone(), pod_label.clone()];
                let mut group = matched.clone();
                group.push(m.container_label.clone());
                let query = render_query(&m.container_query, "", &matched, &group)
                    .map_err(|e| place("containerQuery", e))?;
                out.push(ResourceQuery {
                    metric: m.metric,
                    scope: Scope::Containers {
                        namespace_label,
                        pod_label,
                        container_label: m.container_label.clone(),
                    },
                    query,
                    window_ms: self.window_ms,
                });
            }
            if let Some(node_label) = label_of("nodes") {
                let group = vec![node_label.clone()];
                let query = render_query(&m.node_query, "", &group, &group)
                    .map_err(|e| place("nodeQuery", e))?;
                out.push(ResourceQuery {
                    metric: m.metric,
                    scope: Scope::Nodes { node_label },
                    query,
                    window_ms: self.window_ms,
                });
            }
        }
        Ok(out)
    }
}

impl ResourceQuery {
    /// The value one result series gives, or `None` when a label it needs is missing or empty.
    pub fn value(&self, labels: &[Label], value: f64, timestamp_ms: i64) -> Option<ResourceValue> {
        let non_empty = |name: &str| label(labels, name).filter(|v| !v.is_empty());
        let (object, container) = match &self.scope {
            Scope::Containers {
                namespace_label,
                pod_label,
                container_label,
            } => (
                ObjectRef::pod(non_empty(namespace_label)?, non_empty(pod_label)?),
                non_empty(container_label)?.to_owned(),
            ),
            Scope::Nodes { node_label } => (ObjectRef::node(non_empty(node_label)?), String::new()),
        };
        Some(ResourceValue {
            metric: self.metric.to_owned(),
            object,
            container,
            value,
            timestamp_ms,
            window_ms: self.window_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_adapter_config;
    use crate::resources::builtin_api_resources;
    use metrics_gateway_sdk::types::labels;

    const RESOURCE_RULES: &str = r#"
resourceRules:
  cpu:
    containerQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)
    nodeQuery: sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>, id='/'}[3m])) by (<<.GroupBy>>)
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)
    nodeQuery: sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id='/'}) by (<<.GroupBy>>)
    resources:
      overrides:
        instance: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 3m
"#;

    fn compiled(yaml: &str) -> Result<CompiledResourceRules, String> {
        CompiledResourceRules::compile(&parse_adapter_config(yaml).unwrap().resource_rules.unwrap())
    }

    #[test]
    fn container_and_node_queries() {
        let rules = compiled(RESOURCE_RULES).unwrap();
        let qs = rules.queries(&builtin_api_resources()).unwrap();
        let got: Vec<(&str, &str)> = qs.iter().map(|q| (q.metric, q.query.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "cpu",
                    r#"sum(rate(container_cpu_usage_seconds_total{namespace!="",pod!=""}[3m])) by (namespace,pod,container)"#
                ),
                (
                    "cpu",
                    r#"sum(rate(container_cpu_usage_seconds_total{node!="", id='/'}[3m])) by (node)"#
                ),
                (
                    "memory",
                    r#"sum(container_memory_working_set_bytes{namespace!="",pod!=""}) by (namespace,pod,container)"#
                ),
                (
                    "memory",
                    r#"sum(container_memory_working_set_bytes{instance!="",id='/'}) by (instance)"#
                ),
            ]
        );
        let v = qs[0]
            .value(
                &labels(&[("namespace", "a"), ("pod", "p.1"), ("container", "app")]),
                0.5,
                9,
            )
            .unwrap();
        assert_eq!(
            v,
            ResourceValue {
                metric: "cpu".into(),
                object: ObjectRef::pod("a", "p.1"),
                container: "app".into(),
                value: 0.5,
                timestamp_ms: 9,
                window_ms: 180_000,
            }
        );
        let node = qs[3]
            .value(&labels(&[("instance", "n-1")]), 1e9, 9)
            .unwrap();
        assert_eq!(
            (node.object, node.container.as_str()),
            (ObjectRef::node("n-1"), "")
        );
        assert_eq!(
            qs[0].value(&labels(&[("namespace", "a"), ("pod", "p")]), 1.0, 0),
            None
        );
    }

    /// prometheus-adapter's shipped `resourceRules` (deploy/manifests/config-map.yaml): prefix
    /// `sum by`, `irate`, kubelet node series, and a window longer than the ranges.
    const SHIPPED: &str = include_str!("../testdata/shipped-resource-rules.yaml");

    #[test]
    fn the_shipped_rules_compile_into_four_queries() {
        let rules = compiled(SHIPPED).unwrap();
        assert_eq!(rules.window_ms, 300_000, "the window, not the 4m ranges");
        let qs = rules.queries(&builtin_api_resources()).unwrap();
        let got: Vec<(&str, String)> = qs
            .iter()
            .map(|q| {
                (
                    q.metric,
                    q.query.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "cpu",
                    r#"sum by (namespace,pod,container) ( irate ( container_cpu_usage_seconds_total{namespace!="",pod!="",container!="",pod!=""}[4m] ) )"#
                        .to_owned()
                ),
                (
                    "cpu",
                    r#"sum by (node) ( irate( node_cpu_usage_seconds_total{node!=""}[4m] ) )"#
                        .to_owned()
                ),
                (
                    "memory",
                    r#"sum by (namespace,pod,container) ( container_memory_working_set_bytes{namespace!="",pod!="",container!="",pod!=""} )"#
                        .to_owned()
                ),
                (
                    "memory",
                    r#"sum by (node) ( node_memory_working_set_bytes{node!=""} )"#.to_owned()
                ),
            ]
        );
        assert!(matches!(qs[1].scope, Scope::Nodes { ref node_label } if node_label == "node"));
        let v = qs[2]
            .value(
                &labels(&[("namespace", "a"), ("pod", "p"), ("container", "c")]),
                2048.0,
                5,
            )
            .unwrap();
        assert_eq!((v.metric.as_str(), v.window_ms), ("memory", 300_000));
    }

    #[test]
    fn window_defaults_to_the_longest_range_and_refusals() {
        let no_window = RESOURCE_RULES.replace("  window: 3m\n", "");
        assert_eq!(compiled(&no_window).unwrap().window_ms, 180_000);
        let bad = RESOURCE_RULES.replace("window: 3m", "window: 3 minutes");
        assert!(
            compiled(&bad)
                .unwrap_err()
                .starts_with("resourceRules.window: invalid duration")
        );
        let bad = RESOURCE_RULES.replace(
            "sum(container_memory_working_set_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
            "sum(container_memory_working_set_bytes{<<.LabelMatchers>>})",
        );
        let err = compiled(&bad).unwrap_err();
        assert!(
            err.starts_with("resourceRules.memory.containerQuery: `sum(…)` without"),
            "{err}"
        );
    }
}
