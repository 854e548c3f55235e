//! The glue to the SDK's `Plugin` trait (contract 0.4.0).
//!
//! The plan's first inputs are the discovery selectors (`prometheus-series-shapes`, one per
//! distinct `seriesQuery`, always at the same indices), then one `prometheus` query per
//! published metric and target, then the resource queries. The engine needs a discovered
//! series' name and label names, not its label values, so the host sends one series per shape
//! (100,000 series of two metrics over 2,000 pods are two). When what it publishes changes, or
//! the cluster's API resources do, the plugin returns a `replan` and, since the host then
//! announces every series again, starts its series state afresh.

use std::collections::{BTreeSet, HashMap};

use metrics_gateway_sdk::types::{ApiResource, Label};
use metrics_gateway_sdk::{CycleInput, CycleOutput, InputSpec, MetricSpec, Plan, Plugin, log};

use crate::config::{Config, parse_adapter_config};
use crate::engine::Engine;
use crate::resource_rules::{ResourceQuery, Scope};
use crate::rules::{MetricQuery, MetricValue, Target};

/// What one query input answers: indices into the published metric and resource queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Answers {
    metrics: Vec<usize>,
    resources: Vec<usize>,
}

/// A plan and what each of its inputs answers.
#[derive(Debug, Clone)]
struct Layout {
    plan: Plan,
    answers: Vec<Answers>,
    queries: Vec<MetricQuery>,
    resource_queries: Vec<ResourceQuery>,
    warnings: Vec<String>,
}

/// The plugin.
pub struct Compat {
    backend: String,
    max_age_ms: u64,
    engine: Engine,
    layout: Layout,
    /// Labels of the live query result series, by id, with their input.
    results: HashMap<u64, (u32, Vec<Label>)>,
}

/// The spec a published query's metric is listed with.
fn metric_spec(q: &MetricQuery) -> MetricSpec {
    match &q.target {
        Target::Custom {
            resource,
            namespaced,
            ..
        } => MetricSpec::custom_scoped(&q.metric, resource, *namespaced),
        Target::External { namespace_label } => {
            MetricSpec::external(&q.metric, namespace_label.is_some())
        }
    }
}

/// The plan for what `engine` publishes now.
fn layout(engine: &Engine, backend: &str, max_age_ms: u64) -> Result<Layout, String> {
    let mut plan = Plan::new();
    for selector in engine.selectors() {
        plan.add_input(InputSpec::prometheus_series_shapes(backend, selector));
    }
    let mut answers = vec![Answers::default(); plan.inputs.len()];
    let mut answer = |plan: &mut Plan, query: &str| -> usize {
        let input = plan.add_input(InputSpec::prometheus(backend, query)) as usize;
        if answers.len() <= input {
            answers.resize(input + 1, Answers::default());
        }
        input
    };
    let published = engine.published();
    let mut slots = Vec::new();
    for q in &published.queries {
        slots.push(answer(&mut plan, &q.query));
        plan.add_metric(metric_spec(q).with_max_age_ms(max_age_ms))?;
    }
    let resource_queries = engine.resource_queries()?;
    let mut resource_slots = Vec::new();
    for q in &resource_queries {
        resource_slots.push(answer(&mut plan, &q.query));
        let resource = match q.scope {
            Scope::Containers { .. } => "pods",
            Scope::Nodes { .. } => "nodes",
        };
        plan.add_metric(MetricSpec::resource(q.metric, resource).with_max_age_ms(max_age_ms))?;
    }
    for (i, input) in slots.into_iter().enumerate() {
        answers[input].metrics.push(i);
    }
    for (i, input) in resource_slots.into_iter().enumerate() {
        answers[input].resources.push(i);
    }
    Ok(Layout {
        plan,
        answers,
        queries: published.queries,
        resource_queries,
        warnings: published.warnings,
    })
}

impl Compat {
    /// Whether input `index` is a discovery selector.
    fn is_discovery(&self, index: u32) -> bool {
        (index as usize) < self.engine.selectors().len()
    }

    /// Reports the metrics of each failed query input as failed, with the host's message.
    fn report_failures(&self, input: &CycleInput, out: &mut CycleOutput) {
        let mut failed = BTreeSet::new();
        for failure in &input.failures {
            if self.is_discovery(failure.input) {
                log::warn(&format!(
                    "discovery failed, keeping the series found before: {}",
                    failure.message
                ));
                continue;
            }
            let Some(answers) = self.layout.answers.get(failure.input as usize) else {
                continue;
            };
            let metrics = answers
                .metrics
                .iter()
                .map(|&i| self.layout.queries[i].metric.as_str())
                .chain(
                    answers
                        .resources
                        .iter()
                        .map(|&i| self.layout.resource_queries[i].metric),
                );
            for metric in metrics {
                if failed.insert(metric) {
                    out.fail(metric, &failure.message);
                }
            }
        }
    }
}

