//! The cluster's API discovery, read at start and every `kubernetes.discovery_refresh_secs`:
//! core `/api/v1` and the preferred version of every group under `/apis`, except the metrics
//! groups the gateway serves itself. The resulting [`ApiTable`] tells plugins which resources
//! exist (plural, singular, kind, scope) and the API how to describe objects.
//!
//! A group whose resource list fails (an aggregated API that is down, a timeout) is logged with
//! its name and keeps its resources from the previous table; the other groups are read as usual.
//! When the group list itself fails the previous table stays. Until discovery first succeeds
//! (and without a cluster) the [built-in table](ApiTable::builtin) is used.

pub mod table;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;

pub use table::{ApiTable, ResourceInfo, TableSource};

/// The groups the gateway serves through the aggregator: never read (they would ask the gateway
/// about itself, and list metrics, not objects).
pub const OWN_GROUPS: [&str; 3] = [
    "metrics.k8s.io",
    "custom.metrics.k8s.io",
    "external.metrics.k8s.io",
];

/// Reading discovery failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `GET /apis` failed.
    #[error("listing API groups (GET /apis): {0}")]
    Groups(#[source] kube::Error),
}

/// One discovery read: the table, and the groups that failed (name, error).
#[derive(Debug)]
pub struct DiscoveryRead {
    /// The new table (failed groups carry their previous resources).
    pub table: ApiTable,
    /// Groups whose resources could not be read this time (`""` is the core group).
    pub failed: Vec<(String, String)>,
}

/// Reads the cluster's discovery; a failing group keeps `previous`'s resources of that group.
pub async fn read(client: &Client, previous: &ApiTable) -> Result<DiscoveryRead, DiscoveryError> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(DiscoveryError::Groups)?;
    // (group, group version) in discovery order, core first.
    let mut wanted: Vec<(String, String)> = vec![(String::new(), "v1".to_owned())];
    for group in groups.groups {
        if OWN_GROUPS.contains(&group.name.as_str()) {
            continue;
        }
        let version = group
            .preferred_version
            .map(|v| v.version)
            .or_else(|| group.versions.first().map(|v| v.version.clone()));
        if let Some(version) = version {
            wanted.push((group.name, version));
        }
    }
    let lists = futures::future::join_all(wanted.iter().map(|(group, version)| async move {
        if group.is_empty() {
            client.list_core_api_resources(version).await
        } else {
            client
                .list_api_group_resources(&format!("{group}/{version}"))
                .await
        }
    }))
    .await;
    let mut entries = Vec::new();
    let mut failed = Vec::new();
    for ((group, version), list) in wanted.iter().zip(lists) {
        match list {
            Ok(list) => entries.extend(resources_of(group, version, &list)),
            Err(error) => {
                failed.push((group.clone(), error.to_string()));
                entries.extend(previous.group(group).map(|r| (**r).clone()));
            }
        }
    }
    Ok(DiscoveryRead {
        table: ApiTable::new(entries, TableSource::Discovered),
        failed,
    })
}

/// The resources of one group version's list, subresources left out.
fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
    list: &'a APIResourceList,
) -> impl Iterator<Item = ResourceInfo> + 'a {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(move |r| {
            ResourceInfo::new(
                group,
                version,
                &r.name,
                &r.singular_name,
                &r.kind,
                r.namespaced,
            )
        })
}

/// The current table, shared: the refresher replaces it, the collector and the API read it.
#[derive(Debug)]
pub struct Discovery {
    table: ArcSwap<ApiTable>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            table: ArcSwap::from_pointee(ApiTable::builtin()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Discovery {
    /// The table now.
    pub fn table(&self) -> Arc<ApiTable> {
        self.table.load_full()
    }

    /// Installs `table` if it differs from the current one; true when it did.
    pub fn replace(&self, table: ApiTable) -> bool {
        if *self.table.load_full() == table {
            return false;
        }
        self.table.store(Arc::new(table));
        self.changes.send_modify(|v| *v += 1);
        true
    }

    /// Waits until `condition` holds for the table (checked after every change).
    pub async fn wait_for(&self, condition: impl Fn(&ApiTable) -> bool) {
        let mut rx = self.changes.subscribe();
        loop {
            if condition(&self.table()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Reads discovery now and then every `every`, replacing the table when it changed.
    pub fn spawn(self: Arc<Self>, client: Client, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.refresh(&client).await;
            }
        })
    }

    /// One refresh: read, log failures, replace the table when it changed.
    pub async fn refresh(&self, client: &Client) {
        let previous = self.table();
        match read(client, &previous).await {
            Ok(read) => {
                for (group, error) in &read.failed {
                    let group = if group.is_empty() { "core" } else { group };
                    tracing::warn!(
                        group,
                        %error,
                        "API discovery failed for a group; keeping its last known resources"
                    );
                }
                let resources = read.table.len();
                if self.replace(read.table) {
                    tracing::info!(
                        resources,
                        failed_groups = read.failed.len(),
                        "API resource table updated from discovery"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "API discovery failed; keeping the last resource table");
            }
        }
    }
}
