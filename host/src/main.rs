//! The `metrics-gateway` command line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use metrics_gateway::app::{Gateway, StartOptions};
use metrics_gateway::cli::{Cli, Command, HpaCommand, PluginCommand};
use metrics_gateway::config;
use metrics_gateway::plugins::PluginRuntime;
use metrics_gateway::reload;

/// mimalloc: at 5,000 nodes glibc's arenas kept ~40 % of the resident set as fragmentation.
/// Its own settings stay at their defaults; `MIMALLOC_PURGE_DELAY=0` in the environment trades
/// collection CPU for a lower peak (docs/PERFORMANCE.md, "Where the memory goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::CheckConfig {
            file,
            resources,
            modules,
        } => check_config(&file, &resources, modules.into_iter().collect()),
        Command::Serve { config: path } => {
            let config = match config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            run(async move {
                let options = StartOptions {
                    config_path: Some(path),
                    ..StartOptions::default()
                };
                let gateway = Gateway::start(config, options).await?;
                #[cfg(unix)]
                let sighup = gateway.reload.clone().map(reload_on_sighup).transpose()?;
                shutdown_signal().await;
                #[cfg(unix)]
                if let Some(task) = sighup {
                    task.abort();
                }
                tracing::info!("shutting down");
                gateway.shutdown().await;
                Ok(())
            })
        }
        Command::Demo(args) => run(metrics_gateway::demo::run(args, shutdown_signal())),
        Command::Plugin(command) => plugin(command),
        Command::Hpa(HpaCommand::Explain(args)) => run(async move {
            let out = metrics_gateway::hpa::explain::run(&args).await?;
            print!("{out}");
            Ok(())
        }),
    }
}

/// Validates a config, and loads and configures every plugin it names, through the same path
/// as a reload; exit code 2 and the error's location when it is invalid.
fn check_config(
    file: &std::path::Path,
    resources: &[std::path::PathBuf],
    modules: std::collections::BTreeMap<String, std::path::PathBuf>,
) -> ExitCode {
    let telemetry = metrics_gateway::telemetry::Telemetry::new();
    let runtime =
        |c: &metrics_gateway::config::Config| PluginRuntime::new(&c.plugin_runtime, &telemetry);
    let candidate = match reload::prepare(file, runtime, &HashMap::new(), None, &telemetry) {
        Ok(candidate) => {
            println!("{}: OK", file.display());
            candidate
        }
        Err(e @ reload::ReloadError::Runtime(_)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if resources.is_empty() {
        return ExitCode::SUCCESS;
    }
    let config = candidate.config;
    let file_plugins: Vec<String> = config
        .plugins
        .iter()
        .map(|p| p.name.get_ref().clone())
        .collect();
    let mut runtime = || PluginRuntime::new(&config.plugin_runtime, &telemetry);
    let checks = match metrics_gateway::crd::check::check_files(
        resources,
        &file_plugins,
        &modules,
        &mut runtime,
        &metrics_gateway::plugins::plan::PlanRules::of(&config),
    ) {
        Ok(checks) => checks,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut refused = false;
    for check in checks {
        match check.result {
            Ok(note) => println!("{}: OK: {note}", check.location),
            Err(refusal) => {
                refused = true;
                eprintln!(
                    "error: {}: {}: {}",
                    check.location, refusal.reason, refusal.message
                );
            }
        }
    }
    if refused {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Requests a reload on every SIGHUP (the reload logs its outcome).
#[cfg(unix)]
fn reload_on_sighup(
    handle: metrics_gateway::reload::trigger::ReloadHandle,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing a SIGHUP handler")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            handle.request(metrics_gateway::reload::Trigger::Sighup);
        }
    }))
}

fn plugin(command: PluginCommand) -> ExitCode {
    use metrics_gateway::plugin_dev::{build, new};
    use metrics_gateway::plugins::fixture;
    match command {
        PluginCommand::Build {
            dir,
            out,
            target_dir,
            no_install,
        } => {
            let options = build::BuildOptions {
                dir,
                out,
                target_dir,
                install: !no_install,
            };
            match build::build(&options) {
                Ok(built) => {
                    println!(
                        "{} ({} bytes)\nsha256 = \"{}\"",
                        built.path.display(),
                        built.size,
                        built.sha256
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        PluginCommand::Test {
            plugin,
            config,
            inputs,
        } => {
            let mut out = std::io::stdout().lock();
            match fixture::run(&plugin, config.as_deref(), &inputs, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        PluginCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            match new::create(&name, &dir, sdk.as_deref()) {
                Ok(files) => {
                    for f in files {
                        println!("created {}", f.display());
                    }
                    println!("next: metrics-gateway plugin build {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