impl Plugin for Compat {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        let adapter = parse_adapter_config(&config.adapter_config)?;
        let engine = Engine::new(&adapter)?;
        let layout = layout(&engine, &config.backend, config.max_age_ms)?;
        let plan = layout.plan.clone();
        let plugin = Compat {
            backend: config.backend,
            max_age_ms: config.max_age_ms,
            engine,
            layout,
            results: HashMap::new(),
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        let mut changed = false;
        if let Some(api) = &input.api_resources {
            let api: Vec<ApiResource> = api.clone();
            self.engine.set_api_resources(api);
            changed = true;
        }
        for id in &input.removed {
            if self.results.remove(id).is_none() {
                self.engine.remove_series(*id);
                changed = true;
            }
        }
        for series in &input.added {
            if self.is_discovery(series.input) {
                let names = series.labels.iter().map(|l| l.name.as_str());
                self.engine
                    .add_series(series.id, series.input, &series.name, names);
                changed = true;
            } else {
                self.results
                    .insert(series.id, (series.input, series.labels.clone()));
            }
        }

        let mut out = CycleOutput::new();
        for sample in input.samples() {
            let Some((index, labels)) = self.results.get(&sample.id) else {
                continue;
            };
            let Some(answers) = self.layout.answers.get(*index as usize) else {
                continue;
            };
            for &q in &answers.metrics {
                match self.layout.queries[q].value(labels, sample.value, sample.timestamp_ms) {
                    Some(MetricValue::Custom(v)) => out.custom.push(v),
                    Some(MetricValue::External(v)) => out.external.push(v),
                    None => {}
                }
            }
            for &q in &answers.resources {
                let query = &self.layout.resource_queries[q];
                if let Some(v) = query.value(labels, sample.value, sample.timestamp_ms) {
                    out.resource.push(v);
                }
            }
        }
        self.report_failures(input, &mut out);

        if changed {
            let next = layout(&self.engine, &self.backend, self.max_age_ms)?;
            if next.plan != self.layout.plan {
                for warning in &next.warnings {
                    log::warn(warning);
                }
                log::info(&format!(
                    "replan: {} metric queries and {} resource queries over {} discovered series shapes",
                    next.queries.len(),
                    next.resource_queries.len(),
                    self.engine.series_count()
                ));
                out.replan = Some(next.plan.clone());
                self.layout = next;
                // The host announces every series again under the new plan.
                self.engine.clear_series();
                self.results.clear();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::ObjectRef;
    use metrics_gateway_sdk::testing::Harness;
    use metrics_gateway_sdk::types::{MetricKind, Source};

    fn config(yaml: &str) -> String {
        serde_json::json!({ "adapter_config": yaml, "backend": "main" }).to_string()
    }

    const QUEUE_DEPTH: &str = r#"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
"#;

    const QUEUE_SERIES: &[(&str, &str)] =
        &[("name", "orders"), ("namespace", "shop"), ("topic", "t")];

    /// Runs discovery of `series` (name, labels) on selector input 0 and returns the harness
    /// after the replan took effect.
    fn discovered(yaml: &str, series: &[(&str, &[(&str, &str)])]) -> Harness<Compat> {
        let mut h = Harness::<Compat>::new(&config(yaml)).unwrap();
        let mut cycle = h.cycle(15_000);
        for (name, labels) in series {
            cycle = cycle.discovered(Source::PrometheusSeriesShapes, name, labels);
        }
        let out = cycle.run().unwrap();
        assert!(out.replan().is_some(), "discovery publishes");
        h
    }

    #[test]
    fn discovery_then_queries_external_queue_depth() {
        let mut h = Harness::<Compat>::new(&config(QUEUE_DEPTH)).unwrap();
        assert_eq!(
            h.plan().inputs,
            [InputSpec::prometheus_series_shapes(
                "main",
                r#"{__name__="queue_depth",topic!=""}"#
            )]
        );
        assert!(h.plan().metrics.is_empty());
        let out = h
            .cycle(15_000)
            .discovered(Source::PrometheusSeriesShapes, "queue_depth", QUEUE_SERIES)
            .run()
            .unwrap();
        let replan = out
            .replan()
            .expect("discovery publishes queue_depth")
            .clone();
        assert_eq!(
            replan.inputs[1],
            InputSpec::prometheus(
                "main",
                r#"sum(queue_depth{namespace!=""}) by (name,namespace)"#
            )
        );
        assert_eq!(replan.metrics, [MetricSpec::external("queue_depth", true)]);

        // Next cycle: every series again under the new plan, and the query's results.
        let out = h
            .cycle(30_000)
            .discovered(Source::PrometheusSeriesShapes, "queue_depth", QUEUE_SERIES)
            .sample_from(
                Source::Prometheus,
                "",
                &[("name", "orders.v2"), ("namespace", "shop")],
                27_500,
                12.0,
            )
            .sample_from(
                Source::Prometheus,
                "",
                &[("name", "orders-v2"), ("namespace", "shop")],
                27_500,
                3.0,
            )
            .sample_from(
                Source::Prometheus,
                "",
                &[("name", "orders"), ("namespace", "other")],
                27_500,
                5.0,
            )
            .run()
            .unwrap();
        assert!(out.replan().is_none(), "the plan is stable");
        let shop = out.external_values("queue_depth", "shop");
        assert_eq!(shop.len(), 2);
        assert!(
            shop.iter().all(|v| v.timestamp_ms == 27_500),
            "Prometheus' sample timestamps"
        );
        assert_eq!(out.external("queue_depth", "other"), Some(5.0));
    }

    #[test]
    fn failed_query_fails_its_metric_and_recovers() {
        let mut h = discovered(QUEUE_DEPTH, &[("queue_depth", QUEUE_SERIES)]);
        let message = r#"prometheus "main": GET /api/v1/query: connection refused"#;
        let out = h
            .cycle(30_000)
            .discovered(Source::PrometheusSeriesShapes, "queue_depth", QUEUE_SERIES)
            .sample_from(
                Source::Prometheus,
                "",
                &[("name", "q"), ("namespace", "shop")],
                30_000,
                1.0,
            )
            .fail(1, message)
            .run()
            .unwrap();
        assert_eq!(out.failed("queue_depth"), Some(message));
        assert!(
            out.replan().is_none(),
            "a failed query does not change the plan"
        );
        let out = h
            .cycle(45_000)
            .discovered(Source::PrometheusSeriesShapes, "queue_depth", QUEUE_SERIES)
            .sample_from(
                Source::Prometheus,
                "",
                &[("name", "q"), ("namespace", "shop")],
                45_000,
                2.0,
            )
            .run()
            .unwrap();
        assert_eq!(out.failed("queue_depth"), None);
        assert_eq!(out.external("queue_depth", "shop"), Some(2.0));
    }

    #[test]
    fn non_namespaced_external_keeps_labels() {
        let yaml = r#"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    namespaced: false
"#;
        let mut h = discovered(yaml, &[("queue_depth", QUEUE_SERIES)]);
        assert_eq!(
            h.plan().metrics,
            [MetricSpec::external("queue_depth", false)]
        );
        assert_eq!(h.plan().inputs[1].name, "sum(queue_depth{}) by (name)");
        let out = h
            .cycle(30_000)
            .discovered(Source::PrometheusSeriesShapes, "queue_depth", QUEUE_SERIES)
            .sample_from(Source::Prometheus, "", &[("name", "orders")], 30_000, 4.0)
            .run()
            .unwrap();
        let values = out.external_values("queue_depth", "");
        assert_eq!(values.len(), 1);
        assert_eq!(
            values[0].labels,
            metrics_gateway_sdk::types::labels(&[("name", "orders")])
        );
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
    fn container_rates_for_2000_pods_with_one_short_query() {
        let labels = &[("container", "app"), ("namespace", "big"), ("pod", "web-0")];
        let mut h = discovered(
            CONTAINER_RATES,
            &[
                ("container_cpu_usage_seconds_total", labels),
                ("container_memory_usage_bytes", labels),
            ],
        );
        let metrics: Vec<(&str, &str, MetricKind)> = h
            .plan()
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.resource.as_str(), m.kind))
            .collect();
        assert_eq!(
            metrics,
            [
                ("cpu_usage", "namespaces", MetricKind::Custom),
                ("cpu_usage", "pods", MetricKind::Custom)
            ]
        );
        let pods_query = &h.plan().inputs[2].name;
        assert_eq!(
            pods_query,
            r#"sum(rate(container_cpu_usage_seconds_total{namespace!="",pod!="",container!="POD"}[2m])) by (namespace,pod)"#
        );
        assert!(pods_query.len() < 120, "{} bytes", pods_query.len());
        // The first query input is the namespaces query: feed it one value per namespace.
        let names: Vec<String> = (0..2000).map(|i| format!("web-{i}")).collect();
        let mut cycle = h.cycle(30_000).discovered(
            Source::PrometheusSeriesShapes,
            "container_cpu_usage_seconds_total",
            labels,
        );
        for ns in &names {
            cycle = cycle.sample_from(Source::Prometheus, "", &[("namespace", ns)], 29_000, 0.5);
        }
        let out = cycle.run().unwrap();
        assert_eq!(out.custom_values("cpu_usage").len(), 2000);
        assert_eq!(
            out.custom("cpu_usage", &ObjectRef::namespace("web-1999")),
            Some(0.5)
        );
        assert_eq!(
            out.custom_value("cpu_usage", &ObjectRef::namespace("web-7"))
                .unwrap()
                .window_ms,
            120_000
        );
    }

    #[test]
    fn api_resources_map_custom_resources() {
        let yaml = r#"
rules:
- seriesQuery: 'kafka_consumer_lag{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      consumergroup: {group: "kafka.example.com", resource: "ConsumerGroup"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
        let mut h = Harness::<Compat>::new(&config(yaml)).unwrap();
        let mut api = crate::resources::builtin_api_resources();
        api.push(ApiResource {
            group: "kafka.example.com".into(),
            version: "v1".into(),
            resource: "consumergroups".into(),
            singular: "consumergroup".into(),
            kind: "ConsumerGroup".into(),
            namespaced: true,
        });
        h.api_resources(api);
        let series: &[(&str, &str)] = &[("consumergroup", "billing.v1"), ("namespace", "kafka")];
        let out = h
            .cycle(15_000)
            .discovered(Source::PrometheusSeriesShapes, "kafka_consumer_lag", series)
            .run()
            .unwrap();
        let replan = out.replan().unwrap();
        let resources: Vec<&str> = replan.metrics.iter().map(|m| m.resource.as_str()).collect();
        assert_eq!(
            resources,
            ["consumergroups.kafka.example.com", "namespaces"]
        );
        assert_eq!(
            replan.inputs[1].name,
            r#"max(kafka_consumer_lag{namespace!="",consumergroup!=""}) by (namespace,consumergroup)"#
        );
        let out = h
            .cycle(30_000)
            .discovered(Source::PrometheusSeriesShapes, "kafka_consumer_lag", series)
            .sample_from(Source::Prometheus, "", series, 30_000, 42.0)
            .run()
            .unwrap();
        let object = ObjectRef::new("consumergroups.kafka.example.com", "kafka", "billing.v1");
        assert_eq!(out.custom("kafka_consumer_lag", &object), Some(42.0));
    }

    #[test]
    fn resource_rules_serve_resource_values() {
        let yaml = r#"
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
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 3m
"#;
        let mut h = Harness::<Compat>::new(&config(yaml)).unwrap();
        let metrics: Vec<(&str, &str)> = h
            .plan()
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.resource.as_str()))
            .collect();
        assert_eq!(
            metrics,
            [
                ("cpu", "pods"),
                ("cpu", "nodes"),
                ("memory", "pods"),
                ("memory", "nodes")
            ]
        );
        let out = h
            .cycle(15_000)
            .sample_from(
                Source::Prometheus,
                "",
                &[("container", "app"), ("namespace", "web"), ("pod", "api-1")],
                14_000,
                0.25,
            )
            .run()
            .unwrap();
        assert_eq!(
            out.resource("cpu", &ObjectRef::pod("web", "api-1"), "app"),
            Some(0.25)
        );
        assert_eq!(out.raw().resource[0].window_ms, 180_000);
        assert_eq!(out.raw().resource[0].timestamp_ms, 14_000);
    }

    #[test]
    fn configure_refusals_name_the_rule() {
        let err = |yaml: &str| Harness::<Compat>::new(&config(yaml)).err().unwrap();
        let e = err("rules:\n- seriesQuery: x\n  metricsQuery: '<<foo>>'\n");
        assert_eq!(
            e,
            r#"rules[0].metricsQuery: template function "foo" is not supported"#
        );
        let e = err("externalRules:\n- seriesQuery: x\n  metricsQuery: 'sum(<<.Series>>)'\n");
        assert!(
            e.starts_with("externalRules[0].metricsQuery: `sum(…)` without `by (…)`"),
            "{e}"
        );
        let e = err("rules: [}\n");
        assert!(e.starts_with("adapter_config: "), "{e}");
        let e = Harness::<Compat>::new(r#"{"adapter_config": "", "rules_yaml": ""}"#)
            .err()
            .unwrap();
        assert!(e.contains("rules_yaml"), "{e}");
    }
}
