//! The HPA controller's replica calculation as a pure library (no I/O), following
//! kube-controller-manager's `pkg/controller/podautoscaler`: [`spec`] reads an
//! `autoscaling/v2` HPA, [`pods`] sorts the target's pods, [`replicas`] computes each metric's
//! proposal, [`decision`] combines them, and [`behavior`] applies stabilization and rate
//! limits. [`explain`] is the `hpa explain` command built on it.

pub mod behavior;
pub mod decision;
pub mod explain;
pub mod pods;
pub mod replicas;
pub mod spec;

#[cfg(test)]
mod behavior_tests;
#[cfg(test)]
mod tests;
