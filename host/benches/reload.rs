//! Reload time with 20 plugins (`cargo bench -p metrics-gateway --bench reload`), against the
//! demo rig (fake kube-apiserver, 2 simulated kubelets): p50/p99/max over many reloads of
//!
//! 1. trigger → new plugin set installed (`ReloadHandle::reload` returning: file read and
//!    validated, modules hashed, changed plugins compiled from the warm artifact cache and
//!    configured, set swapped between cycles);
//! 2. trigger → new config serving (1, then the cycle the reload starts publishing the first
//!    snapshot from the new set: scrapes, the 20 plugins' `process`, the publish),
//!
//! with no plugin changed, and with one plugin's config changed every reload.

use std::time::{Duration, Instant};

use metrics_gateway::demo::{Rig, RigOptions, RigPlugin};
use metrics_gateway::reload::Trigger;
use metrics_gateway_testkit::cluster::ClusterSpec;

const PLUGINS: usize = 20;
const RELOADS: usize = 300;

fn rate(i: usize, metric: &str, wasm: &std::path::Path) -> RigPlugin {
    RigPlugin::new(
        &format!("rate-{i}"),
        wasm,
        &format!(
            "[[rules]]\nsource = \"kubelet-resource\"\nseries = \"container_cpu_usage_seconds_total\"\n\
             metric = \"{metric}\"\ntarget = \"pods\"\n"
        ),
    )
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} reloads)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        samples.len()
    );
}

async fn measure(rig: &Rig, name: &str, texts: &[String]) {
    let handle = rig.gateway.reload.clone().expect("started from a file");
    let path = rig.config_path();
    let (mut installed, mut serving) = (Vec::new(), Vec::new());
    for i in 0..RELOADS {
        std::fs::write(&path, &texts[i % texts.len()]).expect("writing the config");
        let started = Instant::now();
        let report = handle.reload(Trigger::Http).await;
        installed.push(started.elapsed());
        assert!(report.succeeded(), "{report:?}");
        rig.gateway.collector.run_cycle().await;
        serving.push(started.elapsed());
    }
    percentiles(&format!("{name}: trigger → set installed"), installed);
    percentiles(&format!("{name}: trigger → new config serving"), serving);
}

fn main() {
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/rate.wasm");
    assert!(wasm.exists(), "run scripts/build-plugins.sh first");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let options = RigOptions {
            spec: ClusterSpec {
                nodes: 2,
                pods_per_node: 10,
                kubelet_port: 29_750,
                ..ClusterSpec::default()
            },
            plugins: (0..PLUGINS)
                .map(|i| rate(i, &format!("m{i}"), &wasm))
                .collect(),
            ..RigOptions::default()
        };
        let rig = Rig::start(options).await.expect("rig starts");
        assert!(
            rig.gateway.plugin_errors.is_empty(),
            "{:?}",
            rig.gateway.plugin_errors
        );
        rig.gateway.collector.run_cycle().await;
        let text = std::fs::read_to_string(rig.config_path()).expect("reading the config");
        measure(
            &rig,
            "20 plugins, none changed",
            std::slice::from_ref(&text),
        )
        .await;
        // Plugin 0 alternates between two metric names: a fresh instance every reload, its
        // component from the artifact cache (warm after the first two).
        let other = text.replace("metric = \"m0\"", "metric = \"m0b\"");
        assert_ne!(text, other);
        measure(&rig, "20 plugins, one changed (cache warm)", &[other, text]).await;
        rig.shutdown().await;
    });
}
