//! One metric: the controller's request for it, the reason it failed when it did, and its
//! proposal.

use serde_json::Value;

use super::fetch::{self, Cause, Failure, Fetcher};
use super::report::{MetricResult, TargetReport};
use crate::hpa::pods::{Pod, Readiness};
use crate::hpa::replicas::{self, CalcError, PodInputs, Tolerances};
use crate::hpa::spec::{Metric, MetricName, Source, Target};

const RESOURCE_API: &str = "/apis/metrics.k8s.io/v1beta1";
const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
const EXTERNAL_GV: &str = "external.metrics.k8s.io/v1beta1";

/// What every metric's evaluation shares.
pub struct Context<'a> {
    /// The HPA's namespace.
    pub namespace: &'a str,
    /// The scale target.
    pub target: &'a TargetReport,
    /// The target's pods.
    pub pods: &'a [Pod],
    /// Now, ms.
    pub now_ms: i64,
    /// CPU readiness periods.
    pub readiness: Readiness,
    /// Tolerances.
    pub tolerances: Tolerances,
}

/// Fetches and computes one metric. `custom_version` caches the custom metrics API version
/// chosen by discovery.
pub async fn evaluate(
    fetcher: &mut Fetcher,
    cx: &Context<'_>,
    metric: &Metric,
    custom_version: &mut Option<String>,
) -> MetricResult {
    let outcome = match &metric.source {
        Source::Resource {
            resource,
            container,
        } => resource_metric(fetcher, cx, resource, container.as_deref(), metric.target).await,
        Source::Pods { metric: name } => {
            pods_metric(fetcher, cx, name, metric.target, custom_version).await
        }
        Source::Object {
            metric: name,
            api_version,
            kind,
            name: object,
        } => {
            object_metric(
                fetcher,
                cx,
                name,
                (api_version, kind, object),
                metric.target,
                custom_version,
            )
            .await
        }
        Source::External { metric: name } => {
            external_metric(fetcher, cx, name, metric.target).await
        }
    };
    match outcome {
        Ok(proposal) => MetricResult::Proposal(proposal),
        Err(failure) => MetricResult::Failed(failure),
    }
}

fn calc_failure(e: CalcError) -> Failure {
    let cause = match e {
        CalcError::NoPods => Cause::SelectorMatchedNothing,
        _ => Cause::Other,
    };
    Failure::new(cause, e.to_string())
}

fn inputs<'a>(
    cx: &'a Context<'_>,
    metrics: &'a std::collections::BTreeMap<String, crate::hpa::pods::PodMetric>,
) -> PodInputs<'a> {
    PodInputs {
        pods: cx.pods,
        metrics,
        now_ms: cx.now_ms,
        readiness: cx.readiness,
        tolerances: cx.tolerances,
    }
}

fn no_pods(cx: &Context<'_>) -> Failure {
    Failure::new(
        Cause::SelectorMatchedNothing,
        format!(
            "the target's selector {} matched no pods in namespace {}",
            cx.target.selector, cx.namespace
        ),
    )
}

async fn resource_metric(
    fetcher: &mut Fetcher,
    cx: &Context<'_>,
    resource: &str,
    container: Option<&str>,
    target: Target,
) -> Result<replicas::Proposal, Failure> {
    let path = format!(
        "{RESOURCE_API}/namespaces/{}/pods?labelSelector={}",
        cx.namespace,
        fetch::encode(&cx.target.selector)
    );
    let list = match fetcher.get_json(&path).await {
        Ok(list) => list,
        Err(f) if f.cause == Cause::ObjectNotFound => {
            return Err(Failure::new(
                Cause::ApiUnavailable,
                format!("metrics.k8s.io is not served: {}", f.message),
            ));
        }
        Err(f) => return Err(f),
    };
    let values = fetch::resource_values(&list, resource, container);
    if values.is_empty() {
        if cx.pods.is_empty() {
            return Err(no_pods(cx));
        }
        // The HPA only sees an empty list; ask for one pod to learn why.
        let probe = format!(
            "{RESOURCE_API}/namespaces/{}/pods/{}",
            cx.namespace, cx.pods[0].name
        );
        let why = match fetcher.get_json(&probe).await {
            Err(f) => f,
            Ok(_) => Failure::new(Cause::Other, format!("the pods' metrics lack {resource}")),
        };
        return Err(Failure::new(
            why.cause,
            format!(
                "no metrics returned from resource metrics API for {} pods (e.g. {}: {})",
                cx.pods.len(),
                cx.pods[0].name,
                why.message
            ),
        ));
    }
    let current = cx.target.spec_replicas;
    match target {
        Target::Utilization(percent) => {
            replicas::utilization(current, percent, resource, container, inputs(cx, &values))
        }
        Target::AverageValue(milli) | Target::Value(milli) => {
            replicas::average_value(current, milli, resource == "cpu", inputs(cx, &values))
        }
    }
    .map_err(calc_failure)
}

