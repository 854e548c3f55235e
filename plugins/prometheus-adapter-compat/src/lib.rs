//! `prometheus-adapter-compat`: serves a prometheus-adapter config file (rules, externalRules,
//! resourceRules) from metrics-gateway, computing each metric for every object with one query
//! per cycle. See README.md and docs/MIGRATING.md.
//!
//! The modules are plain Rust over the plugin's own types, tested natively; [`plugin`] is the
//! thin glue to the SDK's `Plugin` trait.

pub mod config;
pub mod engine;
pub mod goregex;
pub mod naming;
pub mod plugin;
pub mod promql;
pub mod resource_rules;
pub mod resources;
pub mod rules;
pub mod template;

metrics_gateway_sdk::export_plugin!(plugin::Compat);
