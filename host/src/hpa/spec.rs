//! What the calculation reads from an `autoscaling/v2` HorizontalPodAutoscaler: its metrics as
//! (source, target) pairs in milli-units, with the controller's precedence between targets.

use std::collections::BTreeSet;

use k8s_openapi::api::autoscaling::v2 as autoscaling;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use crate::api::quantity::Quantity;

/// A malformed HPA, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The document is not an HPA.
    #[error("{0}")]
    NotAnHpa(String),
    /// A field is missing or wrong.
    #[error("{field}: {message}")]
    Field {
        /// The field's path (`spec.metrics[1].pods.target`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn field(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// A metric's name and series selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricName {
    /// Name.
    pub name: String,
    /// The series selector in its string form, when set.
    pub selector: Option<String>,
}

/// Where a metric comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// `Resource` or `ContainerResource` (with `container`).
    Resource {
        /// `cpu`, `memory`, …
        resource: String,
        /// The container, for `ContainerResource`.
        container: Option<String>,
    },
    /// `Pods`.
    Pods {
        /// The metric.
        metric: MetricName,
    },
    /// `Object`.
    Object {
        /// The metric.
        metric: MetricName,
        /// `describedObject.apiVersion`.
        api_version: String,
        /// `describedObject.kind`.
        kind: String,
        /// `describedObject.name`.
        name: String,
    },
    /// `External`.
    External {
        /// The metric.
        metric: MetricName,
    },
}

/// A metric's target, values in milli-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Percent of the requests.
    Utilization(i32),
    /// Per pod.
    AverageValue(i64),
    /// In total.
    Value(i64),
}

/// One metric of the HPA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// Source.
    pub source: Source,
    /// Target.
    pub target: Target,
}

impl Metric {
    /// A short description: `Resource cpu`, `Pods http_requests`, ….
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Resource {
                resource,
                container: None,
            } => format!("Resource {resource}"),
            Source::Resource {
                resource,
                container: Some(c),
            } => format!("ContainerResource {resource} of container {c}"),
            Source::Pods { metric } => format!("Pods {}", metric.name),
            Source::Object {
                metric, kind, name, ..
            } => format!("Object {} on {kind}/{name}", metric.name),
            Source::External { metric } => format!("External {}", metric.name),
        }
    }
}

/// Parses an HPA from YAML (or JSON), checking `apiVersion` and `kind`.
pub fn parse_hpa(text: &str) -> Result<autoscaling::HorizontalPodAutoscaler, SpecError> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|e| SpecError::NotAnHpa(format!("not a YAML document: {e}")))?;
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value.get("kind").and_then(|v| v.as_str());
    if api_version != Some("autoscaling/v2") || kind != Some("HorizontalPodAutoscaler") {
        return Err(SpecError::NotAnHpa(format!(
            "expected apiVersion autoscaling/v2 and kind HorizontalPodAutoscaler, found {} {}",
            api_version.unwrap_or("(none)"),
            kind.unwrap_or("(none)")
        )));
    }
    serde_path_to_error::deserialize(value)
        .map_err(|e| field(e.path().to_string(), e.inner().to_string()))
}

/// The HPA's metrics; with none, the API server's default of 80 % CPU utilization.
pub fn metrics(spec: &autoscaling::HorizontalPodAutoscalerSpec) -> Result<Vec<Metric>, SpecError> {
    let Some(list) = spec.metrics.as_ref().filter(|m| !m.is_empty()) else {
        return Ok(vec![Metric {
            source: Source::Resource {
                resource: "cpu".into(),
                container: None,
            },
            target: Target::Utilization(80),
        }]);
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| metric(&format!("spec.metrics[{i}]"), m))
        .collect()
}

