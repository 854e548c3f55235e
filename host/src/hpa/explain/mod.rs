//! `metrics-gateway hpa explain`: reads an HPA, fetches its target, pods and metrics through
//! kube-apiserver exactly as the HPA controller does (so the aggregation layer's
//! authentication and authorization apply), runs the controller's calculation, and reports
//! each step. It has no history: stabilization and rate limits are applied as for a first
//! decision, and the report says so.

mod fetch;
mod metrics;
pub mod report;

use std::path::PathBuf;

use anyhow::Context as _;
use k8s_openapi::api::core::v1 as core;
use serde_json::Value;

use super::behavior::{Behavior, DOWNSCALE_STABILIZATION_MS, History};
use super::decision::{self, DecisionInput};
use super::pods::{Pod, Readiness};
use super::replicas::{DEFAULT_TOLERANCE, Tolerances};
use super::spec;
use fetch::Fetcher;
pub use fetch::{Call, Cause, Failure};
pub use report::{MetricReport, MetricResult, Report, TargetReport};

/// `hpa explain` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The HorizontalPodAutoscaler (autoscaling/v2), YAML or JSON, one object.
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// The target's pods from a file (a `List`/`PodList` or one Pod) instead of the cluster.
    #[arg(long)]
    pub pods: Option<PathBuf>,
    /// The kubeconfig to use (default: `$KUBECONFIG`, `~/.kube/config` or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// `text` or `json` (structure documented in docs/HPA-EXPLAIN.md).
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// The time the CPU readiness rules are judged at (RFC 3339; default: now).
    #[arg(long)]
    pub now: Option<String>,
}

/// Runs `hpa explain` and renders its report.
pub async fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    let report = explain(args).await?;
    Ok(if args.output == "json" {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report::text(&report)
    })
}

/// Builds the report.
pub async fn explain(args: &ExplainArgs) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let hpa = spec::parse_hpa(&text).with_context(|| format!("{}", args.file.display()))?;
    let hpa_spec = hpa
        .spec
        .as_ref()
        .with_context(|| format!("{}: spec is required", args.file.display()))?;
    let metric_specs =
        spec::metrics(hpa_spec).with_context(|| format!("{}", args.file.display()))?;
    let behavior = hpa_spec
        .behavior
        .as_ref()
        .map(Behavior::from_spec)
        .transpose()
        .with_context(|| format!("{}", args.file.display()))?;
    let now_ms = match &args.now {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--now {t:?} is not an RFC 3339 time"))?
            .as_millisecond(),
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let config = crate::sources::cluster::kube_config(&crate::config::KubernetesConfig {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        ..Default::default()
    })
    .await?;
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let namespace = hpa
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut fetcher = Fetcher::new(client);

    let target = read_target(&mut fetcher, &namespace, &hpa_spec.scale_target_ref).await?;
    let pods = match &args.pods {
        Some(path) => pods_from_file(path)?,
        None => list_pods(&mut fetcher, &namespace, &target.selector).await?,
    };
    let setup_calls = std::mem::take(&mut fetcher.calls);
    let tolerances = Tolerances {
        down: behavior
            .as_ref()
            .and_then(|b| b.down.tolerance)
            .unwrap_or(DEFAULT_TOLERANCE),
        up: behavior
            .as_ref()
            .and_then(|b| b.up.tolerance)
            .unwrap_or(DEFAULT_TOLERANCE),
    };
    let cx = metrics::Context {
        namespace: &namespace,
        target: &target,
        pods: &pods,
        now_ms,
        readiness: Readiness::default(),
        tolerances,
    };
    let mut reports = Vec::new();
    let mut custom_version = None;
    for (index, metric) in metric_specs.into_iter().enumerate() {
        let result = metrics::evaluate(&mut fetcher, &cx, &metric, &mut custom_version).await;
        reports.push(MetricReport {
            index,
            description: metric.describe(),
            requests: std::mem::take(&mut fetcher.calls),
            source: metric.source,
            target: metric.target,
            result,
        });
    }
    let proposals: Vec<Option<i32>> = reports.iter().map(MetricReport::proposal).collect();
    let history = History::default();
    let decision = decision::decide(
        &DecisionInput {
            current: target.spec_replicas,
            min: hpa_spec.min_replicas.unwrap_or(1),
            max: hpa_spec.max_replicas,
            behavior: behavior.as_ref(),
            history: &history,
            now_ms,
            downscale_window_ms: DOWNSCALE_STABILIZATION_MS,
        },
        &proposals,
    );
    Ok(Report {
        namespace,
        name: hpa.metadata.name.clone().unwrap_or_default(),
        target,
        pod_count: pods.len(),
        pods_from: if args.pods.is_some() {
            "file"
        } else {
            "cluster"
        },
        requests: setup_calls,
        tolerances,
        behavior,
        metrics: reports,
        decision,
    })
}

