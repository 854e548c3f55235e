//! `metrics-gateway plugin new`, `plugin build` and `plugin test` as a plugin author runs them:
//! a crate from the template, compiled to a component, run over a recorded cycle.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metrics-gateway"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The workspace's wasm target dir, so the template crate reuses the std already built for the
/// shipped plugins.
fn shared_wasm_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm")
}

#[test]
fn new_build_and_test_a_plugin_from_the_template() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("pod-memory");
    let out = gateway(&["plugin", "new", "pod-memory", "--dir", path(&dir)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("next: metrics-gateway plugin build"));

    let wasm = tmp.path().join("pod-memory.wasm");
    let target = shared_wasm_target();
    let out = gateway(&[
        "plugin",
        "build",
        path(&dir),
        "--out",
        path(&wasm),
        "--target-dir",
        path(&target),
    ]);
    assert!(out.status.success(), "plugin build failed: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sha256 = \""), "{stdout}");
    let bytes = std::fs::read(&wasm).expect("the component is written");
    assert_eq!(&bytes[..4], b"\0asm");

    // Two containers of one pod: the template publishes their sum on the pod.
    let fixture = tmp.path().join("cycle.prom");
    std::fs::write(
        &fixture,
        "# timestamp_ms: 1700000000000\n# source: kubelet-resource\n\
         container_memory_working_set_bytes{namespace=\"web\",pod=\"a\",container=\"app\"} 1000\n\
         container_memory_working_set_bytes{namespace=\"web\",pod=\"a\",container=\"sidecar\"} 24\n",
    )
    .expect("fixture written");
    let out = gateway(&["plugin", "test", path(&wasm), "--input", path(&fixture)]);
    assert!(out.status.success(), "plugin test failed: {}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("custom pods/pod_memory"), "{printed}");
    assert!(printed.contains("web/a = 1024"), "{printed}");
}

#[test]
fn build_names_what_is_wrong_with_the_crate() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        tmp.path().join("Cargo.toml"),
        "[package]\nname = \"not-a-plugin\"\nversion = \"0.1.0\"\n",
    )
    .expect("manifest written");
    let out = gateway(&["plugin", "build", path(tmp.path()), "--no-install"]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("Cargo.toml") && err.contains("crate-type") && err.contains("not-a-plugin"),
        "{err}"
    );
    let out = gateway(&[
        "plugin",
        "new",
        "Bad_Name",
        "--dir",
        path(&tmp.path().join("x")),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("plugin name \"Bad_Name\""),
        "{}",
        text(&out)
    );
}
