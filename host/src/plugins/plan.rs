//! A plugin's plan, validated once at configure: the inputs it reads and the metrics it publishes.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::wit::types;
use crate::config::{Config, PrometheusConfig, ResourceSource, prometheus_backend};
use crate::samples::Source;
use crate::sources::discovery::ApiTable;
use crate::store::custom::{ObjectResource, Watched};

/// Longest metric or derived series name accepted.
const MAX_NAME_LEN: usize = 253;

/// One input of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Where from.
    pub source: Source,
    /// Metric name or prefix pattern (`name*`); the PromQL query for Prometheus.
    pub name: String,
    /// Prometheus backend, empty for the default.
    pub backend: String,
}

/// Which API serves a metric, and for custom metrics the described resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetricTarget {
    /// `custom.metrics.k8s.io`, values per object of this resource.
    Custom(ObjectResource),
    /// `external.metrics.k8s.io`.
    External,
    /// `metrics.k8s.io`: `cpu` or `memory` of pods or nodes.
    Resource(ObjectResource),
}

/// One published metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Name.
    pub name: Arc<str>,
    /// API and resource.
    pub target: MetricTarget,
    /// External: values belong to a namespace. Custom: the resource is namespaced.
    pub namespaced: bool,
    /// The plugin's own staleness limit, ms; 0 for the host's default.
    pub max_age_ms: u64,
}

/// A metric's identity across plugins: two plugins may not publish the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetricKey {
    /// A custom metric of a resource.
    Custom(ObjectResource, Arc<str>),
    /// An external metric.
    External(Arc<str>),
    /// A resource metric (`cpu`, `memory`) of pods or nodes.
    Resource(ObjectResource, Arc<str>),
}

impl Metric {
    /// Its identity.
    pub fn key(&self) -> MetricKey {
        match &self.target {
            MetricTarget::Custom(r) => MetricKey::Custom(r.clone(), self.name.clone()),
            MetricTarget::External => MetricKey::External(self.name.clone()),
            MetricTarget::Resource(r) => MetricKey::Resource(r.clone(), self.name.clone()),
        }
    }
}

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricKey::Custom(r, name) => write!(f, "custom metric {name} of {r}"),
            MetricKey::External(name) => write!(f, "external metric {name}"),
            MetricKey::Resource(r, name) => write!(f, "resource metric {name} of {}", r),
        }
    }
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Inputs, in the plugin's order (series name their input by index).
    pub inputs: Vec<Input>,
    /// Published metrics.
    pub metrics: Vec<Metric>,
    /// Names of the derived series the plugin emits.
    pub derived: Vec<Arc<str>>,
}

/// What a plan is checked against besides itself: the config's Prometheus backends and where
/// `metrics.k8s.io` comes from.
#[derive(Debug, Clone, Default)]
pub struct PlanRules {
    /// The backends Prometheus inputs may name.
    pub backends: Arc<[PrometheusConfig]>,
    /// `metrics.resource_source`: resource metrics are accepted only from `plugins`.
    pub resource_source: ResourceSource,
}

impl PlanRules {
    /// The rules of `config`.
    pub fn of(config: &Config) -> PlanRules {
        PlanRules {
            backends: config.prometheus.as_slice().into(),
            resource_source: config.metrics.resource_source,
        }
    }

    /// Checks `plan` against the backends and the resource-metrics source.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        plan.check_backends(&self.backends)?;
        plan.check_resource_source(self.resource_source)
    }
}

impl Plan {
    /// Refuses resource metrics unless `source` is `plugins`.
    pub fn check_resource_source(&self, source: ResourceSource) -> Result<(), String> {
        if source == ResourceSource::Plugins {
            return Ok(());
        }
        match self
            .metrics
            .iter()
            .find(|m| matches!(m.target, MetricTarget::Resource(_)))
        {
            Some(m) => Err(format!(
                "it publishes {} (metrics.k8s.io), but metrics.resource_source = \"{}\" serves \
                 metrics.k8s.io from the kubelets: set metrics.resource_source = \"plugins\" to \
                 serve it from plugins",
                m.key(),
                source.as_str()
            )),
            None => Ok(()),
        }
    }

