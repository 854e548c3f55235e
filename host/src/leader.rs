//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leader election does it:
//! a replica takes the Lease when it is free or when its record (holder, renew time, resource
//! version) has not changed for the lease duration as measured on the replica's own monotonic
//! clock (no clock skew between replicas matters); the holder renews every retry period and
//! steps down when it could not renew for the renew deadline. Writes go through the Lease's
//! `resourceVersion`, so of two replicas racing for a free Lease exactly one wins (the other
//! gets 409 Conflict). Every replica applies config whether it leads or not; only the leader
//! writes `MetricsPlugin` status and Events.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::CustomResourcesConfig;

/// Where and how to elect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (`holderIdentity`).
    pub identity: String,
    /// How long an unrenewed Lease stays held.
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// The `[custom_resources]` settings; the identity defaults to `$POD_NAME`, else the host
    /// name.
    pub fn from_config(c: &CustomResourcesConfig) -> LeaderConfig {
        let identity = c.identity.clone().unwrap_or_else(default_identity);
        let ms = |n: u32| Duration::from_millis(u64::from(n));
        LeaderConfig {
            namespace: c.lease_namespace.clone(),
            name: c.lease_name.clone(),
            identity,
            lease_duration: ms(c.lease_duration_ms.get()),
            renew_deadline: ms(c.renew_deadline_ms.get()),
            retry_period: ms(c.retry_period_ms.get()),
        }
    }
}

fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("metrics-gateway-{}", std::process::id()))
}

/// The Lease record as last observed, and when (on this replica's clock) it last changed.
#[derive(Debug)]
struct Observed {
    record: (Option<String>, Option<String>, Option<String>),
    since: Instant,
}

/// Runs the election until the task is aborted; the receiver says whether this replica leads.
pub fn spawn(
    client: kube::Client,
    config: LeaderConfig,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (leading, receiver) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut observed: Option<Observed> = None;
        let mut renewed: Option<Instant> = None;
        loop {
            match try_acquire_or_renew(&api, &config, &mut observed).await {
                Ok(true) => renewed = Some(Instant::now()),
                Ok(false) => renewed = None,
                Err(error) => {
                    tracing::warn!(lease = %config.name, %error, "leader election: Lease request failed");
                    if renewed.is_some_and(|r| r.elapsed() > config.renew_deadline) {
                        renewed = None;
                    }
                }
            }
            let now_leading = renewed.is_some();
            leading.send_if_modified(|was| {
                if *was == now_leading {
                    return false;
                }
                tracing::info!(
                    identity = %config.identity,
                    lease = %format!("{}/{}", config.namespace, config.name),
                    "{}",
                    if now_leading { "became the leader" } else { "stopped leading" }
                );
                *was = now_leading;
                true
            });
            // The retry period paces the election, as in client-go.
            tokio::time::sleep(config.retry_period).await;
        }
    });
    (receiver, task)
}

/// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let duration_secs = config.lease_duration.as_secs_f64().ceil().max(1.0) as i32;
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&Default::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = (
        spec.holder_identity.clone(),
        spec.renew_time.as_ref().map(|t| t.0.to_string()),
        lease.metadata.resource_version.clone(),
    );
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed {
            record,
            since: Instant::now(),
        });
    }
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let mine = holder == Some(config.identity.as_str());
    let expired = observed
        .as_ref()
        .is_some_and(|o| o.since.elapsed() >= config.lease_duration);
    if holder.is_some() && !mine && !expired {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration_secs),
        acquire_time: if mine {
            spec.acquire_time.clone()
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
        ..spec
    });
    match api.replace(&config.name, &Default::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
