//! `metrics-gateway plugin test`: runs a plugin over recorded cycles and prints what it publishes.
//!
//! A fixture is one cycle, either JSON:
//!
//! ```json
//! {"timestamp_ms": 1700000000000, "interval_ms": 15000,
//!  "samples": [{"source": "kubelet-summary", "name": "pod_network_rx_bytes_total",
//!               "labels": {"namespace": "default", "pod": "web-1"}, "value": 1024,
//!               "timestamp_ms": 1699999999000}]}
//! ```
//!
//! or Prometheus text, where `# source: NAME` sets the source of the lines after it and
//! `# timestamp_ms: N` / `# interval_ms: N` set the cycle's:
//!
//! ```text
//! # source: kubelet-resource
//! container_cpu_usage_seconds_total{namespace="default",pod="web-1",container="app"} 12.5 1699999999000
//! ```
//!
//! A cycle's timestamp defaults to the previous one plus the interval (15 s unless given), a
//! sample's to the cycle's. Series keep their ids from one fixture to the next, as in the gateway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::PluginRuntime;
use super::output::Objects;
use super::plan::{Metric, MetricTarget};
use super::set::PluginSet;
use crate::config::{Config, PluginConfig, PluginRuntimeConfig};
use crate::samples::{Batch, CycleSamples, SeriesCache, Source};
use crate::sources::kubelet::promtext;
use crate::store::custom::MetricState;
use crate::telemetry::Telemetry;

/// Interval assumed when a fixture names none, ms.
const DEFAULT_INTERVAL_MS: u64 = 15_000;

