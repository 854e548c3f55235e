//! `MetricsPlugin` custom resources: plugins installed through the Kubernetes API.
//!
//! [`source`] watches the objects, reads each generation's module ([`module`]) and hands them
//! to the [`Reloader`], which applies them with the config file's plugins through the one reload
//! path; every replica does this. The replica holding the Lease ([`crate::leader`]) writes
//! each object's status and Events ([`status`]).

pub mod check;
pub mod module;
pub mod source;
pub mod spec;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::api::ApiResource;
use tokio::sync::watch;

use crate::config::CustomResourcesConfig;
use crate::leader::{self, LeaderConfig};
use crate::reload::Reloader;
use crate::reload::resources::ResourceOutcomes;
use crate::reload::trigger::ReloadHandle;
use module::ModuleFetcher;

/// The `MetricsPlugin` resource for kube's dynamic API.
pub fn api_resource() -> ApiResource {
    ApiResource {
        group: spec::GROUP.into(),
        version: spec::VERSION.into(),
        api_version: format!("{}/{}", spec::GROUP, spec::VERSION),
        kind: spec::KIND.into(),
        plural: spec::PLURAL.into(),
    }
}

/// The running resource machinery.
#[derive(Debug)]
pub struct ResourceWatch {
    /// Whether this replica leads (writes status and Events).
    pub leading: watch::Receiver<bool>,
    /// Every resource's outcome as of the latest reload.
    pub outcomes: watch::Receiver<Arc<ResourceOutcomes>>,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// The source, election and status tasks (abort on shutdown).
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts watching `MetricsPlugin`s into `reloader`, the leader election and the status writer.
pub fn start(
    client: kube::Client,
    config: &CustomResourcesConfig,
    reloader: Arc<Reloader>,
    reload: ReloadHandle,
) -> ResourceWatch {
    let fetcher = ModuleFetcher::new(
        client.clone(),
        config.max_module_bytes.get() as usize,
        Duration::from_millis(u64::from(config.fetch_timeout_ms.get())),
    );
    let outcomes = reloader.outcomes();
    let (objects, source) = source::spawn(client.clone(), fetcher, reloader, reload);
    let election = LeaderConfig::from_config(config);
    let identity = election.identity.clone();
    let retry = election.retry_period;
    let (leading, elector) = leader::spawn(client.clone(), election);
    let status = status::spawn(
        client,
        identity.clone(),
        leading.clone(),
        outcomes.clone(),
        objects,
        retry,
    );
    ResourceWatch {
        leading,
        outcomes,
        identity,
        tasks: vec![source, elector, status],
    }
}
