//! Where data comes from: the Kubernetes API (cluster state and API discovery), kubelets and
//! Prometheus-compatible backends.

pub mod cluster;
pub mod discovery;
pub mod kubelet;
pub mod prometheus;
