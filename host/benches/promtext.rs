//! Throughput of the kubelet `/metrics/resource` parser against the `prometheus-parse` crate.
//!
//! Payloads are generated in the shape a kubelet serves (REFERENCE.md §1): families sorted by
//! name, each with `# HELP` / `# TYPE`, labels sorted, Go `%g`-style floats, millisecond
//! timestamps. Both parsers do the same work a scrape needs: every sample's name, value,
//! timestamp and its `namespace` / `pod` / `container` labels.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use metrics_gateway::sources::kubelet::promtext;

/// A deterministic xorshift generator, so every run parses the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| char::from(CHARS[self.below(CHARS.len() as u64) as usize]))
            .collect()
    }
}

/// Formats like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which the kubelet uses.
fn go_float(v: f64) -> String {
    let exp = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sci = format!("{v:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// One metric family of the kubelet's resource collector.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// Draws one value.
    value: fn(&mut Rng) -> f64,
    /// Whether samples carry a timestamp (the start time does not).
    timestamped: bool,
}

fn cpu_seconds(rng: &mut Rng) -> f64 {
    rng.below(5_000_000_000_000) as f64 / 1e9
}

fn working_set_bytes(rng: &mut Rng) -> f64 {
    (rng.below(2_000_000) * 4096) as f64
}

fn swap_bytes(rng: &mut Rng) -> f64 {
    (rng.below(2) * 4096) as f64
}

fn start_time_seconds(rng: &mut Rng) -> f64 {
    (1_690_000_000 + rng.below(10_000_000)) as f64
}

const CONTAINER_FAMILIES: [Family; 4] = [
    Family {
        name: "container_cpu_usage_seconds_total",
        help: "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        kind: "counter",
        value: cpu_seconds,
        timestamped: true,
    },
    Family {
        name: "container_memory_working_set_bytes",
        help: "[STABLE] Current working set of the container in bytes",
        kind: "gauge",
        value: working_set_bytes,
        timestamped: true,
    },
    Family {
        name: "container_start_time_seconds",
        help: "[STABLE] Start time of the container since unix epoch in seconds",
        kind: "gauge",
        value: start_time_seconds,
        timestamped: false,
    },
    Family {
        name: "container_swap_usage_bytes",
        help: "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems",
        kind: "gauge",
        value: swap_bytes,
        timestamped: true,
    },
];

const NODE_FAMILIES: [Family; 3] = [
    Family {
        name: "node_cpu_usage_seconds_total",
        help: "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        kind: "counter",
        value: cpu_seconds,
        timestamped: true,
    },
    Family {
        name: "node_memory_working_set_bytes",
        help: "[STABLE] Current working set of the node in bytes",
        kind: "gauge",
        value: working_set_bytes,
        timestamped: true,
    },
    Family {
        name: "node_swap_usage_bytes",
        help: "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
        kind: "gauge",
        value: swap_bytes,
        timestamped: true,
    },
];

const POD_FAMILIES: [Family; 3] = [
    Family {
        name: "pod_cpu_usage_seconds_total",
        help: "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        kind: "counter",
        value: cpu_seconds,
        timestamped: true,
    },
    Family {
        name: "pod_memory_working_set_bytes",
        help: "[STABLE] Current working set of the pod in bytes",
        kind: "gauge",
        value: working_set_bytes,
        timestamped: true,
    },
    Family {
        name: "pod_swap_usage_bytes",
        help: "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
        kind: "gauge",
        value: swap_bytes,
        timestamped: true,
    },
];

const SCRAPE_ERROR: Family = Family {
    name: "resource_scrape_error",
    help: "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    kind: "gauge",
    value: |_| 0.0,
    timestamped: false,
};

/// Writes one family: its HELP and TYPE lines, then one sample per label set.
fn write_family<'l>(
    out: &mut String,
    rng: &mut Rng,
    family: &Family,
    label_sets: impl IntoIterator<Item = &'l str>,
) {
    let Family {
        name, help, kind, ..
    } = family;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for labels in label_sets {
        let value = go_float((family.value)(rng));
        let _ = match (labels.is_empty(), family.timestamped) {
            (true, false) => writeln!(out, "{name} {value}"),
            (true, true) => writeln!(out, "{name} {value} {}", timestamp_ms(rng)),
            (false, false) => writeln!(out, "{name}{{{labels}}} {value}"),
            (false, true) => writeln!(out, "{name}{{{labels}}} {value} {}", timestamp_ms(rng)),
        };
    }
}

/// A scrape time within the last 15 s before a fixed "now".
fn timestamp_ms(rng: &mut Rng) -> i64 {
    1_700_000_000_000 - rng.below(15_000) as i64
}