/// Loads the plugin `wasm` with the config in `config` (a TOML file of the plugin's own table,
/// or JSON), runs one cycle per fixture and prints the plan and each cycle's output to `out`.
pub fn run(
    wasm: &Path,
    config: Option<&Path>,
    fixtures: &[PathBuf],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let table = match config {
        Some(path) => read_plugin_config(path)?,
        None => toml::Table::new(),
    };
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_owned();
    let mut entry = toml::Table::new();
    entry.insert("name".into(), name.clone().into());
    entry.insert(
        "file".into(),
        wasm.to_str()
            .with_context(|| format!("{} is not a UTF-8 path", wasm.display()))?
            .into(),
    );
    entry.insert("config".into(), table.into());
    let plugin: PluginConfig =
        toml::from_str(&toml::to_string(&entry)?).context("building the plugin's config entry")?;
    let config = Config {
        plugins: vec![plugin],
        ..Config::default()
    };
    let runtime = PluginRuntime::new(&PluginRuntimeConfig::default(), &Telemetry::new())?;
    let mut set = PluginSet::load(&runtime, &config);
    if let Some((_, error)) = set.errors().into_iter().next() {
        bail!("{error}");
    }
    let mut text = String::new();
    for (plugin, plan) in set.plans() {
        writeln!(text, "plugin {plugin}")?;
        writeln!(text, "  inputs:")?;
        for (i, input) in plan.inputs.iter().enumerate() {
            let backend = if input.backend.is_empty() {
                String::new()
            } else {
                format!(" (backend {})", input.backend)
            };
            writeln!(
                text,
                "    [{i}] {} {}{backend}",
                input.source.as_str(),
                input.name
            )?;
        }
        writeln!(text, "  metrics:")?;
        for m in &plan.metrics {
            writeln!(text, "    {}", describe(m))?;
        }
        if !plan.derived.is_empty() {
            writeln!(text, "  derived: {}", plan.derived.join(", "))?;
        }
    }
    writeln!(
        text,
        "note: object existence is not checked in fixture mode; object labels are empty"
    )?;
    out.write_all(text.as_bytes())?;

    let mut caches: [SeriesCache; Source::ALL.len()] = Default::default();
    let mut previous: Option<i64> = None;
    for path in fixtures {
        let fixture = read_fixture(path, &mut caches, previous)?;
        previous = Some(fixture.timestamp_ms);
        let result = set.cycle(
            &fixture.samples,
            Objects::Unchecked,
            fixture.timestamp_ms,
            fixture.interval_ms,
        );
        let mut text = String::new();
        writeln!(
            text,
            "\ncycle {} (timestamp_ms {}, interval_ms {})",
            path.display(),
            fixture.timestamp_ms,
            fixture.interval_ms
        )?;
        for ((resource, name), metric) in &result.metrics.custom {
            write!(text, "  custom {resource}/{name}:")?;
            match &metric.state {
                MetricState::Failed(e) => writeln!(text, " FAILED: {e}")?,
                MetricState::Unavailable(e) => writeln!(text, " UNAVAILABLE: {e}")?,
                MetricState::Unresolved(e) => writeln!(text, " UNRESOLVED: {e}")?,
                MetricState::Values(values) => {
                    writeln!(text, " {} values", values.len())?;
                    for v in values {
                        let object = if v.namespace.is_empty() {
                            v.name.to_string()
                        } else {
                            format!("{}/{}", v.namespace, v.name)
                        };
                        writeln!(
                            text,
                            "    {object}{} = {}{}",
                            labels(&v.metric_labels.0),
                            v.value,
                            when(v.timestamp_ms, v.window_ms)
                        )?;
                    }
                }
            }
        }
        for (name, metric) in &result.metrics.external {
            write!(text, "  external {name}:")?;
            match &metric.state {
                MetricState::Failed(e) => writeln!(text, " FAILED: {e}")?,
                MetricState::Unavailable(e) => writeln!(text, " UNAVAILABLE: {e}")?,
                MetricState::Unresolved(e) => writeln!(text, " UNRESOLVED: {e}")?,
                MetricState::Values(values) => {
                    writeln!(text, " {} values", values.len())?;
                    for v in values {
                        let ns = if v.namespace.is_empty() {
                            "(all namespaces)".to_owned()
                        } else {
                            format!("namespace {}", v.namespace)
                        };
                        writeln!(
                            text,
                            "    {ns}{} = {}{}",
                            labels(&v.labels.0),
                            v.value,
                            when(v.timestamp_ms, v.window_ms)
                        )?;
                    }
                }
            }
        }
        for (plugin, batch) in &result.derived {
            let mut rows = Vec::new();
            for family in batch.families.values() {
                for ((series, ts), value) in family
                    .series
                    .iter()
                    .zip(&family.timestamps_ms)
                    .zip(&family.values)
                {
                    let l: BTreeMap<String, String> = series
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    rows.push(format!("    {}{} = {value} @{ts}", series.name, labels(&l)));
                }
            }
            rows.sort();
            writeln!(text, "  derived by {plugin}: {} samples", rows.len())?;
            for row in rows {
                writeln!(text, "{row}")?;
            }
        }
        for (plugin, error) in set.errors() {
            writeln!(text, "  error: plugin {plugin}: {error}")?;
        }
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn describe(m: &Metric) -> String {
    let max_age = match m.max_age_ms {
        0 => String::new(),
        ms => format!(", max age {ms} ms"),
    };
    match &m.target {
        MetricTarget::Custom(r) => format!("custom {r}/{}{max_age}", m.name),
        MetricTarget::External => format!(
            "external {}{}{max_age}",
            m.name,
            if m.namespaced { " (namespaced)" } else { "" }
        ),
        MetricTarget::Resource(r) => format!("resource {}/{}{max_age}", r, m.name),
    }
}

fn labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn when(timestamp_ms: i64, window_ms: Option<i64>) -> String {
    match window_ms {
        Some(w) => format!(" @{timestamp_ms} window {w} ms"),
        None => format!(" @{timestamp_ms}"),
    }
}

/// The plugin's own config table from TOML or JSON.
fn read_plugin_config(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading plugin config {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if json {
        serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as a JSON object", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {} as TOML", path.display()))
    }
}

/// One recorded cycle.
struct Fixture {
    timestamp_ms: i64,
    interval_ms: u64,
    samples: CycleSamples,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFixture {
    timestamp_ms: Option<i64>,
    interval_ms: Option<u64>,
    samples: Vec<JsonSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSample {
    source: String,
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// A sample before the cycle's timestamp is known.
#[derive(Debug)]
struct Row {
    source: Source,
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn parse_source(s: &str) -> anyhow::Result<Source> {
    Source::ALL
        .into_iter()
        .find(|src| src.as_str() == s)
        .with_context(|| {
            format!(
                "unknown source {s:?} (one of {})",
                Source::ALL.map(Source::as_str).join(", ")
            )
        })
}

fn read_fixture(
    path: &Path,
    caches: &mut [SeriesCache; Source::ALL.len()],
    previous: Option<i64>,
) -> anyhow::Result<Fixture> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading fixture {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let (timestamp_ms, interval_ms, rows) = if json {
        parse_json(&text)
    } else {
        parse_text(&text)
    }
    .with_context(|| format!("fixture {}", path.display()))?;
    let interval_ms = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    let timestamp_ms = timestamp_ms
        .or_else(|| previous.map(|p| p + interval_ms as i64))
        .or_else(|| rows.iter().filter_map(|r| r.timestamp_ms).max())
        .unwrap_or(0);
    let mut batches: [Batch; Source::ALL.len()] = Default::default();
    for row in rows {
        let mut labels: Vec<(&str, &str)> = row
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let series = caches[row.source.index()].series(&row.name, &mut labels);
        batches[row.source.index()].push(
            series,
            row.timestamp_ms.unwrap_or(timestamp_ms),
            row.value,
        );
    }
    let mut samples = CycleSamples::default();
    for (source, batch) in Source::ALL.into_iter().zip(batches) {
        caches[source.index()].sweep();
        if !batch.is_empty() {
            samples.add(source, Arc::new(batch));
        }
    }
    Ok(Fixture {
        timestamp_ms,
        interval_ms,
        samples,
    })
}

type Parsed = (Option<i64>, Option<u64>, Vec<Row>);

fn parse_json(text: &str) -> anyhow::Result<Parsed> {
    let f: JsonFixture = serde_json::from_str(text)?;
    let rows = f
        .samples
        .into_iter()
        .map(|s| {
            Ok(Row {
                source: parse_source(&s.source)?,
                name: s.name,
                labels: s.labels.into_iter().collect(),
                value: s.value,
                timestamp_ms: s.timestamp_ms,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((f.timestamp_ms, f.interval_ms, rows))
}

fn parse_text(text: &str) -> anyhow::Result<Parsed> {
    let mut source = None;
    let (mut timestamp_ms, mut interval_ms) = (None, None);
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let Some((key, value)) = comment.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "source" => {
                    source = Some(parse_source(value).with_context(|| format!("line {line_no}"))?)
                }
                "timestamp_ms" => {
                    timestamp_ms = Some(
                        value
                            .parse()
                            .with_context(|| format!("line {line_no}: timestamp_ms"))?,
                    )
                }
                "interval_ms" => {
                    interval_ms = Some(
                        value
                            .parse()
                            .with_context(|| format!("line {line_no}: interval_ms"))?,
                    )
                }
                _ => {}
            }
            continue;
        }
        let Some(sample) = promtext::parse(line).next() else {
            continue;
        };
        let sample = sample.map_err(|e| anyhow::anyhow!("line {line_no}: {}", e.kind))?;
        let Some(source) = source else {
            bail!("line {line_no}: a sample before any `# source: NAME` line");
        };
        rows.push(Row {
            source,
            name: sample.name.to_owned(),
            labels: sample
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.into_owned()))
                .collect(),
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
        });
    }
    Ok((timestamp_ms, interval_ms, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_fixtures_carry_sources_and_timestamps() {
        let (ts, interval, rows) = parse_text(
            "# timestamp_ms: 5000\n# source: kubelet-summary\n# HELP x y\nrx{pod=\"a\"} 1.5 4000\n# source: cluster\nup 1\n",
        )
        .unwrap();
        assert_eq!((ts, interval), (Some(5000), None));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].source, Source::KubeletSummary);
        assert_eq!(rows[0].labels, [("pod".to_owned(), "a".to_owned())]);
        assert_eq!((rows[0].value, rows[0].timestamp_ms), (1.5, Some(4000)));
        assert_eq!(
            (rows[1].source, rows[1].timestamp_ms),
            (Source::Cluster, None)
        );
        let err = parse_text("up 1\n").unwrap_err().to_string();
        assert!(err.contains("before any `# source: NAME`"), "{err}");
    }

    #[test]
    fn json_fixtures_keep_series_ids_across_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(
            &a,
            r#"{"interval_ms": 1000, "samples": [{"source": "kubelet-resource", "name": "m",
                "labels": {"pod": "p"}, "value": 2, "timestamp_ms": 7}]}"#,
        )
        .unwrap();
        let mut caches: [SeriesCache; Source::ALL.len()] = Default::default();
        let first = read_fixture(&a, &mut caches, None).unwrap();
        assert_eq!((first.timestamp_ms, first.interval_ms), (7, 1000));
        let second = read_fixture(&a, &mut caches, Some(7)).unwrap();
        assert_eq!(second.timestamp_ms, 1007);
        let id = |f: &Fixture| {
            f.samples
                .matching(Source::KubeletResource, "m")
                .next()
                .unwrap()
                .series[0]
                .id
        };
        assert_eq!(id(&first), id(&second));
        std::fs::write(
            &a,
            r#"{"samples": [{"source": "nope", "name": "m", "value": 1}]}"#,
        )
        .unwrap();
        let err = format!("{:#}", read_fixture(&a, &mut caches, None).err().unwrap());
        assert!(err.contains("unknown source \"nope\""), "{err}");
    }
}
