//! The `metrics-gateway` binary's config handling: bad configs exit 2 with file:line:column.

use std::path::Path;
use std::process::{Command, Output};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metrics-gateway"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn valid_example_config_passes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
    let out = gateway(&["check-config", example.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("gateway.toml: OK\n"));
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[server]\nself_signed = true\n[kubelet]\nscrape_everything = true\n",
    );
    for cmd in ["check-config", "serve"] {
        let args: Vec<&str> = if cmd == "serve" {
            vec!["serve", "--config", &path]
        } else {
            vec![cmd, &path]
        };
        let out = gateway(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}:4:1: unknown field `scrape_everything`")),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn wrong_type_exits_2_naming_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[server]\nself_signed = true\n\n[kubelet]\ninterval_secs = \"15s\"\n",
    );
    let out = gateway(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{path}:5:17: invalid type: string \"15s\", expected i64"
        )),
        "{err}"
    );
}

#[test]
fn missing_file_exits_2_naming_it() {
    let out = gateway(&["check-config", "/nonexistent/gateway.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/gateway.toml: cannot read config file"),
        "{}",
        stderr(&out)
    );
    let out = gateway(&["serve", "--config", "/nonexistent/gateway.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plugin_errors_exit_2_at_their_entry_as_a_reload_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.wasm"), b"plugin").unwrap();
    let path = write(
        dir.path(),
        &format!(
            "[server]\nself_signed = true\n\n[[plugins]]\nname = \"p\"\nfile = \"p.wasm\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    );
    let out = gateway(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{path}:7:10: plugin p: ")) && err.contains("has sha256"),
        "{err}"
    );
}
