//! The Prometheus source against a real Prometheus over backfilled data: exact values and
//! timestamps, refused result types, one request per (backend, query) whatever the number of
//! plugins, capped and reused series discovery (every series or one per shape), and a stopped
//! backend failing only its own inputs until it is back.

use std::path::Path;
use std::sync::Arc;

use metrics_gateway::config::{self, PrometheusConfig};
use metrics_gateway::pipeline::wanted::Wanted;
use metrics_gateway::samples::{CycleSamples, QueryResult, Source};
use metrics_gateway::sources::prometheus::{Collected, PrometheusSource};
use metrics_gateway::telemetry::Telemetry;
use metrics_gateway_testkit::prometheus::{self as data, END_MS, Prometheus};

/// Backends from `[[prometheus]]` tables (`(name, url, extra keys)`).
fn backends(entries: &[(&str, &str, &str)]) -> Vec<PrometheusConfig> {
    let mut text = String::from("[server]\nself_signed = true\n");
    for (name, url, extra) in entries {
        text.push_str(&format!(
            "[[prometheus]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout_secs = 5\n{extra}\n"
        ));
    }
    config::parse(Path::new("gateway.toml"), &text)
        .unwrap()
        .prometheus
}

fn source(entries: &[(&str, &str, &str)]) -> (PrometheusSource, Telemetry) {
    let telemetry = Telemetry::new();
    let source =
        PrometheusSource::new(&backends(entries), Path::new("."), telemetry.clone()).unwrap();
    (source, telemetry)
}

fn samples(collected: Collected) -> CycleSamples {
    CycleSamples {
        queries: collected.results,
        default_backend: collected.default_backend,
        ..CycleSamples::default()
    }
}

