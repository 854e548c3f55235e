//! Where data comes from: the Kubernetes API (cluster state) and kubelets.

pub mod cluster;
pub mod kubelet;
