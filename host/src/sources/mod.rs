//! Where data comes from: the Kubernetes API (cluster state), kubelets and Prometheus-compatible
//! backends.

pub mod cluster;
pub mod kubelet;
pub mod prometheus;