/// (name, label `key`, timestamp, value) of every sample of an instant query.
fn rows(result: Option<&QueryResult>, key: &str) -> Vec<(String, String, i64, f64)> {
    let Some(QueryResult::Samples(f)) = result else {
        panic!("expected samples, got {result:?}");
    };
    let mut rows: Vec<_> = (0..f.len())
        .map(|i| {
            let s = &f.series[i];
            (
                s.name.to_string(),
                s.label(key).unwrap_or_default().to_owned(),
                f.timestamps_ms[i],
                f.values[i],
            )
        })
        .collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

fn failure(result: Option<&QueryResult>) -> String {
    match result {
        Some(QueryResult::Failed(message)) => message.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_and_scalar_results_have_exact_values_and_timestamps() {
    let prom = Prometheus::start().unwrap();
    let (source, _) = source(&[("main", &prom.url(), "")]);
    let earlier = END_MS - 60_000;
    let mem = "memory_usage_bytes{namespace=\"shop\"}";
    let total = "sum(queue_depth)";
    let scalar = "scalar(sum(queue_depth{namespace=\"shop\"}))";
    let odd = format!(
        "odd_label_value{{path=\"{}\"}}",
        data::ODD_VALUE.replace('\\', "\\\\")
    );
    let queries = [mem, total, scalar, "special_value", &odd];
    let got = samples(
        source
            .collect(queries.iter().map(|q| (Source::Prometheus, "", *q)), END_MS)
            .await,
    );
    assert_eq!(
        rows(got.query(Source::Prometheus, "", mem), "pod"),
        [
            (
                "memory_usage_bytes".into(),
                "cart-0".into(),
                END_MS,
                data::memory_bytes(0)
            ),
            (
                "memory_usage_bytes".into(),
                "cart-1".into(),
                END_MS,
                data::memory_bytes(1)
            ),
            (
                "memory_usage_bytes".into(),
                "checkout.v2-0".into(),
                END_MS,
                data::memory_bytes(2)
            ),
        ]
    );
    // An aggregation has no metric name.
    assert_eq!(
        rows(got.query(Source::Prometheus, "main", total), "x"),
        [(String::new(), String::new(), END_MS, 52.0)]
    );
    assert_eq!(
        rows(got.query(Source::Prometheus, "", scalar), "x"),
        [(String::new(), String::new(), END_MS, 49.0)]
    );
    let special = rows(got.query(Source::Prometheus, "", "special_value"), "kind");
    assert_eq!(special[0].1, "inf");
    assert_eq!(special[0].3, f64::INFINITY);
    assert!(special[1].3.is_nan(), "{special:?}");
    assert_eq!(special[2].3, f64::NEG_INFINITY);
    assert_eq!(
        rows(got.query(Source::Prometheus, "", &odd), "path"),
        [(
            "odd_label_value".into(),
            data::ODD_VALUE.into(),
            END_MS,
            1.0
        )]
    );

    // `time=` is the cycle's time: a counter as it was a minute before the end.
    let counter = "http_requests_total{namespace=\"web-front\"}";
    let got = samples(
        source
            .collect([(Source::Prometheus, "", counter)], earlier)
            .await,
    );
    let span = (data::SPAN_SECS - 60) as f64;
    assert_eq!(
        rows(got.query(Source::Prometheus, "", counter), "pod"),
        [
            (
                "http_requests_total".into(),
                "nginx-a".into(),
                earlier,
                data::http_rate(3) * span
            ),
            (
                "http_requests_total".into(),
                "nginx-b".into(),
                earlier,
                data::http_rate(4) * span
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_of_2000_pods_in_one_query() {
    let prom = Prometheus::start().unwrap();
    let (source, _) = source(&[("main", &prom.url(), "method = \"POST\"")]);
    let q = "sum by (pod) (rate(container_cpu_usage_seconds_total{namespace=\"big\",container!=\"POD\"}[2m]))";
    let got = samples(source.collect([(Source::Prometheus, "", q)], END_MS).await);
    let rows = rows(got.query(Source::Prometheus, "", q), "pod");
    assert_eq!(rows.len(), data::BIG_PODS);
    for (i, (_, pod, t, v)) in rows.iter().enumerate() {
        assert_eq!((pod.as_str(), *t), (data::big_pod(i).as_str(), END_MS));
        let want = data::big_cpu_rate(i);
        assert!((v - want).abs() < 1e-12, "{pod}: {v} != {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_and_bad_queries_fail_naming_backend_and_query() {
    let prom = Prometheus::start().unwrap();
    let (source, telemetry) = source(&[("main", &prom.url(), "")]);
    let matrix = "memory_usage_bytes[1m]";
    let broken = "sum(";
    let got = samples(
        source
            .collect(
                [
                    (Source::Prometheus, "", matrix),
                    (Source::Prometheus, "", broken),
                    (Source::Prometheus, "nope", "up"),
                    (Source::Prometheus, "", "queue_depth"),
                ],
                END_MS,
            )
            .await,
    );
    let e = failure(got.query(Source::Prometheus, "", matrix));
    assert!(
        e.starts_with(
            "prometheus \"main\": query \"memory_usage_bytes[1m]\": the query returned a matrix"
        ),
        "{e}"
    );
    let e = failure(got.query(Source::Prometheus, "main", broken));
    assert!(
        e.contains("query \"sum(\": Prometheus error (bad_data)"),
        "{e}"
    );
    let e = failure(got.query(Source::Prometheus, "nope", "up"));
    assert!(e.contains("no prometheus backend named \"nope\""), "{e}");
    assert_eq!(
        rows(got.query(Source::Prometheus, "", "queue_depth"), "queue").len(),
        3
    );
    let metrics = telemetry.encode();
    for line in [
        "metrics_gateway_prometheus_queries_total{backend=\"main\",outcome=\"success\"} 1",
        "metrics_gateway_prometheus_queries_total{backend=\"main\",outcome=\"bad_result\"} 1",
        "metrics_gateway_prometheus_queries_total{backend=\"main\",outcome=\"prometheus_error\"} 1",
        "metrics_gateway_prometheus_backend_up{backend=\"main\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_sharing_a_query_cause_one_request() {
    let prom = Prometheus::start().unwrap();
    let (source, _) = source(&[("default", &prom.url(), "")]);
    // Two plugins' plans, both reading `sum(queue_depth)` from the default backend (one by its
    // name), and one reading another query.
    let mut wanted = Wanted::default();
    wanted.add_query(Source::Prometheus, "", "sum(queue_depth)");
    wanted.add_query(Source::Prometheus, "", "sum(queue_depth)");
    wanted.add_query(Source::Prometheus, "default", "sum(queue_depth)");
    wanted.add_query(Source::Prometheus, "", "queue_depth");
    let before = prom.requests_to("/api/v1/query").unwrap();
    let got = samples(source.collect(wanted.queries(), END_MS).await);
    let after = prom.requests_to("/api/v1/query").unwrap();
    assert_eq!(after - before, 2.0, "one request per distinct query");
    let by_name = got.query(Source::Prometheus, "default", "sum(queue_depth)");
    let by_default = got.query(Source::Prometheus, "", "sum(queue_depth)");
    match (by_name, by_default) {
        (Some(QueryResult::Samples(a)), Some(QueryResult::Samples(b))) => {
            assert!(Arc::ptr_eq(a, b));
            assert_eq!(a.values, [52.0]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_capped_and_reused_until_its_interval() {
    let prom = Prometheus::start().unwrap();
    let extra = "max_series = 100\ndiscovery_interval_secs = 240";
    let (source, telemetry) = source(&[("main", &prom.url(), extra)]);
    let big = "container_cpu_usage_seconds_total{namespace=\"big\"}";
    let inputs = [
        (Source::PrometheusSeries, "", "queue_depth"),
        (Source::PrometheusSeries, "", big),
    ];
    let before = prom.requests_to("/api/v1/series").unwrap();
    let first = samples(source.collect(inputs, END_MS).await);
    let e = failure(first.query(Source::PrometheusSeries, "", big));
    assert_eq!(
        e.split(" at line").next().unwrap(),
        format!("prometheus \"main\": series {big:?}: more than 100 series (max_series)")
    );
    let Some(QueryResult::Series(queues)) =
        first.query(Source::PrometheusSeries, "", "queue_depth")
    else {
        panic!("no series");
    };
    let mut names: Vec<_> = queues
        .iter()
        .map(|s| s.label("queue").unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a+b(c)|d", "orders", "orders.retry"]);
    assert!(queues.iter().all(|s| &*s.name == "queue_depth"));
    assert!(
        telemetry
            .encode()
            .contains("metrics_gateway_prometheus_discovered_series{backend=\"main\"} 3")
    );
    // Within the interval the last list is reused; the failed one is retried.
    let second = samples(source.collect(inputs, END_MS + 60_000).await);
    let Some(QueryResult::Series(again)) =
        second.query(Source::PrometheusSeries, "", "queue_depth")
    else {
        panic!("no series");
    };
    assert!(Arc::ptr_eq(queues, again));
    assert!(matches!(
        second.query(Source::PrometheusSeries, "", big),
        Some(QueryResult::Failed(_))
    ));
    assert_eq!(prom.requests_to("/api/v1/series").unwrap() - before, 3.0);
    // After it, discovery runs again and keeps the series' ids.
    let third = samples(
        source
            .collect(inputs[..1].iter().copied(), END_MS + 240_000)
            .await,
    );
    let Some(QueryResult::Series(rerun)) = third.query(Source::PrometheusSeries, "", "queue_depth")
    else {
        panic!("no series");
    };
    assert!(!Arc::ptr_eq(queues, rerun));
    let ids = |s: &[Arc<metrics_gateway::samples::Series>]| {
        let mut ids: Vec<u64> = s.iter().map(|s| s.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(queues), ids(rerun));
    assert_eq!(prom.requests_to("/api/v1/series").unwrap() - before, 4.0);
}

/// (name, label names) of every series of a discovery result, sorted; asserts that every label
/// value is empty, as in a discovery by shape.
fn shapes(result: Option<&QueryResult>) -> Vec<(String, Vec<String>)> {
    let Some(QueryResult::Series(series)) = result else {
        panic!("expected shapes, got {result:?}");
    };
    let mut shapes: Vec<(String, Vec<String>)> = series
        .iter()
        .map(|s| {
            assert!(s.labels.iter().all(|(_, v)| v.is_empty()), "{s:?}");
            let names = s.labels.iter().map(|(k, _)| k.to_string()).collect();
            (s.name.to_string(), names)
        })
        .collect();
    shapes.sort();
    shapes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_by_shape_sends_each_name_and_label_set_once() {
    let prom = Prometheus::start().unwrap();
    let url = prom.url();
    let (source, telemetry) = source(&[
        (
            "main",
            &url,
            "max_series = 100\ndiscovery_interval_secs = 240",
        ),
        ("wide", &url, "max_series = 5000"),
    ]);
    let small = "{__name__=~\"queue_depth|http_requests_total|memory_usage_bytes\"}";
    let big = "container_cpu_usage_seconds_total{namespace=\"big\"}";
    let inputs = [
        (Source::PrometheusSeriesShapes, "main", small),
        (Source::PrometheusSeriesShapes, "main", big),
        (Source::PrometheusSeriesShapes, "wide", big),
        (Source::PrometheusSeries, "main", "queue_depth"),
    ];
    let first = samples(source.collect(inputs, END_MS).await);
    // 15 series (3 queues, 6 pods twice) are 3 shapes.
    let found = shapes(first.query(Source::PrometheusSeriesShapes, "main", small));
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        [
            ("http_requests_total".into(), names(&["namespace", "pod"])),
            ("memory_usage_bytes".into(), names(&["namespace", "pod"])),
            ("queue_depth".into(), names(&["namespace", "queue"])),
        ]
    );
    // The cap counts series, not shapes: 2,000 series are too many for `main`, one shape for
    // `wide`.
    let e = failure(first.query(Source::PrometheusSeriesShapes, "main", big));
    assert_eq!(
        e.split(" at line").next().unwrap(),
        format!("prometheus \"main\": series shapes of {big:?}: more than 100 series (max_series)")
    );
    assert_eq!(
        shapes(first.query(Source::PrometheusSeriesShapes, "wide", big)),
        [(
            "container_cpu_usage_seconds_total".into(),
            names(&["container", "namespace", "pod"])
        )]
    );
    // The same selector discovered series by series keeps its values, apart from the shapes.
    let Some(QueryResult::Series(queues)) =
        first.query(Source::PrometheusSeries, "main", "queue_depth")
    else {
        panic!("no series");
    };
    assert_eq!(queues.len(), 3);
    assert!(
        queues
            .iter()
            .all(|s| s.label("queue").is_some_and(|q| !q.is_empty()))
    );
    // The gauge counts the series Prometheus returned.
    let metrics = telemetry.encode();
    assert!(
        metrics.contains("metrics_gateway_prometheus_discovered_series{backend=\"main\"} 18"),
        "{metrics}"
    );
    assert!(
        metrics.contains("metrics_gateway_prometheus_discovered_series{backend=\"wide\"} 2000"),
        "{metrics}"
    );
    // Run again after the interval, a shape keeps its id.
    let ids = |samples: &CycleSamples| {
        let Some(QueryResult::Series(s)) =
            samples.query(Source::PrometheusSeriesShapes, "main", small)
        else {
            panic!("no shapes");
        };
        let mut ids: Vec<u64> = s.iter().map(|s| s.id).collect();
        ids.sort();
        ids
    };
    let before = prom.requests_to("/api/v1/series").unwrap();
    let again = samples(
        source
            .collect(inputs[..1].iter().copied(), END_MS + 240_000)
            .await,
    );
    assert_eq!(prom.requests_to("/api/v1/series").unwrap() - before, 1.0);
    assert_eq!(ids(&again), ids(&first));
}

/// The label names of a `prometheus-labels` result, sorted (each is a series named after it).
fn label_names(result: Option<&QueryResult>) -> Vec<String> {
    let Some(QueryResult::Series(series)) = result else {
        panic!("expected label names, got {result:?}");
    };
    assert!(series.iter().all(|s| s.labels.is_empty()));
    let mut names: Vec<String> = series.iter().map(|s| s.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_discovery_lists_exactly_the_backfilled_label_names_capped_and_shared() {
    let prom = Prometheus::start().unwrap();
    let url = prom.url();
    let (source, _) = source(&[("main", &url, ""), ("capped", &url, "max_series = 2")]);
    let inputs = [
        (Source::PrometheusLabels, "main", "queue_depth"),
        // The same input from another plugin: one request.
        (Source::PrometheusLabels, "main", "queue_depth"),
        (Source::PrometheusLabels, "main", "special_value"),
        (Source::PrometheusLabels, "main", ""),
        (Source::PrometheusLabels, "capped", "queue_depth"),
        (Source::PrometheusLabels, "main", "queue_depth{"),
    ];
    let before = prom.requests_to("/api/v1/labels").unwrap();
    let got = samples(source.collect(inputs, END_MS).await);
    assert_eq!(prom.requests_to("/api/v1/labels").unwrap() - before, 5.0);
    assert_eq!(
        label_names(got.query(Source::PrometheusLabels, "main", "queue_depth")),
        ["__name__", "namespace", "queue"]
    );
    assert_eq!(
        label_names(got.query(Source::PrometheusLabels, "main", "special_value")),
        ["__name__", "kind"]
    );
    let every = label_names(got.query(Source::PrometheusLabels, "main", ""));
    for name in [
        "__name__",
        "container",
        "kind",
        "namespace",
        "path",
        "pod",
        "queue",
    ] {
        assert!(
            every.iter().any(|n| n == name),
            "{name} missing from {every:?}"
        );
    }
    assert_eq!(
        failure(got.query(Source::PrometheusLabels, "capped", "queue_depth")),
        "prometheus \"capped\": labels of \"queue_depth\": more than 2 label names (max_series)"
    );
    let bad = failure(got.query(Source::PrometheusLabels, "main", "queue_depth{"));
    assert!(
        bad.starts_with(
            "prometheus \"main\": labels of \"queue_depth{\": Prometheus error (bad_data)"
        ),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backend_fails_only_its_queries_and_recovers() {
    let mut a = Prometheus::start().unwrap();
    let b = Prometheus::start().unwrap();
    let (source, telemetry) =
        source(&[("a", &a.url(), "max_concurrency = 2"), ("b", &b.url(), "")]);
    let q = "memory_usage_bytes{namespace=\"shop\"}";
    let inputs = [(Source::Prometheus, "a", q), (Source::Prometheus, "b", q)];
    let first = samples(source.collect(inputs, END_MS).await);
    let ids_before: Vec<u64> = match first.query(Source::Prometheus, "a", q) {
        Some(QueryResult::Samples(f)) => f.series.iter().map(|s| s.id).collect(),
        other => panic!("{other:?}"),
    };

    a.stop();
    let down = samples(source.collect(inputs, END_MS).await);
    let e = failure(down.query(Source::Prometheus, "a", q));
    assert!(
        e.starts_with(&format!("prometheus \"a\": query {q:?}: ")),
        "{e}"
    );
    assert_eq!(rows(down.query(Source::Prometheus, "b", q), "pod").len(), 3);
    let metrics = telemetry.encode();
    assert!(
        metrics.contains("metrics_gateway_prometheus_backend_up{backend=\"a\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("metrics_gateway_prometheus_backend_up{backend=\"b\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "metrics_gateway_prometheus_queries_total{backend=\"a\",outcome=\"unreachable\"} 1"
        ),
        "{metrics}"
    );

    a.restart().unwrap();
    let back = samples(source.collect(inputs, END_MS).await);
    let rows_a = rows(back.query(Source::Prometheus, "a", q), "pod");
    assert_eq!(rows_a, rows(back.query(Source::Prometheus, "b", q), "pod"));
    assert_eq!(rows_a[2].3, data::memory_bytes(2));
    // The failed cycle removed nothing: the series keep their ids.
    let ids_after: Vec<u64> = match back.query(Source::Prometheus, "a", q) {
        Some(QueryResult::Samples(f)) => f.series.iter().map(|s| s.id).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ids_before, ids_after);
    assert!(
        telemetry
            .encode()
            .contains("metrics_gateway_prometheus_backend_up{backend=\"a\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_times_out_its_queries_only() {
    let prom = Prometheus::start().unwrap();
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let (source, telemetry) = source(&[
        ("ok", &prom.url(), ""),
        ("slow", &silent_url, "max_concurrency = 1"),
    ]);
    // The second query to `slow` waits for its only slot: it fails within the same timeout.
    let inputs = [
        (Source::Prometheus, "slow", "queue_depth"),
        (Source::Prometheus, "slow", "sum(queue_depth)"),
        (Source::Prometheus, "ok", "sum(queue_depth)"),
    ];
    let got = samples(source.collect(inputs, END_MS).await);
    for q in ["queue_depth", "sum(queue_depth)"] {
        let e = failure(got.query(Source::Prometheus, "slow", q));
        assert_eq!(
            e,
            format!("prometheus \"slow\": query {q:?}: no answer within 5 s")
        );
    }
    assert_eq!(
        rows(got.query(Source::Prometheus, "ok", "sum(queue_depth)"), "x")[0].3,
        52.0
    );
    let metrics = telemetry.encode();
    assert!(
        metrics.contains(
            "metrics_gateway_prometheus_queries_total{backend=\"slow\",outcome=\"timeout\"} 2"
        ),
        "{metrics}"
    );
    drop(silent);
}