/// The scale target's replicas and selector.
async fn read_target(
    fetcher: &mut Fetcher,
    namespace: &str,
    target: &k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference,
) -> anyhow::Result<TargetReport> {
    let api_version = target.api_version.as_deref().unwrap_or("v1");
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let plural = metrics::plural(&target.kind);
    let object = format!("{base}/namespaces/{namespace}/{plural}/{}", target.name);
    let fail = |f: Failure| {
        anyhow::anyhow!(
            "cannot read the scale target {} {namespace}/{} ({}): {}",
            target.kind,
            target.name,
            f.cause.label(),
            f.message
        )
    };
    let (spec_replicas, status_replicas, selector) = if target.kind == "Deployment" {
        let d = fetcher.get_json(&object).await.map_err(fail)?;
        let selector = serde_json::from_value(d["spec"]["selector"].clone())
            .map(|s| spec::selector_string(&s))
            .unwrap_or_default();
        (
            d["spec"]["replicas"].as_i64().unwrap_or(1),
            d["status"]["replicas"].as_i64().unwrap_or(0),
            selector,
        )
    } else {
        let s = fetcher
            .get_json(&format!("{object}/scale"))
            .await
            .map_err(fail)?;
        (
            s["spec"]["replicas"].as_i64().unwrap_or(0),
            s["status"]["replicas"].as_i64().unwrap_or(0),
            s["status"]["selector"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    if selector.is_empty() {
        anyhow::bail!(
            "the scale target {} {namespace}/{} has no selector: the HPA cannot find its pods",
            target.kind,
            target.name
        );
    }
    Ok(TargetReport {
        kind: target.kind.clone(),
        name: target.name.clone(),
        spec_replicas: i32::try_from(spec_replicas).unwrap_or(i32::MAX),
        status_replicas: i32::try_from(status_replicas).unwrap_or(i32::MAX),
        selector,
    })
}

async fn list_pods(
    fetcher: &mut Fetcher,
    namespace: &str,
    selector: &str,
) -> anyhow::Result<Vec<Pod>> {
    let path = format!(
        "/api/v1/namespaces/{namespace}/pods?labelSelector={}",
        fetch::encode(selector)
    );
    let list = fetcher.get_json(&path).await.map_err(|f| {
        anyhow::anyhow!(
            "listing the target's pods ({}): {}",
            f.cause.label(),
            f.message
        )
    })?;
    pods_of(&list).context("the API server's pod list")
}

fn pods_from_file(path: &std::path::Path) -> anyhow::Result<Vec<Pod>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{}: not a YAML document", path.display()))?;
    if value["kind"] == "Pod" {
        let pod: core::Pod = serde_path_to_error::deserialize(value)
            .with_context(|| format!("{}: not a Pod", path.display()))?;
        return Ok(vec![Pod::from_k8s(&pod)]);
    }
    pods_of(&value).with_context(|| format!("{}", path.display()))
}

/// The pods of a `List`/`PodList`, naming the item that does not parse.
fn pods_of(list: &Value) -> anyhow::Result<Vec<Pod>> {
    let items = list["items"]
        .as_array()
        .context("expected a List or PodList with items, or one Pod")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let pod: core::Pod = serde_path_to_error::deserialize(item.clone())
                .with_context(|| format!("items[{i}] is not a Pod"))?;
            Ok(Pod::from_k8s(&pod))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_lists_are_read_and_bad_items_named() {
        let list = serde_json::json!({"kind": "List", "items": [{
            "metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}}}],
                     "initContainers": [{"name": "proxy", "restartPolicy": "Always",
                                         "resources": {"requests": {"cpu": "50m"}}}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2026-01-01T00:00:10Z"}]}
        }]});
        let pods = pods_of(&list).unwrap();
        assert_eq!(pods[0].name, "web-1");
        assert!(pods[0].is_running_and_ready());
        // The sidecar's request counts, as the controller sums restartable init containers.
        let cpu: i64 = pods[0]
            .containers
            .iter()
            .map(|c| c.requests_milli["cpu"])
            .sum();
        assert_eq!(cpu, 300);
        let bad = serde_json::json!({"items": [{"metadata": {"name": 5}}]});
        let err = format!("{:#}", pods_of(&bad).unwrap_err());
        assert!(err.contains("items[0] is not a Pod"), "{err}");
    }
}
