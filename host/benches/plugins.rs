//! Plugin runtime costs: an empty `process` call, a rate derivation over 1M samples per cycle
//! through wasm against the same plugin code run natively, loading a compiled component from the
//! artifact cache, instantiating it, and compiling it.
//!
//! Needs `target/plugins/{rate,pending-pods}.wasm` (`scripts/build-plugins.sh`).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metrics_gateway::config::PluginRuntimeConfig;
use metrics_gateway::plugins::PluginRuntime;
use metrics_gateway::plugins::input::CycleInput;
use metrics_gateway::plugins::instance::{Instance, Limits};
use metrics_gateway::samples::Series;
use metrics_gateway::telemetry::Telemetry;
use metrics_gateway_sdk::Plugin as _;

const SAMPLES: usize = 1_000_000;
const RATE_CONFIG: &str = r#"{"rules": [{"source": "kubelet-cadvisor", "series": "c_total",
    "metric": "c_rate", "target": "external", "keep_labels": []}]}"#;
const LIMITS: Limits = Limits {
    timeout_ms: 60_000,
    memory_bytes: 2 << 30,
};

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/build-plugins.sh first",
            path.display()
        )
    })
}

fn runtime() -> (Arc<PluginRuntime>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = PluginRuntime::new(
        &PluginRuntimeConfig {
            cache_dir: Some(dir.path().to_owned()),
        },
        &Telemetry::new(),
    )
    .expect("runtime");
    (runtime, dir)
}

fn configured(runtime: &PluginRuntime, bytes: &[u8], config: &str) -> Instance {
    let loaded = runtime.load(bytes).expect("loads");
    let mut instance = Instance::new(&loaded.pre, "bench".into(), LIMITS).expect("instantiates");
    instance
        .call(|b, s| b.configure(s, config))
        .expect("no fault")
        .expect("configures");
    instance
}

fn empty_input() -> CycleInput<'static> {
    CycleInput {
        interval_ms: 15_000,
        ..CycleInput::default()
    }
}

fn empty_call(c: &mut Criterion) {
    let (runtime, _dir) = runtime();
    let mut instance = configured(&runtime, &wasm("pending-pods"), "{}");
    let input = empty_input();
    c.bench_function("plugin/process_empty", |b| {
        b.iter(|| {
            instance
                .call(|b, s| b.process(s, black_box(&input)))
                .expect("no fault")
                .expect("ok")
        })
    });
}

/// `SAMPLES` counter series.
fn counters() -> Vec<Arc<Series>> {
    (0..SAMPLES)
        .map(|i| Series::new("c_total".into(), vec![("id".into(), i.to_string().into())]))
        .collect()
}

/// One cycle of the `counters`: every series announced in the first, none after.
fn rate_input(counters: &[Arc<Series>], first: bool) -> CycleInput<'_> {
    let mut input = empty_input();
    input.timestamp_ms = 1_700_000_000_000;
    input.ids = counters.iter().map(|s| s.id).collect();
    input.timestamps_ms = vec![input.timestamp_ms; SAMPLES];
    input.values = (0..SAMPLES).map(|i| i as f64).collect();
    if first {
        input.added = counters.iter().map(|s| (&**s, 0)).collect();
    }
    input
}

fn sdk_input(input: &CycleInput<'_>) -> metrics_gateway_sdk::CycleInput {
    metrics_gateway_sdk::CycleInput {
        timestamp_ms: input.timestamp_ms,
        interval_ms: input.interval_ms,
        added: input
            .added
            .iter()
            .map(|(s, index)| metrics_gateway_sdk::Series {
                id: s.id,
                input: *index,
                name: s.name.to_string(),
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| metrics_gateway_sdk::Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
            })
            .collect(),
        removed: vec![],
        ids: input.ids.clone(),
        timestamps_ms: input.timestamps_ms.clone(),
        values: input.values.clone(),
        ..metrics_gateway_sdk::CycleInput::default()
    }
}

/// Advances every sample by one interval.
fn advance(ts: &mut i64, timestamps: &mut [i64], values: &mut [f64]) {
    *ts += 15_000;
    timestamps.fill(*ts);
    for v in values {
        *v += 10.0;
    }
}

fn rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("plugin/rate_1M");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    let (runtime, _dir) = runtime();
    let mut instance = configured(&runtime, &wasm("rate"), RATE_CONFIG);
    let counters = counters();
    let mut input = rate_input(&counters, true);
    instance
        .call(|b, s| b.process(s, &input))
        .expect("no fault")
        .expect("ok");
    input.added.clear();
    group.bench_function("wasm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                advance(
                    &mut input.timestamp_ms,
                    &mut input.timestamps_ms,
                    &mut input.values,
                );
                let started = Instant::now();
                let out = instance
                    .call(|b, s| b.process(s, &input))
                    .expect("no fault")
                    .expect("ok");
                total += started.elapsed();
                assert_eq!(out.external.len(), 1);
            }
            total
        })
    });

    let (mut native, _plan) =
        metrics_gateway_sdk::configure_json::<rate::RatePlugin>(RATE_CONFIG).expect("configures");
    let mut input = sdk_input(&rate_input(&counters, true));
    native.process(&input).expect("ok");
    input.added.clear();
    group.bench_function("native", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                advance(
                    &mut input.timestamp_ms,
                    &mut input.timestamps_ms,
                    &mut input.values,
                );
                let started = Instant::now();
                let out = native.process(&input).expect("ok");
                total += started.elapsed();
                assert_eq!(out.external.len(), 1);
            }
            total
        })
    });
    group.finish();
}

fn load_and_compile(c: &mut Criterion) {
    let bytes = wasm("rate");
    let (runtime, _dir) = runtime();
    drop(runtime.load(&bytes).expect("compiles and caches"));
    c.bench_function("plugin/load_from_disk_cache", |b| {
        // The in-memory map holds only weak references: each load reads the artifact again.
        b.iter(|| drop(black_box(runtime.load(&bytes).expect("loads"))))
    });
    let loaded = runtime.load(&bytes).expect("loads");
    c.bench_function("plugin/instantiate", |b| {
        b.iter(|| Instance::new(&loaded.pre, "bench".into(), LIMITS).expect("instantiates"))
    });
    c.bench_function("plugin/instantiate_and_configure", |b| {
        b.iter(|| {
            let mut i = Instance::new(&loaded.pre, "bench".into(), LIMITS).expect("instantiates");
            i.call(|b, s| b.configure(s, RATE_CONFIG))
                .expect("no fault")
                .expect("configures")
        })
    });
    let mut group = c.benchmark_group("plugin/compile");
    group.sample_size(10);
    group.bench_function("rate", |b| {
        b.iter(|| runtime.compile_uncached(&bytes).expect("compiles"))
    });
    group.finish();
}

criterion_group!(benches, empty_call, rate, load_and_compile);
criterion_main!(benches);