async fn custom_version(
    fetcher: &mut Fetcher,
    cache: &mut Option<String>,
) -> Result<String, Failure> {
    if let Some(v) = cache {
        return Ok(v.clone());
    }
    let v = fetcher.preferred_version(CUSTOM_GROUP).await?;
    *cache = Some(v.clone());
    Ok(v)
}

fn metric_selector_query(metric: &MetricName, first: bool) -> String {
    metric
        .selector
        .as_deref()
        .map(|s| {
            format!(
                "{}metricLabelSelector={}",
                if first { "?" } else { "&" },
                fetch::encode(s)
            )
        })
        .unwrap_or_default()
}

/// When the request failed with a 404, or returned nothing: is the metric in discovery?
async fn not_in_discovery(
    fetcher: &mut Fetcher,
    group_version: &str,
    entry: &str,
) -> Option<Failure> {
    match fetcher.discovery_lists(group_version, entry).await {
        Ok(true) => None,
        Ok(false) => Some(Failure::new(
            Cause::NoSuchMetric,
            format!("{group_version} discovery does not list {entry}: no plugin publishes it"),
        )),
        Err(f) => Some(f),
    }
}

async fn pods_metric(
    fetcher: &mut Fetcher,
    cx: &Context<'_>,
    metric: &MetricName,
    target: Target,
    cache: &mut Option<String>,
) -> Result<replicas::Proposal, Failure> {
    let version = custom_version(fetcher, cache).await?;
    let gv = format!("{CUSTOM_GROUP}/{version}");
    let path = format!(
        "/apis/{gv}/namespaces/{}/pods/*/{}?labelSelector={}{}",
        cx.namespace,
        metric.name,
        fetch::encode(&cx.target.selector),
        metric_selector_query(metric, false)
    );
    let entry = format!("pods/{}", metric.name);
    let list = match fetcher.get_json(&path).await {
        Ok(list) => list,
        Err(f) if f.cause == Cause::ObjectNotFound => {
            return Err(not_in_discovery(fetcher, &gv, &entry).await.unwrap_or(f));
        }
        Err(f) => return Err(f),
    };
    let values = fetch::custom_values(&list);
    if values.is_empty() {
        if let Some(f) = not_in_discovery(fetcher, &gv, &entry).await {
            return Err(f);
        }
        if cx.pods.is_empty() {
            return Err(no_pods(cx));
        }
        let probe = format!(
            "/apis/{gv}/namespaces/{}/pods/{}/{}{}",
            cx.namespace,
            cx.pods[0].name,
            metric.name,
            metric_selector_query(metric, true)
        );
        let why = match fetcher.get_json(&probe).await {
            Err(f) => f,
            Ok(_) => Failure::new(Cause::Other, "the list was empty but one pod has a value"),
        };
        let cause = match why.cause {
            Cause::ObjectNotFound => Cause::SelectorMatchedNothing,
            other => other,
        };
        return Err(Failure::new(
            cause,
            format!(
                "no metrics returned from custom metrics API for the target's {} pods (e.g. {}: {})",
                cx.pods.len(),
                cx.pods[0].name,
                why.message
            ),
        ));
    }
    let milli = match target {
        Target::AverageValue(m) | Target::Value(m) => m,
        Target::Utilization(_) => {
            return Err(Failure::new(
                Cause::Other,
                "Pods metrics take an AverageValue target",
            ));
        }
    };
    replicas::average_value(cx.target.spec_replicas, milli, false, inputs(cx, &values))
        .map_err(calc_failure)
}

/// The plural resource of a kind, with its group unless core (`deployments.apps`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

fn object_path(
    gv: &str,
    namespace: &str,
    (api_version, kind, name): (&str, &str, &str),
    metric: &str,
) -> (String, String) {
    let group = api_version.split_once('/').map(|(g, _)| g);
    let resource = match group {
        Some(g) if !g.is_empty() => format!("{}.{g}", plural(kind)),
        _ => plural(kind),
    };
    let path = match kind {
        "Namespace" => format!("/apis/{gv}/namespaces/{name}/metrics/{metric}"),
        "Node" | "PersistentVolume" => format!("/apis/{gv}/{resource}/{name}/{metric}"),
        _ => format!("/apis/{gv}/namespaces/{namespace}/{resource}/{name}/{metric}"),
    };
    (path, format!("{resource}/{metric}"))
}