/// A kubelet `/metrics/resource` body for `pods` pods of `containers` containers each.
fn kubelet_payload(pods: usize, containers: usize) -> String {
    const NAMESPACES: [&str; 5] = [
        "kube-system",
        "default",
        "monitoring",
        "shop-prod",
        "ingress-nginx",
    ];
    const APPS: [&str; 6] = [
        "coredns",
        "checkout",
        "frontend",
        "prometheus-node-exporter",
        "redis",
        "payments-api",
    ];
    const SIDECARS: [&str; 3] = ["istio-proxy", "log-shipper", "config-reloader"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // (namespace, pod) and (container, namespace, pod), sorted as client_golang sorts samples.
    let mut pod_keys = Vec::new();
    let mut container_keys = Vec::new();
    for p in 0..pods {
        let app = APPS[p % APPS.len()];
        let pod = format!("{app}-{}-{}", rng.alnum(10), rng.alnum(5));
        let namespace = NAMESPACES[p % NAMESPACES.len()];
        for c in 0..containers {
            let container = if c == 0 {
                app
            } else {
                SIDECARS[(c - 1) % SIDECARS.len()]
            };
            container_keys.push((container, namespace, pod.clone()));
        }
        pod_keys.push((namespace, pod));
    }
    pod_keys.sort();
    container_keys.sort();
    let container_labels: Vec<String> = container_keys
        .iter()
        .map(|(container, namespace, pod)| {
            format!("container=\"{container}\",namespace=\"{namespace}\",pod=\"{pod}\"")
        })
        .collect();
    let pod_labels: Vec<String> = pod_keys
        .iter()
        .map(|(namespace, pod)| format!("namespace=\"{namespace}\",pod=\"{pod}\""))
        .collect();

    let mut out = String::new();
    for family in &CONTAINER_FAMILIES {
        write_family(
            &mut out,
            &mut rng,
            family,
            container_labels.iter().map(String::as_str),
        );
    }
    for family in &NODE_FAMILIES {
        write_family(&mut out, &mut rng, family, [""]);
    }
    for family in &POD_FAMILIES {
        write_family(
            &mut out,
            &mut rng,
            family,
            pod_labels.iter().map(String::as_str),
        );
    }
    write_family(&mut out, &mut rng, &SCRAPE_ERROR, [""]);
    out
}

/// What a scrape consumer folds out of each sample, so no parser work is optimised away.
#[derive(Default)]
struct Digest {
    samples: u64,
    value_sum: f64,
    timestamp_sum: i64,
    label_bytes: usize,
}

fn consume_promtext(text: &str) -> Digest {
    let mut digest = Digest::default();
    for sample in promtext::parse(text) {
        let sample = sample.expect("generated payload is valid");
        digest.samples += 1;
        digest.value_sum += sample.value;
        digest.timestamp_sum = digest
            .timestamp_sum
            .wrapping_add(sample.timestamp_ms.unwrap_or(0));
        digest.label_bytes += sample.name.len();
        for label in ["namespace", "pod", "container"] {
            digest.label_bytes += sample.labels.get(label).map_or(0, |v| v.len());
        }
    }
    digest
}

fn consume_prometheus_parse(text: &str) -> Digest {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("in-memory lines cannot fail");
    let mut digest = Digest::default();
    for sample in &scrape.samples {
        digest.samples += 1;
        digest.value_sum += match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        };
        digest.timestamp_sum = digest
            .timestamp_sum
            .wrapping_add(sample.timestamp.timestamp_millis());
        digest.label_bytes += sample.metric.len();
        for label in ["namespace", "pod", "container"] {
            digest.label_bytes += sample.labels.get(label).map_or(0, str::len);
        }
    }
    digest
}

fn bench_parsers(c: &mut Criterion) {
    for (pods, containers) in [(30, 2), (110, 3)] {
        let text = kubelet_payload(pods, containers);
        let ours = consume_promtext(&text);
        let theirs = consume_prometheus_parse(&text);
        assert_eq!(
            ours.samples, theirs.samples,
            "both parsers see every sample"
        );
        assert_eq!(
            ours.label_bytes, theirs.label_bytes,
            "both parsers read the same labels"
        );
        assert_eq!(
            ours.value_sum, theirs.value_sum,
            "both parsers read the same values"
        );

        let mut group = c.benchmark_group(format!("kubelet_{pods}pods_x{containers}"));
        group.throughput(Throughput::ElementsAndBytes {
            elements: ours.samples,
            bytes: text.len() as u64,
        });
        group.bench_with_input(
            BenchmarkId::new("promtext", text.len()),
            &text,
            |b, text| b.iter(|| consume_promtext(black_box(text))),
        );
        group.bench_with_input(
            BenchmarkId::new("prometheus-parse", text.len()),
            &text,
            |b, text| b.iter(|| consume_prometheus_parse(black_box(text))),
        );
        group.finish();
    }
}

criterion_group!(benches, bench_parsers);
criterion_main!(benches);
