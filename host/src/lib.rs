//! metrics-gateway: one process that serves `metrics.k8s.io` (and, as plugins arrive, the custom
//! and external metrics APIs) from kubelets and cluster state, behind the Kubernetes aggregation
//! layer. The binary in `main.rs` is a thin CLI over this library, so tests and benchmarks drive
//! the same code.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core_metrics;
pub mod crd;
pub mod demo;
pub mod hpa;
pub mod leader;
pub mod pipeline;
pub mod plugin_dev;
pub mod plugins;
pub mod reload;
pub mod samples;
pub mod sources;
pub mod store;
pub mod telemetry;
