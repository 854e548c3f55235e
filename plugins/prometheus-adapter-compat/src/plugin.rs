//! The glue to the SDK's `Plugin` trait (contract 0.1.0).
//!
//! Contract 0.1.0 has instant queries (`prometheus` inputs) but no series discovery, no
//! replanning, no API resources and no resource metrics. So this glue serves the rules whose
//! `seriesQuery` names a single metric (the engine is told that metric, with the labels the
//! selector requires, as if discovery had found it), resolves labels against the built-in list
//! of common resources, and refuses rules that need discovery. With contract 0.2.0 the same
//! engine takes `prometheus-series` inputs (`Engine::add_series`/`remove_series`), republishes
//! through `replan` when `Engine::published` changes, reads `api-resources`
//! (`Engine::set_api_resources`), reports failed query inputs as `failed` metrics and serves
//! `Engine::resource_queries` as `resource-value`s.

use metrics_gateway_sdk::types::MetricKind;
use metrics_gateway_sdk::{
    CycleInput, CycleOutput, InputSpec, MetricSpec, Plan, Plugin, SeriesTable, log,
};

use crate::config::{Config, parse_adapter_config};
use crate::engine::Engine;
use crate::promql;
use crate::rules::{MetricQuery, MetricValue, Target};

/// The resources a contract 0.1.0 host accepts for custom metrics.
const V0_1_RESOURCES: &[&str] = &["pods", "nodes", "namespaces", "deployments.apps"];

/// The plugin: the published queries and which plan input answers each.
pub struct Compat {
    queries: Vec<MetricQuery>,
    /// The queries each plan input answers (two metrics may share one query).
    input_queries: Vec<Vec<usize>>,
    series: SeriesTable,
}

/// Tells `engine` the metric each single-metric selector names; refuses the others.
fn discover_statically(engine: &mut Engine) -> Result<(), String> {
    let selectors = engine.selectors().to_vec();
    for (i, selector) in selectors.iter().enumerate() {
        let Some((name, labels)) = promql::single_metric(selector) else {
            let place = engine
                .rules()
                .iter()
                .find(|r| r.series_query == *selector)
                .map_or("rules", |r| r.place.as_str());
            return Err(format!(
                "{place}.seriesQuery: {selector:?} selects several metrics; discovering them needs \
                 plugin contract 0.2.0 (prometheus-series inputs): name one metric \
                 (`name{{…}}` or `{{__name__=\"name\",…}}`)"
            ));
        };
        let id = i as u64;
        engine.add_series(id, i as u32, &name, labels.iter().map(String::as_str));
    }
    Ok(())
}

/// The spec a published query's metric is listed with.
fn metric_spec(q: &MetricQuery, max_age_ms: u64) -> MetricSpec {
    let spec = match &q.target {
        Target::Custom {
            resource,
            namespaced,
            ..
        } => MetricSpec {
            name: q.metric.clone(),
            kind: MetricKind::Custom,
            resource: resource.clone(),
            namespaced: *namespaced,
            max_age_ms: 0,
        },
        Target::External { namespace_label } => {
            MetricSpec::external(&q.metric, namespace_label.is_some())
        }
    };
    spec.with_max_age_ms(max_age_ms)
}

