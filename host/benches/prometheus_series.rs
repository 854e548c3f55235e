//! Memory of a series discovery holding 100,000 series (cAdvisor-like label sets, 13 labels
//! each, long unique `id` and `name` values), parsed from a real `/api/v1/series` answer body
//! into the source's interned table, with the gateway's allocator. Prints resident memory: the
//! table and the series list held after the body is dropped, the peak while parsing, and after
//! a second discovery of the same series (the steady state between runs).
//!
//! `cargo bench -p metrics-gateway --bench prometheus_series`

use std::fmt::Write as _;

use metrics_gateway::sources::prometheus::response::parse_series;
use metrics_gateway::sources::prometheus::series::SeriesTable;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERIES: usize = 100_000;

/// A `kB` field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kb: f64 = status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("field present");
    kb / 1024.0
}

fn series_body() -> String {
    let mut out = String::with_capacity(SERIES * 600);
    out.push_str(r#"{"status":"success","data":["#);
    for i in 0..SERIES {
        if i > 0 {
            out.push(',');
        }
        let (ns, node) = (i % 50, i % 1000);
        let pod = format!("app-{}-{:05}-{:x}", i % 200, i, i * 7919);
        let hex = format!("{:016x}{:016x}{:016x}{:016x}", i, i * 31, i * 131, i * 1031);
        let _ = write!(
            out,
            r#"{{"__name__":"container_cpu_usage_seconds_total","container":"app","cpu":"total","endpoint":"https-metrics","id":"/kubepods/burstable/pod{i:08x}-0000-4000-8000-{i:012x}/{hex}","image":"registry.example/app:1.{}","instance":"10.0.{}.{}:10250","job":"kubelet","metrics_path":"/metrics/cadvisor","name":"{hex}","namespace":"ns-{ns}","node":"node-{node:04}","pod":"{pod}","service":"kubelet"}}"#,
            i % 20,
            node / 250,
            node % 250,
        );
    }
    out.push_str("]}");
    out
}

fn main() {
    let before = status_mb("VmRSS:");
    let body = series_body();
    let body_mb = body.len() as f64 / (1 << 20) as f64;
    let with_body = status_mb("VmRSS:");
    let mut table = SeriesTable::default();
    let series = parse_series(body.as_bytes(), &mut table, SERIES, false)
        .expect("parses")
        .series;
    table.sweep();
    drop(body);
    let held = status_mb("VmRSS:") - before;
    let peak = status_mb("VmHWM:") - before;
    assert_eq!(series.len(), SERIES);
    // The next discovery finds the same series: the list is replaced, the table kept.
    let again = series_body();
    let second = parse_series(again.as_bytes(), &mut table, SERIES, false)
        .expect("parses")
        .series;
    table.sweep();
    drop(again);
    assert_eq!(second[SERIES - 1].id, series[SERIES - 1].id);
    drop(series);
    let steady = status_mb("VmRSS:") - before;
    println!("series discovery, {SERIES} series, 13 labels each ({body_mb:.1} MB of JSON):");
    println!(
        "  body alone                      {:7.1} MB RSS",
        with_body - before
    );
    println!(
        "  held after the body is dropped  {held:7.1} MB RSS ({} distinct strings)",
        table.strings()
    );
    println!("  peak while parsing (with body)  {peak:7.1} MB RSS");
    println!("  after a second discovery        {steady:7.1} MB RSS");
    std::hint::black_box(&second);
}
