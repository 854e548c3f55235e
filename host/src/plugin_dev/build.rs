//! `metrics-gateway plugin build DIR`: compiles a plugin crate to a `wasm32-unknown-unknown` core
//! module, then wraps it into a component with `wit-component`.
//!
//! The toolchain is chosen automatically: rustup's `wasm32-unknown-unknown` target when it is
//! installed, else Debian's `rustc-web` + `rust-web-src` building std from source (installed on
//! demand when running as root), else an error naming the command that fixes it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The target every plugin compiles to.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Debian's packages that provide a wasm-capable toolchain with std sources.
pub const DEBIAN_PACKAGES: [&str; 5] = [
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "lld-22",
];

/// A failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `DIR/Cargo.toml` is missing or not a plugin crate.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No toolchain can build for wasm32-unknown-unknown.
    #[error("no Rust toolchain here can build for {TARGET}: {reason}\n  fix: {fix}")]
    Toolchain {
        /// What was looked for.
        reason: String,
        /// The command that fixes it.
        fix: String,
    },
    /// A command could not run or failed.
    #[error("{command} failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its error or exit status.
        reason: String,
    },
    /// The core module could not be made into a component.
    #[error("{module}: making the component: {reason:#}")]
    Component {
        /// The core module.
        module: PathBuf,
        /// wit-component's error.
        reason: anyhow::Error,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// How to compile for wasm here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's toolchain with the target installed.
    Rustup {
        /// The cargo to run.
        cargo: PathBuf,
    },
    /// A distribution rustc with std sources: std is built from source (`-Zbuild-std`).
    BuildStd {
        /// The cargo to run.
        cargo: PathBuf,
        /// The rustc to run.
        rustc: PathBuf,
    },
}

impl Toolchain {
    /// The toolchain to use: rustup's target if installed, else Debian's (installed on demand
    /// when `install` and running as root).
    pub fn detect(install: bool) -> Result<Toolchain, BuildError> {
        if rustup_has_target() {
            return Ok(Toolchain::Rustup {
                cargo: PathBuf::from("cargo"),
            });
        }
        let debian = Toolchain::BuildStd {
            cargo: PathBuf::from("/usr/bin/cargo"),
            rustc: PathBuf::from("/usr/bin/rustc"),
        };
        let missing = debian.missing();
        if missing.is_empty() {
            return Ok(debian);
        }
        let fix = format!("apt-get install -y {}", DEBIAN_PACKAGES.join(" "));
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if install && root && Path::new("/usr/bin/apt-get").exists() {
            tracing::info!(packages = %DEBIAN_PACKAGES.join(" "), "installing a wasm toolchain from Debian's packages");
            let mut install = Command::new("apt-get");
            install
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(DEBIAN_PACKAGES)
                .env("DEBIAN_FRONTEND", "noninteractive");
            if run(&mut install).is_err() {
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                run(&mut install)?;
            }
            let missing = debian.missing();
            if missing.is_empty() {
                return Ok(debian);
            }
            return Err(BuildError::Toolchain {
                reason: format!("still missing after installing: {}", missing.join(", ")),
                fix,
            });
        }
        Err(BuildError::Toolchain {
            reason: format!(
                "rustup has no {TARGET} target, and {} is missing",
                missing.join(", ")
            ),
            fix: format!("rustup target add {TARGET}   (or, on Debian: {fix})"),
        })
    }

    /// What this toolchain lacks here (empty when usable).
    fn missing(&self) -> Vec<String> {
        let Toolchain::BuildStd { cargo, rustc } = self else {
            return Vec::new();
        };
        let mut missing = Vec::new();
        for tool in [cargo, rustc] {
            if !tool.exists() {
                missing.push(tool.display().to_string());
            }
        }
        if missing.is_empty() {
            let sysroot = Command::new(rustc)
                .args(["--print", "sysroot"])
                .output()
                .ok()
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
            let library = sysroot.map(|s| s.join("lib/rustlib/src/rust/library"));
            if !library.as_ref().is_some_and(|l| l.exists()) {
                missing.push("the std sources (rust-web-src)".to_owned());
            }
            if !Path::new("/usr/bin/rust-lld").exists() {
                missing.push("/usr/bin/rust-lld (rust-web-llvm, lld-22)".to_owned());
            }
        }
        missing
    }

    /// The cargo command that builds package `package` of `manifest` in release mode for wasm.
    fn cargo_build(&self, manifest: &Path, package: &str, target_dir: &Path) -> Command {
        let cargo = match self {
            Toolchain::Rustup { cargo } | Toolchain::BuildStd { cargo, .. } => cargo,
        };
        let mut cmd = Command::new(cargo);
        // Cargo and rustup variables of an enclosing build (e.g. `cargo test` running this
        // command) must not leak into the guest build.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME")
                || matches!(
                    &*key,
                    "RUSTC" | "RUSTC_WRAPPER" | "RUSTFLAGS" | "RUSTDOC" | "RUSTC_WORKSPACE_WRAPPER"
                )
            {
                cmd.env_remove(&*key);
            }
        }
        cmd.arg("build")
            .arg("--release")
            .arg("--target")
            .arg(TARGET)
            .arg("--manifest-path")
            .arg(manifest)
            .arg("-p")
            .arg(package)
            .env("CARGO_TARGET_DIR", target_dir)
            .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "true");
        if let Toolchain::BuildStd { rustc, .. } = self {
            cmd.arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env_remove("RUSTUP_TOOLCHAIN");
        }
        cmd
    }
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == TARGET)
        })
}