    /// Checks that every Prometheus input names a configured backend (an empty name: the
    /// default one, which must exist).
    pub fn check_backends(&self, backends: &[PrometheusConfig]) -> Result<(), String> {
        let queries = self
            .inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| i.source.is_prometheus());
        for (i, input) in queries {
            if prometheus_backend(backends, &input.backend).is_some() {
                continue;
            }
            let configured: Vec<&str> =
                backends.iter().map(|b| b.name.get_ref().as_str()).collect();
            let which = if input.backend.is_empty() {
                "the default prometheus backend (one named `default`, or the only one)".to_owned()
            } else {
                format!("prometheus backend {:?}", input.backend)
            };
            return Err(format!(
                "input {i} ({} {:?}) reads {which}, which is not configured (configured: [{}])",
                input.source.as_str(),
                input.name,
                configured.join(", ")
            ));
        }
        Ok(())
    }

    /// Checks custom metrics' scope against the cluster's API resources: a resource the table
    /// lists with the other scope is an error naming the metric. A resource it does not list is
    /// accepted (a CRD may be installed later; its values are served once discovery lists it)
    /// and returned, so the caller can warn when the table is the cluster's.
    pub fn check_resources(&self, table: &ApiTable) -> Result<Vec<&ObjectResource>, String> {
        let mut unknown = Vec::new();
        for metric in &self.metrics {
            let MetricTarget::Custom(resource) = &metric.target else {
                continue;
            };
            match table.get(resource) {
                Some(info) if info.namespaced != metric.namespaced => {
                    return Err(scope_mismatch(&metric.name, metric.namespaced, resource));
                }
                Some(_) => {}
                None => unknown.push(resource),
            }
        }
        Ok(unknown)
    }

    /// Validates what `configure` returned.
    pub fn validate(plan: types::Plan) -> Result<Plan, String> {
        let mut inputs = Vec::with_capacity(plan.inputs.len());
        for (i, input) in plan.inputs.into_iter().enumerate() {
            let source = source(input.source);
            if input.name.is_empty() && source != Source::PrometheusLabels {
                return Err(format!("input {i} ({}) has an empty name", source.as_str()));
            }
            if !source.is_prometheus() && !input.backend.is_empty() {
                return Err(format!(
                    "input {i} ({} {}) names a backend, which only prometheus inputs and discoveries have",
                    source.as_str(),
                    input.name
                ));
            }
            inputs.push(Input {
                source,
                name: input.name,
                backend: input.backend,
            });
        }
        let mut metrics: Vec<Metric> = Vec::with_capacity(plan.metrics.len());
        let mut keys = HashSet::new();
        for spec in plan.metrics {
            check_name("metric", &spec.name)?;
            let target = match spec.kind {
                types::MetricKind::Custom => {
                    let resource = ObjectResource::parse(&spec.resource)
                        .map_err(|e| format!("metric {}: {e}", spec.name))?;
                    if let Some(watched) = builtin_scope(&resource)
                        && spec.namespaced != watched
                    {
                        return Err(scope_mismatch(&spec.name, spec.namespaced, &resource));
                    }
                    MetricTarget::Custom(resource)
                }
                types::MetricKind::External => {
                    if !spec.resource.is_empty() {
                        return Err(format!(
                            "metric {}: external metrics have no resource, got {:?}",
                            spec.name, spec.resource
                        ));
                    }
                    MetricTarget::External
                }
                types::MetricKind::Resource => {
                    if !matches!(spec.name.as_str(), "cpu" | "memory") {
                        return Err(format!(
                            "resource metric {:?} is not cpu or memory",
                            spec.name
                        ));
                    }
                    let (resource, namespaced) = match spec.resource.as_str() {
                        "pods" => (ObjectResource::pods(), true),
                        "nodes" => (ObjectResource::nodes(), false),
                        other => {
                            return Err(format!(
                                "resource metric {}: resource {other:?} is not pods or nodes",
                                spec.name
                            ));
                        }
                    };
                    if spec.namespaced != namespaced {
                        return Err(format!(
                            "resource metric {} of {}: namespaced must be {}",
                            spec.name, resource, namespaced
                        ));
                    }
                    MetricTarget::Resource(resource)
                }
            };
            let metric = Metric {
                name: spec.name.into(),
                target,
                namespaced: spec.namespaced,
                max_age_ms: spec.max_age_ms,
            };
            if !keys.insert(metric.key()) {
                return Err(format!("{} is listed twice", metric.key()));
            }
            metrics.push(metric);
        }
        let mut derived: Vec<Arc<str>> = Vec::with_capacity(plan.derived.len());
        for name in plan.derived {
            check_name("derived series", &name)?;
            if derived.iter().any(|d| **d == *name) {
                return Err(format!("derived series {name} is listed twice"));
            }
            derived.push(name.into());
        }
        Ok(Plan {
            inputs,
            metrics,
            derived,
        })
    }
}