fn metric(at: &str, m: &autoscaling::MetricSpec) -> Result<Metric, SpecError> {
    let missing = |what: &str| {
        field(
            format!("{at}.{what}"),
            format!("required for type {}", m.type_),
        )
    };
    match m.type_.as_str() {
        "Resource" => {
            let r = m.resource.as_ref().ok_or_else(|| missing("resource"))?;
            Ok(Metric {
                source: Source::Resource {
                    resource: r.name.clone(),
                    container: None,
                },
                target: resource_target(&format!("{at}.resource.target"), &r.target)?,
            })
        }
        "ContainerResource" => {
            let r = m
                .container_resource
                .as_ref()
                .ok_or_else(|| missing("containerResource"))?;
            Ok(Metric {
                source: Source::Resource {
                    resource: r.name.clone(),
                    container: Some(r.container.clone()),
                },
                target: resource_target(&format!("{at}.containerResource.target"), &r.target)?,
            })
        }
        "Pods" => {
            let p = m.pods.as_ref().ok_or_else(|| missing("pods"))?;
            let target = &p.target;
            let at = format!("{at}.pods.target.averageValue");
            let value = target
                .average_value
                .as_ref()
                .ok_or_else(|| field(&at, "required for Pods metrics"))?;
            Ok(Metric {
                source: Source::Pods {
                    metric: metric_name(&p.metric),
                },
                target: Target::AverageValue(milli(&at, &value.0)?),
            })
        }
        "Object" => {
            let o = m.object.as_ref().ok_or_else(|| missing("object"))?;
            let t = &o.target;
            let target = if let (true, Some(v)) = (t.type_ == "Value", &t.value) {
                Target::Value(milli(&format!("{at}.object.target.value"), &v.0)?)
            } else if let Some(v) = &t.average_value {
                Target::AverageValue(milli(&format!("{at}.object.target.averageValue"), &v.0)?)
            } else {
                return Err(field(
                    format!("{at}.object.target"),
                    "neither a value target nor an average value target was set",
                ));
            };
            Ok(Metric {
                source: Source::Object {
                    metric: metric_name(&o.metric),
                    api_version: o.described_object.api_version.clone().unwrap_or_default(),
                    kind: o.described_object.kind.clone(),
                    name: o.described_object.name.clone(),
                },
                target,
            })
        }
        "External" => {
            let e = m.external.as_ref().ok_or_else(|| missing("external"))?;
            let t = &e.target;
            let target = if let Some(v) = &t.average_value {
                Target::AverageValue(milli(&format!("{at}.external.target.averageValue"), &v.0)?)
            } else if let Some(v) = &t.value {
                Target::Value(milli(&format!("{at}.external.target.value"), &v.0)?)
            } else {
                return Err(field(
                    format!("{at}.external.target"),
                    "neither a value target nor an average value target was set",
                ));
            };
            Ok(Metric {
                source: Source::External {
                    metric: metric_name(&e.metric),
                },
                target,
            })
        }
        other => Err(field(
            format!("{at}.type"),
            format!("{other:?} is not Resource, ContainerResource, Pods, Object or External"),
        )),
    }
}

fn resource_target(at: &str, t: &autoscaling::MetricTarget) -> Result<Target, SpecError> {
    if let Some(v) = &t.average_value {
        return Ok(Target::AverageValue(milli(
            &format!("{at}.averageValue"),
            &v.0,
        )?));
    }
    match t.average_utilization {
        Some(u) if u > 0 => Ok(Target::Utilization(u)),
        Some(u) => Err(field(
            format!("{at}.averageUtilization"),
            format!("{u} must be greater than 0"),
        )),
        None => Err(field(
            at,
            "neither a utilization target nor a value target was set",
        )),
    }
}

fn milli(at: &str, q: &str) -> Result<i64, SpecError> {
    let q: Quantity = q
        .parse()
        .map_err(|e| field(at, format!("{q:?} is not a quantity: {e}")))?;
    match q.milli_value() {
        v if v > 0 => Ok(v),
        _ => Err(field(at, format!("{q} must be greater than 0"))),
    }
}

fn metric_name(m: &autoscaling::MetricIdentifier) -> MetricName {
    MetricName {
        name: m.name.clone(),
        selector: m
            .selector
            .as_ref()
            .map(selector_string)
            .filter(|s| !s.is_empty()),
    }
}

/// A label selector in its string form (`app=web,tier in (a,b)`), requirements sorted by key
/// as apimachinery's `Selector.String()` does.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        requirements.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let values: BTreeSet<&str> = e.values.iter().flatten().map(String::as_str).collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        };
        requirements.push((e.key.clone(), text));
    }
    requirements.sort();
    requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}
