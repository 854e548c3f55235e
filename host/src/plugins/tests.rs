//! Runtime tests with components built here from WAT: limits, faults, restarts, versions, cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{PluginRuntime, PluginSet};
use crate::config::{Config, PluginRuntimeConfig};
use crate::samples::CycleSamples;
use crate::sources::cluster::ClusterState;
use crate::store::custom::{MetricState, ObjectResource, PluginMetrics};
use crate::telemetry::Telemetry;

/// A component for the contract's WIT world `version`, from a core module in WAT.
fn component(wit: &str, world: &str, wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("plugin.wit", wit).expect("WIT parses");
    let world = resolve.select_world(&[pkg], Some(world)).expect("world");
    let mut module = wat::parse_str(wat).expect("WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("component")
}

/// The archived 0.1.0 contract: these components prove the host still runs plugins built on it.
const WIT: &str = include_str!("../../wit/v0.1.0/plugin.wit");

/// The archived 0.2.0 contract.
const WIT_0_2_0: &str = include_str!("../../wit/v0.2.0/plugin.wit");

/// The archived 0.3.0 contract.
const WIT_0_3_0: &str = include_str!("../../wit/v0.3.0/plugin.wit");

/// A 0.1.0 plugin whose plan publishes the custom pods metric `metric` (one letter) and whose
/// `configure` and `process` start with the given instructions; every result is `ok` with empty
/// lists.
fn plugin(metric: char, configure: &str, process: &str) -> Vec<u8> {
    versioned(WIT, "0.1.0", metric, configure, process)
}

/// The same plugin for the contract `wit` of `version` (0.1.0, 0.2.0 or 0.3.0: their plans have
/// the same layout; from 0.2.0 the cycle input is passed by pointer, too big to flatten).
fn versioned(wit: &str, version: &str, metric: char, configure: &str, process: &str) -> Vec<u8> {
    let process_params = if version == "0.1.0" {
        "(param i64 i64 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)"
    } else {
        "(param i32)"
    };
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (block (loop
      (br_if 1 (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br 0)))
    (local.get $p))
  ;; configure's result: ok(plan {{ inputs: [], metrics: [one at 256], derived: [] }})
  (data (i32.const 28) "\00\01\00\00\01\00\00\00")
  (data (i32.const 256) "\00\02\00\00\01\00\00\00\00\00\00\00\08\02\00\00\04\00\00\00\01\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 512) "{metric}")
  (data (i32.const 520) "pods")
  (func (export "metrics-gateway:plugin/guest@{version}#configure") (param i32 i32) (result i32)
    {configure}
    (i32.const 16))
  (func (export "metrics-gateway:plugin/guest@{version}#process")
    {process_params} (result i32)
    {process}
    (i32.const 128))
  ;; snapshot's result: the list (ptr, len) at 2048, empty unless `process` wrote it.
  (func (export "metrics-gateway:plugin/guest@{version}#snapshot") (result i32) (i32.const 2048))
  (func (export "metrics-gateway:plugin/guest@{version}#restore") (param i32 i32) (result i32)
    (i32.const 128))
)"#
    );
    component(wit, "plugin", &wat)
}

const LOOP: &str = "(loop (br 0))";
const GROW: &str =
    "(loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
const TRAP: &str = "unreachable";