/// The scope of a resource the gateway's watches cover (known without discovery).
fn builtin_scope(resource: &ObjectResource) -> Option<bool> {
    resource
        .watched()
        .map(|w| matches!(w, Watched::Pods | Watched::Deployments))
}

/// The error for a metric whose `namespaced` disagrees with its resource's scope.
pub fn scope_mismatch(metric: &str, namespaced: bool, resource: &ObjectResource) -> String {
    let (want, is) = if namespaced {
        ("namespaced", "cluster-scoped")
    } else {
        ("cluster-scoped", "namespaced")
    };
    format!(
        "metric {metric}: namespaced = {namespaced} but {resource} objects are {is}, not {want}"
    )
}

/// Names: 1–253 characters of letters, digits, `_`, `-`, `.` and `:`, starting with a letter or
/// digit (they appear in URL paths).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} is invalid (1-{MAX_NAME_LEN} letters, digits, '_', '-', '.', ':', starting with a letter or digit)"
        ))
    }
}

/// The host's source for a WIT source.
pub fn source(s: types::Source) -> Source {
    match s {
        types::Source::KubeletResource => Source::KubeletResource,
        types::Source::KubeletSummary => Source::KubeletSummary,
        types::Source::KubeletCadvisor => Source::KubeletCadvisor,
        types::Source::Cluster => Source::Cluster,
        types::Source::Prometheus => Source::Prometheus,
        types::Source::PrometheusSeries => Source::PrometheusSeries,
        types::Source::PrometheusLabels => Source::PrometheusLabels,
        types::Source::PrometheusSeriesShapes => Source::PrometheusSeriesShapes,
        types::Source::Derived => Source::Derived,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: types::MetricKind, resource: &str, ns: bool) -> types::MetricSpec {
        types::MetricSpec {
            name: name.into(),
            kind,
            resource: resource.into(),
            namespaced: ns,
            max_age_ms: 0,
        }
    }

    fn plan(metrics: Vec<types::MetricSpec>) -> types::Plan {
        types::Plan {
            inputs: vec![types::InputSpec {
                source: types::Source::KubeletSummary,
                name: "x_*".into(),
                backend: String::new(),
            }],
            metrics,
            derived: vec!["d".into()],
        }
    }

    #[test]
    fn a_good_plan_is_accepted() {
        let p = Plan::validate(plan(vec![
            spec("rx_rate", types::MetricKind::Custom, "pods", true),
            spec("rx_rate", types::MetricKind::Custom, "nodes", false),
            spec("queue.depth-1", types::MetricKind::External, "", true),
        ]))
        .unwrap();
        assert_eq!(p.inputs[0].source, Source::KubeletSummary);
        assert_eq!(
            p.metrics[1].target,
            MetricTarget::Custom(ObjectResource::nodes())
        );
        assert_eq!(p.derived, [Arc::<str>::from("d")]);

        // Both Prometheus sources name a backend.
        let mut series = plan(vec![]);
        series.inputs = vec![
            types::InputSpec {
                source: types::Source::PrometheusSeries,
                name: r#"{__name__=~"http_.*"}"#.into(),
                backend: "main".into(),
            },
            types::InputSpec {
                source: types::Source::Prometheus,
                name: "sum(up)".into(),
                backend: "main".into(),
            },
        ];
        let p = Plan::validate(series).unwrap();
        assert_eq!(p.inputs[0].source, Source::PrometheusSeries);
        assert_eq!(p.inputs[0].backend, "main");
        // A labels input names a backend too, and its selector may be empty (every series);
        // other sources still need a name.
        let mut labels = plan(vec![]);
        labels.inputs = vec![types::InputSpec {
            source: types::Source::PrometheusLabels,
            name: String::new(),
            backend: "main".into(),
        }];
        let p = Plan::validate(labels).unwrap();
        assert_eq!(p.inputs[0].source, Source::PrometheusLabels);
        let mut unnamed = plan(vec![]);
        unnamed.inputs = vec![types::InputSpec {
            source: types::Source::PrometheusSeries,
            name: String::new(),
            backend: "main".into(),
        }];
        assert_eq!(
            Plan::validate(unnamed).unwrap_err(),
            "input 0 (prometheus-series) has an empty name"
        );
        // A discovery by shape names a backend and needs a selector, as a series discovery.
        let mut shapes = plan(vec![]);
        shapes.inputs = vec![types::InputSpec {
            source: types::Source::PrometheusSeriesShapes,
            name: "queue_depth".into(),
            backend: "main".into(),
        }];
        let p = Plan::validate(shapes.clone()).unwrap();
        assert_eq!(p.inputs[0].source, Source::PrometheusSeriesShapes);
        assert_eq!(p.inputs[0].backend, "main");
        shapes.inputs[0].name.clear();
        assert_eq!(
            Plan::validate(shapes).unwrap_err(),
            "input 0 (prometheus-series-shapes) has an empty name"
        );
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let cases = [
            (
                spec("", types::MetricKind::Custom, "pods", true),
                "name \"\" is invalid",
            ),
            (
                spec("a/b", types::MetricKind::Custom, "pods", true),
                "\"a/b\" is invalid",
            ),
            (
                spec("m", types::MetricKind::Custom, "Services", true),
                "metric m: resource \"Services\" is not a plural resource name",
            ),
            (
                spec("m", types::MetricKind::Custom, "pods/log", true),
                "resource \"pods/log\" is not a plural resource name",
            ),
            (
                spec("m", types::MetricKind::Custom, "nodes", true),
                "metric m: namespaced = true but nodes objects are cluster-scoped",
            ),
            (
                spec("m", types::MetricKind::External, "pods", false),
                "external metrics have no resource",
            ),
        ];
        for (s, want) in cases {
            let err = Plan::validate(plan(vec![s])).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        let err = Plan::validate(plan(vec![
            spec("m", types::MetricKind::Custom, "pods", true),
            spec("m", types::MetricKind::Custom, "pods", true),
        ]))
        .unwrap_err();
        assert_eq!(err, "custom metric m of pods is listed twice");
        let mut p = plan(vec![]);
        p.inputs[0].backend = "thanos".into();
        assert!(Plan::validate(p).unwrap_err().contains("names a backend"));
        let resource_cases = [
            (
                spec("cpus", types::MetricKind::Resource, "pods", true),
                "\"cpus\" is not cpu or memory",
            ),
            (
                spec("cpu", types::MetricKind::Resource, "services", true),
                "resource \"services\" is not pods or nodes",
            ),
            (
                spec("memory", types::MetricKind::Resource, "nodes", true),
                "resource metric memory of nodes: namespaced must be false",
            ),
        ];
        for (s, want) in resource_cases {
            let err = Plan::validate(plan(vec![s])).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        let mut p = plan(vec![]);
        p.derived.push("d".into());
        assert!(Plan::validate(p).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn resource_metrics_need_the_plugins_source() {
        let p = Plan::validate(plan(vec![
            spec("cpu", types::MetricKind::Resource, "pods", true),
            spec("cpu", types::MetricKind::Resource, "nodes", false),
            spec("memory", types::MetricKind::Resource, "pods", true),
        ]))
        .unwrap();
        assert_eq!(
            p.metrics[1].key(),
            MetricKey::Resource(ObjectResource::nodes(), "cpu".into())
        );
        p.check_resource_source(ResourceSource::Plugins).unwrap();
        let err = p
            .check_resource_source(ResourceSource::Kubelets)
            .unwrap_err();
        assert_eq!(
            err,
            "it publishes resource metric cpu of pods (metrics.k8s.io), but \
             metrics.resource_source = \"kubelets\" serves metrics.k8s.io from the kubelets: \
             set metrics.resource_source = \"plugins\" to serve it from plugins"
        );
        let custom_only = Plan::validate(plan(vec![spec(
            "cpu",
            types::MetricKind::Custom,
            "pods",
            true,
        )]))
        .unwrap();
        custom_only
            .check_resource_source(ResourceSource::Kubelets)
            .unwrap();
    }

    #[test]
    fn any_resource_in_the_contract_form_is_accepted_and_scope_is_checked_against_discovery() {
        use crate::sources::discovery::{ResourceInfo, TableSource};
        let p = Plan::validate(plan(vec![
            spec("rps", types::MetricKind::Custom, "services", true),
            spec(
                "rps",
                types::MetricKind::Custom,
                "ingresses.networking.k8s.io",
                true,
            ),
            spec(
                "depth",
                types::MetricKind::Custom,
                "widgets.example.io",
                false,
            ),
            spec("rps", types::MetricKind::Custom, "gadgets.example.io", true),
        ]))
        .unwrap();
        assert_eq!(
            p.metrics[1].target,
            MetricTarget::Custom(ObjectResource::new("networking.k8s.io", "ingresses"))
        );
        assert_eq!(
            p.metrics[0].key().to_string(),
            "custom metric rps of services"
        );
        // The built-in table knows services and ingresses; the CRDs are not known yet.
        let unknown = p.check_resources(&ApiTable::builtin()).unwrap();
        assert_eq!(
            unknown.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["widgets.example.io", "gadgets.example.io"]
        );
        // Discovery says widgets are namespaced: the cluster-scoped metric is refused by name.
        let table = ApiTable::new(
            vec![
                ResourceInfo::new("", "v1", "services", "service", "Service", true),
                ResourceInfo::new("example.io", "v1", "widgets", "widget", "Widget", true),
            ],
            TableSource::Discovered,
        );
        assert_eq!(
            p.check_resources(&table).unwrap_err(),
            "metric depth: namespaced = false but widgets.example.io objects are namespaced, \
             not cluster-scoped"
        );
    }

    #[test]
    fn prometheus_inputs_must_name_a_configured_backend() {
        let backends = |text: &str| {
            crate::config::parse(
                std::path::Path::new("g.toml"),
                &format!("[server]\nself_signed = true\n{text}"),
            )
            .unwrap()
            .prometheus
        };
        let input = |source, backend: &str| Input {
            source,
            name: "up".into(),
            backend: backend.into(),
        };
        let plan = |inputs| Plan {
            inputs,
            metrics: Vec::new(),
            derived: Vec::new(),
        };
        let two = backends(
            "[[prometheus]]\nname = \"a\"\nurl = \"http://a:9090\"\n\
             [[prometheus]]\nname = \"b\"\nurl = \"http://b:9090\"\n",
        );
        let named = plan(vec![
            input(Source::KubeletSummary, ""),
            input(Source::Prometheus, "a"),
            input(Source::PrometheusSeries, "b"),
        ]);
        named.check_backends(&two).unwrap();
        let e = plan(vec![input(Source::Prometheus, "c")])
            .check_backends(&two)
            .unwrap_err();
        assert_eq!(
            e,
            "input 0 (prometheus \"up\") reads prometheus backend \"c\", which is not \
             configured (configured: [a, b])"
        );
        // Two backends, none named `default`: an input without a backend has none.
        let e = plan(vec![input(Source::Prometheus, "")])
            .check_backends(&two)
            .unwrap_err();
        assert!(e.contains("reads the default prometheus backend"), "{e}");
        let one = backends("[[prometheus]]\nname = \"only\"\nurl = \"http://a:9090\"\n");
        plan(vec![input(Source::Prometheus, "")])
            .check_backends(&one)
            .unwrap();
        assert!(
            plan(vec![input(Source::Prometheus, "")])
                .check_backends(&[])
                .is_err()
        );
    }
}