fn command_line(cmd: &Command) -> String {
    let mut line: Vec<OsString> = vec![cmd.get_program().to_owned()];
    line.extend(cmd.get_args().map(ToOwned::to_owned));
    line.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(cmd: &mut Command) -> Result<(), BuildError> {
    let status = cmd.status().map_err(|e| BuildError::Command {
        command: command_line(cmd),
        reason: e.to_string(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Command {
            command: command_line(cmd),
            reason: status.to_string(),
        })
    }
}

/// A built plugin.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component written.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size: usize,
    /// Its sha256, hex (the value for `sha256` in gateway.toml).
    pub sha256: String,
}

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The plugin crate's directory.
    pub dir: PathBuf,
    /// Where to write the component (default: `DIR/target/NAME.wasm`... see [`build`]).
    pub out: Option<PathBuf>,
    /// Cargo's target dir for wasm builds (default: `target/wasm` of the crate's workspace, so
    /// plugins of one workspace share std).
    pub target_dir: Option<PathBuf>,
    /// Install Debian's toolchain when nothing can build (only as root).
    pub install: bool,
}

/// Builds the plugin crate in `options.dir` into a component.
pub fn build(options: &BuildOptions) -> Result<Built, BuildError> {
    let manifest = options.dir.join("Cargo.toml");
    let package = package_name(&manifest)?;
    let toolchain = Toolchain::detect(options.install)?;
    let workspace_root = workspace_root(&toolchain, &manifest)?;
    let target_dir = options
        .target_dir
        .clone()
        .unwrap_or_else(|| workspace_root.join("target/wasm"));
    let mut cargo = toolchain.cargo_build(&manifest, &package, &target_dir);
    tracing::debug!(command = %command_line(&cargo), "building the core module");
    run(&mut cargo)?;
    let module = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let bytes = std::fs::read(&module).map_err(|source| BuildError::Io {
        path: module.clone(),
        source,
    })?;
    let component = componentize(&bytes).map_err(|reason| BuildError::Component {
        module: module.clone(),
        reason,
    })?;
    let out = options.out.clone().unwrap_or_else(|| {
        workspace_root
            .join("target/plugins")
            .join(format!("{package}.wasm"))
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(&out, &component).map_err(|source| BuildError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(Built {
        path: out,
        size: component.len(),
        sha256: hex::encode(Sha256::digest(&component)),
    })
}

/// Wraps a core module carrying wit-bindgen's component-type section into a component.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}

/// The package name of a plugin crate, which must build a `cdylib`.
fn package_name(manifest: &Path) -> Result<String, BuildError> {
    let err = |reason: String| BuildError::Manifest {
        path: manifest.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(manifest).map_err(|e| err(e.to_string()))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let name = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| err("no [package] name: not a plugin crate".to_owned()))?;
    let cdylib = doc
        .get("lib")
        .and_then(|l| l.get("crate-type"))
        .and_then(|t| t.as_array())
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    if !cdylib {
        return Err(err(format!(
            "package {name:?} must set [lib] crate-type = [\"cdylib\", \"rlib\"] to build a plugin"
        )));
    }
    Ok(name.to_owned())
}

/// The root of the cargo workspace `manifest` belongs to.
fn workspace_root(toolchain: &Toolchain, manifest: &Path) -> Result<PathBuf, BuildError> {
    let cargo = match toolchain {
        Toolchain::Rustup { cargo } | Toolchain::BuildStd { cargo, .. } => cargo,
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["locate-project", "--workspace", "--message-format", "plain"])
        .arg("--manifest-path")
        .arg(manifest);
    let output = cmd.output().map_err(|e| BuildError::Command {
        command: command_line(&cmd),
        reason: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(BuildError::Command {
            command: command_line(&cmd),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let located = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(located
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("Cargo.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_plugin_crate_must_be_a_cdylib() {
        let dir = tempfile::tempdir().unwrap();
        let ok = manifest(
            &dir,
            "[package]\nname = \"my-plugin\"\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n",
        );
        assert_eq!(package_name(&ok).unwrap(), "my-plugin");
        let not = manifest(&dir, "[package]\nname = \"lib-only\"\n");
        let e = package_name(&not).unwrap_err().to_string();
        assert!(e.contains("crate-type") && e.contains("lib-only"), "{e}");
        let none = manifest(&dir, "[workspace]\n");
        assert!(
            package_name(&none)
                .unwrap_err()
                .to_string()
                .contains("[package]")
        );
    }

    #[test]
    fn a_module_without_contract_types_is_refused() {
        let module = wat::parse_str("(module (func (export \"f\")))").unwrap();
        // A bare module makes a component with no exports: wit-component accepts it, but it
        // carries no `guest` export, which the runtime refuses. Here: bytes are a component.
        let component = componentize(&module).unwrap();
        assert!(wasmparser_is_component(&component));
        assert!(componentize(b"not wasm").is_err());
    }

    fn wasmparser_is_component(bytes: &[u8]) -> bool {
        bytes.len() > 8 && bytes[..4] == *b"\0asm" && bytes[4..8] != [1, 0, 0, 0]
    }
}