impl Plugin for Compat {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        let adapter = parse_adapter_config(&config.adapter_config)?;
        let mut engine = Engine::new(&adapter)?;
        if engine.has_resource_rules() {
            log::warn("resourceRules: parsed and checked, served from plugin contract 0.2.0 on");
        }
        discover_statically(&mut engine)?;
        let published = engine.published();
        for warning in &published.warnings {
            log::warn(warning);
        }
        // Contract 0.1.0 hosts serve custom metrics on these resources only.
        let (queries, dropped): (Vec<MetricQuery>, Vec<MetricQuery>) = published
            .queries
            .into_iter()
            .partition(|q| match &q.target {
                Target::Custom { resource, .. } => V0_1_RESOURCES.contains(&resource.as_str()),
                Target::External { .. } => true,
            });
        for q in &dropped {
            if let Target::Custom { resource, .. } = &q.target {
                log::warn(&format!(
                    "metric {:?} on {resource}: served from plugin contract 0.2.0 on (0.1.0 serves {})",
                    q.metric,
                    V0_1_RESOURCES.join(", ")
                ));
            }
        }
        let mut plan = Plan::new();
        let mut input_queries: Vec<Vec<usize>> = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let input = plan.add_input(InputSpec::prometheus(&config.backend, &q.query)) as usize;
            if input_queries.len() <= input {
                input_queries.resize(input + 1, Vec::new());
            }
            input_queries[input].push(i);
            plan.add_metric(metric_spec(q, config.max_age_ms))?;
        }
        let plugin = Compat {
            queries,
            input_queries,
            series: SeriesTable::new(),
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        self.series.apply(input);
        let mut out = CycleOutput::new();
        for sample in input.samples() {
            let Some(series) = self.series.get(sample.id) else {
                continue;
            };
            let Some(queries) = self.input_queries.get(series.input as usize) else {
                continue;
            };
            for &q in queries {
                match self.queries[q].value(&series.labels, sample.value, sample.timestamp_ms) {
                    Some(MetricValue::Custom(v)) => out.custom.push(v),
                    Some(MetricValue::External(v)) => out.external.push(v),
                    None => {}
                }
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

    fn config(yaml: &str) -> String {
        serde_json::json!({ "adapter_config": yaml, "backend": "main" }).to_string()
    }

    const QUEUE_DEPTH: &str = r#"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
"#;

    #[test]
    fn external_queue_depth_end_to_end() {
        let mut h = Harness::<Compat>::new(&config(QUEUE_DEPTH)).unwrap();
        let plan = h.plan().clone();
        assert_eq!(plan.inputs.len(), 1);
        assert_eq!(plan.inputs[0].backend, "main");
        assert_eq!(
            plan.inputs[0].name,
            r#"sum(queue_depth{namespace!=""}) by (name,namespace)"#
        );
        assert_eq!(plan.metrics, [MetricSpec::external("queue_depth", true)]);
        // Prometheus' own sample timestamps are kept.
        let out = h
            .cycle(1_700_000_015_000)
            .sample_at(
                "",
                &[("name", "orders.v2"), ("namespace", "shop")],
                1_700_000_011_500,
                12.0,
            )
            .sample_at(
                "",
                &[("name", "orders-v2"), ("namespace", "shop")],
                1_700_000_011_500,
                3.0,
            )
            .sample_at(
                "",
                &[("name", "orders"), ("namespace", "other")],
                1_700_000_011_500,
                5.0,
            )
            .run()
            .unwrap();
        let shop = out.external_values("queue_depth", "shop");
        assert_eq!(shop.len(), 2);
        assert!(shop.iter().all(|v| v.timestamp_ms == 1_700_000_011_500));
        assert_eq!(out.external("queue_depth", "other"), Some(5.0));
    }

    #[test]
    fn custom_single_metric_rule_on_pods() {
        let yaml = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;
        let mut h = Harness::<Compat>::new(&config(yaml)).unwrap();
        let names: Vec<(&str, &str)> = h
            .plan()
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.resource.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("http_requests_per_second", "namespaces"),
                ("http_requests_per_second", "pods")
            ]
        );
        // The namespaces query is the plan's first input; feed the pods one by its text.
        let pods_query = h.plan().inputs[1].name.clone();
        assert_eq!(
            pods_query,
            r#"sum(rate(http_requests_total{namespace!="",pod!=""}[2m])) by (namespace,pod)"#
        );
        let out = h
            .cycle(60_000)
            .sample("", &[("namespace", "web")], 9.0)
            .run()
            .unwrap();
        assert_eq!(
            out.custom("http_requests_per_second", &ObjectRef::namespace("web")),
            Some(9.0)
        );
        let v = out
            .custom_value("http_requests_per_second", &ObjectRef::namespace("web"))
            .unwrap();
        assert_eq!(v.window_ms, 120_000);
    }

    #[test]
    fn resources_a_0_1_host_cannot_serve_are_left_out() {
        let yaml = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",service!="",deployment!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;
        let h = Harness::<Compat>::new(&config(yaml)).unwrap();
        let resources: Vec<&str> = h
            .plan()
            .metrics
            .iter()
            .map(|m| m.resource.as_str())
            .collect();
        assert_eq!(resources, ["deployments.apps", "namespaces"]);
    }

    #[test]
    fn configure_refusals_name_the_rule() {
        let err = |yaml: &str| Harness::<Compat>::new(&config(yaml)).err().unwrap();
        let e = err("rules:\n- seriesQuery: x\n  metricsQuery: '<<foo>>'\n");
        assert_eq!(
            e,
            r#"rules[0].metricsQuery: template function "foo" is not supported"#
        );
        let e = err(
            "rules:\n- seriesQuery: '{__name__=~\"a.*\"}'\n  metricsQuery: 'max(<<.Series>>) by (<<.GroupBy>>)'\n",
        );
        assert!(e.starts_with("rules[0].seriesQuery: "), "{e}");
        assert!(e.contains("contract 0.2.0"), "{e}");
        let e = err("rules: [}\n");
        assert!(e.starts_with("adapter_config: "), "{e}");
        let e = Harness::<Compat>::new(r#"{"adapter_config": "", "rules_yaml": ""}"#)
            .err()
            .unwrap();
        assert!(e.contains("rules_yaml"), "{e}");
    }
}
