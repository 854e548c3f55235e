//! Test doubles for metrics-gateway, shared by integration tests, benchmarks and the `demo`
//! command: a simulated cluster model, simulated kubelets and a fake kube-apiserver that also
//! plays kube-aggregator.

pub mod apiserver;
pub mod cluster;
pub mod deploy;
pub mod hpa_client;
pub mod kubelet_sim;
pub mod loadgen;
pub mod metrics_types;
pub mod pki;
pub mod procs;
pub mod prometheus;
