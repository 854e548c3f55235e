//! The compat plugin's engine at issue 4's scale, natively: 100,000 discovered series (memory
//! and time to take them in), the published metric list, and mapping one query's 2,000 pod
//! results to objects. Memory is the process' resident set growth (`/proc/self/statm`), printed
//! once before the timings.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use metrics_gateway_sdk::types::{Label, labels};
use prometheus_adapter_compat::config::parse_adapter_config;
use prometheus_adapter_compat::engine::Engine;
use prometheus_adapter_compat::rules::Target;

/// prometheus-adapter's documented sample rules.
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
  name: {matches: "^container_(.*)_total$"}
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  name: {matches: "^(.*)_total$"}
  resources:
    template: "<<.Resource>>"
  metricsQuery: "sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)"
externalRules:
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    namespaced: false
"#;

const SERIES: u64 = 100_000;

/// 100,000 series: 40 container families on selector 0 and 40 application families on
/// selector 1, 2,500 series each, with four label-name sets per family.
fn discover(engine: &mut Engine) {
    let variants: [&[&str]; 4] = [
        &["container", "namespace", "pod"],
        &["container", "id", "image", "namespace", "pod"],
        &["instance", "job", "namespace", "pod", "service"],
        &["instance", "job", "namespace", "pod"],
    ];
    for id in 0..SERIES {
        let family = id % 80;
        let (selector, name) = if family < 40 {
            (0, format!("container_m{family}_total"))
        } else {
            (1, format!("app_m{family}_total"))
        };
        let names = variants[(id / 80 % 4) as usize];
        engine.add_series(id, selector, &name, names.iter().copied());
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn engine() -> Engine {
    Engine::new(&parse_adapter_config(CONFIG).expect("valid config")).expect("compiles")
}

fn benches(c: &mut Criterion) {
    let before = resident_bytes();
    let mut e = engine();
    discover(&mut e);
    let published = e.published();
    let after = resident_bytes();
    println!(
        "engine with {} discovered series: {} metric queries, resident set +{:.1} MiB",
        e.series_count(),
        published.queries.len(),
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0)
    );

    c.bench_function("discover 100k series", |b| {
        b.iter(|| {
            let mut e = engine();
            discover(&mut e);
            black_box(e.series_count())
        })
    });
    c.bench_function("published over 100k series", |b| {
        b.iter(|| black_box(e.published().queries.len()))
    });

    let pods = published
        .queries
        .iter()
        .find(|q| matches!(&q.target, Target::Custom { resource, .. } if resource == "pods"))
        .expect("a pods metric");
    println!("pods query: {} bytes: {}", pods.query.len(), pods.query);
    let results: Vec<Vec<Label>> = (0..2000)
        .map(|i| labels(&[("namespace", "big"), ("pod", &format!("web-7d9f8c-{i:05}"))]))
        .collect();
    c.bench_function("map 2000 pod results", |b| {
        b.iter(|| {
            results
                .iter()
                .filter_map(|l| pods.value(l, 1.5, 1_700_000_000_000))
                .count()
        })
    });
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