struct Rig {
    dir: tempfile::TempDir,
    telemetry: Telemetry,
    runtime: Arc<PluginRuntime>,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Telemetry::new();
        let runtime = PluginRuntime::new(&runtime_config(dir.path()), &telemetry).unwrap();
        Rig {
            dir,
            telemetry,
            runtime,
        }
    }

    /// Writes `wasm` as `name.wasm` and returns its config entry.
    fn entry(&self, name: &str, wasm: &[u8], extra: &str) -> String {
        std::fs::write(self.dir.path().join(format!("{name}.wasm")), wasm).unwrap();
        format!("[[plugins]]\nname = \"{name}\"\nfile = \"{name}.wasm\"\n{extra}\n")
    }

    fn load(&self, entries: &[String]) -> PluginSet {
        let mut config: Config = toml::from_str(&entries.concat()).unwrap();
        config.base_dir = self.dir.path().to_owned();
        PluginSet::load(&self.runtime, &config)
    }

    fn counter(&self, line_start: &str) -> u64 {
        self.telemetry
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn runtime_config(dir: &Path) -> PluginRuntimeConfig {
    PluginRuntimeConfig {
        cache_dir: Some(dir.join("cache")),
    }
}

fn cycle(set: &mut PluginSet) -> PluginMetrics {
    set.run_cycle(
        &CycleSamples::default(),
        &ClusterState::default(),
        1000,
        15_000,
    )
}

fn state(metrics: &PluginMetrics, name: &str) -> MetricState<crate::store::custom::ObjectValue> {
    metrics.custom[&(ObjectResource::pods(), Arc::from(name))]
        .state
        .clone()
}

fn failed(state: &MetricState<crate::store::custom::ObjectValue>) -> &str {
    match state {
        MetricState::Failed(m) => m,
        MetricState::Values(v) => panic!("expected a failure, got {} values", v.len()),
        MetricState::Unavailable(m) => panic!("expected a failure, got unavailable: {m}"),
        MetricState::Unresolved(m) => panic!("expected a failure, got unresolved: {m}"),
    }
}

#[test]
fn faults_discard_only_the_faulty_instance_and_it_comes_back() {
    let rig = Rig::new();
    let entries = [
        rig.entry("good", &plugin('g', "", ""), ""),
        rig.entry("spin", &plugin('s', "", LOOP), "timeout_ms = 30"),
        rig.entry("bomb", &plugin('b', "", GROW), "memory_mib = 2"),
        rig.entry("trap", &plugin('t', "", TRAP), ""),
        rig.entry("badconf", &plugin('c', TRAP, ""), ""),
    ];
    let mut set = rig.load(&entries);
    let errors = set.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "badconf");
    assert!(errors[0].1.contains("configure trapped"), "{}", errors[0].1);
    assert!(errors[0].1.contains("badconf.wasm"), "{}", errors[0].1);

    for round in 1..=2u64 {
        let metrics = cycle(&mut set);
        assert_eq!(state(&metrics, "g"), MetricState::Values(vec![]));
        let spin = failed(&state(&metrics, "s")).to_owned();
        assert!(
            spin.starts_with("plugin spin: process ran past its deadline"),
            "{spin}"
        );
        let bomb = failed(&state(&metrics, "b")).to_owned();
        assert!(bomb.contains("exceeded its memory limit"), "{bomb}");
        let trap = failed(&state(&metrics, "t")).to_owned();
        assert!(trap.contains("process trapped"), "{trap}");
        // Never configured: no plan, so no metrics, and still reported.
        assert_eq!(metrics.custom.len(), 4);
        let errors: Vec<String> = set.errors().into_iter().map(|(p, _)| p).collect();
        assert_eq!(errors, ["spin", "bomb", "trap", "badconf"]);

        for (plugin, outcome) in [("spin", "deadline"), ("bomb", "memory"), ("trap", "trap")] {
            let line = format!(
                "metrics_gateway_plugin_calls_total{{plugin=\"{plugin}\",call=\"process\",outcome=\"{outcome}\"}}"
            );
            assert_eq!(rig.counter(&line), round, "{line}");
            let restarts =
                format!("metrics_gateway_plugin_instance_restarts_total{{plugin=\"{plugin}\"}}");
            assert_eq!(rig.counter(&restarts), round - 1, "{restarts}");
        }
        let ok =
            "metrics_gateway_plugin_calls_total{plugin=\"good\",call=\"process\",outcome=\"ok\"}";
        assert_eq!(rig.counter(ok), round);
        let conf = "metrics_gateway_plugin_calls_total{plugin=\"badconf\",call=\"configure\",outcome=\"trap\"}";
        assert_eq!(rig.counter(conf), round + 1);
    }
}