async fn object_metric(
    fetcher: &mut Fetcher,
    cx: &Context<'_>,
    metric: &MetricName,
    object: (&str, &str, &str),
    target: Target,
    cache: &mut Option<String>,
) -> Result<replicas::Proposal, Failure> {
    let version = custom_version(fetcher, cache).await?;
    let gv = format!("{CUSTOM_GROUP}/{version}");
    let (path, entry) = object_path(&gv, cx.namespace, object, &metric.name);
    let path = path + &metric_selector_query(metric, true);
    let list = match fetcher.get_json(&path).await {
        Ok(list) => list,
        Err(f) if f.cause == Cause::ObjectNotFound => {
            return Err(not_in_discovery(fetcher, &gv, &entry).await.unwrap_or(f));
        }
        Err(f) => return Err(f),
    };
    let items = list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [item] = items else {
        return Err(Failure::new(
            Cause::Other,
            format!("expected exactly one metric value, got {}", items.len()),
        ));
    };
    let usage = fetch::milli(&item["value"]).ok_or_else(|| {
        Failure::new(
            Cause::Other,
            format!("value {} is not a quantity", item["value"]),
        )
    })?;
    object_or_external(cx, usage, target)
}

fn object_or_external(
    cx: &Context<'_>,
    usage: i64,
    target: Target,
) -> Result<replicas::Proposal, Failure> {
    match target {
        Target::Value(milli) => replicas::value(
            cx.target.spec_replicas,
            usage,
            milli,
            cx.tolerances,
            cx.pods,
        )
        .map_err(calc_failure),
        Target::AverageValue(milli) => Ok(replicas::average_of_total(
            cx.target.status_replicas,
            usage,
            milli,
            cx.tolerances,
        )),
        Target::Utilization(_) => Err(Failure::new(
            Cause::Other,
            "Object and External metrics take a Value or AverageValue target",
        )),
    }
}

async fn external_metric(
    fetcher: &mut Fetcher,
    cx: &Context<'_>,
    metric: &MetricName,
    target: Target,
) -> Result<replicas::Proposal, Failure> {
    let query = metric
        .selector
        .as_deref()
        .map(|s| format!("?labelSelector={}", fetch::encode(s)))
        .unwrap_or_default();
    let path = format!(
        "/apis/{EXTERNAL_GV}/namespaces/{}/{}{query}",
        cx.namespace, metric.name
    );
    let list: Value = match fetcher.get_json(&path).await {
        Ok(list) => list,
        Err(f) if f.cause == Cause::ObjectNotFound => {
            return Err(not_in_discovery(fetcher, EXTERNAL_GV, &metric.name)
                .await
                .unwrap_or(f));
        }
        Err(f) => return Err(f),
    };
    if fetch::item_count(&list) == 0 {
        if let Some(f) = not_in_discovery(fetcher, EXTERNAL_GV, &metric.name).await {
            return Err(f);
        }
        return Err(Failure::new(
            Cause::SelectorMatchedNothing,
            format!(
                "no metrics returned from external metrics API: no series of {} matches {} (or every value is older than its maximum age)",
                metric.name,
                metric.selector.as_deref().unwrap_or("(no selector)")
            ),
        ));
    }
    let total = replicas::external_total(&fetch::external_values(&list));
    object_or_external(cx, total, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_follow_the_custom_metrics_layout() {
        let gv = "custom.metrics.k8s.io/v1beta2";
        assert_eq!(
            object_path(gv, "ns", ("apps/v1", "Deployment", "web"), "rps"),
            (
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/deployments.apps/web/rps".into(),
                "deployments.apps/rps".into()
            )
        );
        assert_eq!(
            object_path(gv, "ns", ("v1", "Namespace", "team"), "q").0,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team/metrics/q"
        );
        assert_eq!(
            object_path(gv, "ns", ("networking.k8s.io/v1", "Ingress", "i"), "q").1,
            "ingresses.networking.k8s.io/q"
        );
        assert_eq!(
            object_path(gv, "ns", ("v1", "Node", "n1"), "q").0,
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/q"
        );
    }
}
