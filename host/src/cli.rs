//! The `metrics-gateway` command line (clap), in the library so tests parse exactly what the
//! binary parses (e.g. the container arguments of the deploy manifests).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The command line: a global log format and one command.
#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes metrics gateway: metrics.k8s.io from kubelets and cluster state",
    long_about = None
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the metrics APIs as configured.
    Serve {
        /// The gateway.toml to use.
        #[arg(long, short, default_value = "/etc/metrics-gateway/gateway.toml")]
        config: PathBuf,
    },
    /// Validate a gateway.toml offline as a reload would (config, modules, sha256, compile,
    /// configure); exit code 2 and file:line:column when it is invalid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// `MetricsPlugin` YAML files (one or many documents each) to check with it.
        #[arg(long = "resource")]
        resources: Vec<PathBuf>,
        /// A local component for a resource's module, as NAME=PATH (the resource's name): its
        /// sha256, compilation and configure are checked too.
        #[arg(long = "module", value_parser = crate::crd::check::parse_module_arg)]
        modules: Vec<(String, PathBuf)>,
    },
    /// Run a simulated cluster (kubelets + API server + aggregator) with the gateway behind it.
    Demo(crate::demo::DemoArgs),
    /// Build, test and create WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Inspect HorizontalPodAutoscalers against the metrics APIs.
    #[command(subcommand)]
    Hpa(HpaCommand),
}

/// `hpa` subcommands.
#[derive(Subcommand)]
pub enum HpaCommand {
    /// Show what the HPA controller will fetch, compute and decide for one HPA, and why a metric
    /// cannot be fetched.
    Explain(crate::hpa::explain::ExplainArgs),
}

/// `plugin` subcommands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Compile a plugin crate to a component (`wasm32-unknown-unknown` + wit-component).
    Build {
        /// The plugin crate's directory.
        dir: PathBuf,
        /// Where to write the component (default: `target/plugins/NAME.wasm` of its workspace).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Cargo's target dir for wasm builds (default: `target/wasm` of its workspace).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Never install Debian's toolchain packages, even as root.
        #[arg(long)]
        no_install: bool,
    },
    /// Run a plugin over recorded cycles and print its plan and outputs.
    Test {
        /// The component (`.wasm`).
        plugin: PathBuf,
        /// The plugin's own config: a TOML or JSON file of its `config` table.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Fixtures, one cycle each, in order: JSON or Prometheus text (see docs/PLUGINS.md).
        #[arg(long = "input", short, required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Create a ready-to-build plugin crate from the template.
    New {
        /// Plugin name (a-z, 0-9, '-').
        name: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The metrics-gateway-sdk crate to depend on (default: the one beside these sources).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}