/// Makes its next snapshot the whole first memory page (64 KiB: a large one).
const LARGE_SNAPSHOT: &str = "(i32.store (i32.const 2052) (i32.const 65536))";

/// As [`LARGE_SNAPSHOT`], counting its `process` calls and trapping on an instance's second.
const LARGE_SNAPSHOT_TRAP_ON_SECOND: &str = "(i32.store (i32.const 2052) (i32.const 65536)) \
     (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1))) \
     (if (i32.eq (i32.load (i32.const 1024)) (i32.const 2)) (then unreachable))";

#[test]
fn large_snapshots_are_taken_once_per_interval_and_by_each_new_instance() {
    const {
        assert!(
            super::set::SMALL_SNAPSHOT_BYTES <= 65536,
            "the large snapshot is small"
        )
    };
    let rig = Rig::new();
    let entries = [
        rig.entry("small", &plugin('m', "", ""), ""),
        rig.entry("steady", &plugin('s', "", LARGE_SNAPSHOT), ""),
        rig.entry("flaky", &plugin('f', "", LARGE_SNAPSHOT_TRAP_ON_SECOND), ""),
    ];
    let mut set = rig.load(&entries);
    let step = super::set::SNAPSHOT_INTERVAL_MS / 4;
    for i in 0..5 {
        set.run_cycle(
            &CycleSamples::default(),
            &ClusterState::default(),
            1000 + i * step,
            15_000,
        );
    }
    let snapshots = |plugin: &str| {
        rig.counter(&format!(
            "metrics_gateway_plugin_calls_total{{plugin=\"{plugin}\",call=\"snapshot\",outcome=\"ok\"}}"
        ))
    };
    // A small state is snapshotted every cycle.
    assert_eq!(snapshots("small"), 5);
    // A large one over five cycles spanning one interval: the first cycle's and the one an
    // interval later.
    assert_eq!(snapshots("steady"), 2);
    // Each of the three instances (first, and after the traps of cycles 2 and 4) takes one
    // after its first successful cycle, so a second fault never restores older state.
    assert_eq!(snapshots("flaky"), 3);
}

#[test]
fn a_metric_published_by_two_plugins_is_refused_for_the_second() {
    let rig = Rig::new();
    let wasm = plugin('x', "", "");
    let mut set = rig.load(&[
        rig.entry("first", &wasm, ""),
        rig.entry("second", &wasm, ""),
    ]);
    let errors = set.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "second");
    assert!(
        errors[0]
            .1
            .contains("custom metric x of pods is already published by plugin first"),
        "{}",
        errors[0].1
    );
    let metrics = cycle(&mut set);
    assert_eq!(metrics.custom.len(), 1);
    assert_eq!(
        &*metrics.custom[&(ObjectResource::pods(), Arc::from("x"))].plugin,
        "first"
    );
}

#[test]
fn plugins_built_on_the_archived_contracts_still_load_and_run() {
    let rig = Rig::new();
    let old = plugin('o', "", "");
    let mid = versioned(WIT_0_2_0, "0.2.0", 'm', "", "");
    let last = versioned(WIT_0_3_0, "0.3.0", 'l', "", "");
    assert_eq!(rig.runtime.load(&old).unwrap().version.as_str(), "0.1.0");
    assert_eq!(rig.runtime.load(&mid).unwrap().version.as_str(), "0.2.0");
    assert_eq!(rig.runtime.load(&last).unwrap().version.as_str(), "0.3.0");
    let mut set = rig.load(&[
        rig.entry("old", &old, ""),
        rig.entry("mid", &mid, ""),
        rig.entry("last", &last, ""),
    ]);
    assert!(set.errors().is_empty(), "{:?}", set.errors());
    for _ in 0..2 {
        let metrics = cycle(&mut set);
        assert_eq!(state(&metrics, "o"), MetricState::Values(vec![]));
        assert_eq!(state(&metrics, "m"), MetricState::Values(vec![]));
        assert_eq!(state(&metrics, "l"), MetricState::Values(vec![]));
    }
    assert!(set.errors().is_empty(), "{:?}", set.errors());
}

#[test]
fn unsupported_contract_versions_are_refused_with_both_versions() {
    let wit = r#"package metrics-gateway:plugin@0.9.0;
interface guest { ping: func(); }
world plugin { export guest; }"#;
    let wasm = component(
        wit,
        "plugin",
        r#"(module (func (export "metrics-gateway:plugin/guest@0.9.0#ping")))"#,
    );
    let rig = Rig::new();
    let set = rig.load(&[rig.entry("future", &wasm, "")]);
    let errors = set.errors();
    assert_eq!(errors.len(), 1);
    let message = &errors[0].1;
    for want in [
        "plugin future",
        "future.wasm",
        "contract 0.9.0",
        "supported: 0.1.0, 0.2.0, 0.3.0, 0.4.0",
    ] {
        assert!(message.contains(want), "{message} should contain {want}");
    }
}

#[test]
fn missing_files_and_digest_mismatches_name_the_plugin_and_file() {
    let rig = Rig::new();
    let wasm = plugin('a', "", "");
    let mut missing = rig.entry("gone", &wasm, "");
    missing = missing.replace("gone.wasm", "nothere.wasm");
    let pinned = rig.entry("pinned", &wasm, "sha256 = \"00ff\"");
    let set = rig.load(&[missing, pinned]);
    let errors = set.errors();
    assert!(
        errors[0].1.starts_with("plugin gone: reading "),
        "{}",
        errors[0].1
    );
    assert!(errors[0].1.contains("nothere.wasm"), "{}", errors[0].1);
    let actual = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    assert!(
        errors[1].1.contains("pinned.wasm has sha256 "),
        "{}",
        errors[1].1
    );
    assert!(errors[1].1.contains(&actual) && errors[1].1.contains("expects 00ff"));
}

#[test]
fn compiled_artifacts_are_cached_and_a_corrupt_one_is_recompiled() {
    let rig = Rig::new();
    let wasm = plugin('a', "", "");
    let entry = rig.entry("a", &wasm, "");
    drop(rig.load(std::slice::from_ref(&entry)));
    let artifacts: Vec<PathBuf> = std::fs::read_dir(rig.dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let digest = artifacts[0].with_extension("cwasm.blake3");
    assert_eq!(std::fs::read(&digest).unwrap().len(), 32);
    let written = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();

    // A second process (runtime) loads the artifact without rewriting it.
    let again = PluginRuntime::new(&runtime_config(rig.dir.path()), &Telemetry::new()).unwrap();
    again.load(&wasm).unwrap();
    assert_eq!(
        std::fs::metadata(&artifacts[0])
            .unwrap()
            .modified()
            .unwrap(),
        written
    );

    // A damaged artifact is detected, recompiled and rewritten.
    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&artifacts[0], &bytes).unwrap();
    let third = PluginRuntime::new(&runtime_config(rig.dir.path()), &Telemetry::new()).unwrap();
    let loaded = third.load(&wasm).unwrap();
    assert_eq!(loaded.version.as_str(), "0.1.0");
    assert_ne!(std::fs::read(&artifacts[0]).unwrap(), bytes);

    // An artifact without its digest is not trusted: recompiled, and the digest written.
    std::fs::remove_file(&digest).unwrap();
    std::fs::write(&artifacts[0], &bytes).unwrap();
    let fourth = PluginRuntime::new(&runtime_config(rig.dir.path()), &Telemetry::new()).unwrap();
    fourth.load(&wasm).unwrap();
    assert!(digest.exists());
    assert_ne!(std::fs::read(&artifacts[0]).unwrap(), bytes);
}
