//! Metadata-only watches of the resources plugins publish custom metrics for beyond those the
//! cluster watches cover (`services`, `ingresses.networking.k8s.io`, custom resources …): a
//! watch starts when a plan names a resource the API discovery lists, and stops, its objects
//! forgotten, when no plan names it any more. They tell which objects exist (a value for an
//! object the cluster does not have is not served) and their labels (`labelSelector`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::task::JoinHandle;

use super::projection::{ObjectInfo, project_object};
use super::{ClusterCache, NamespacedMap, Sink, insert_namespaced, spawn_watch};
use crate::sources::discovery::ResourceInfo;
use crate::store::custom::ObjectResource;
use crate::telemetry::Telemetry;

/// One running watch.
struct Running {
    info: Arc<ResourceInfo>,
    task: JoinHandle<()>,
    /// Cleared (under the cache's write lock) when the watch stops, so a late event of an
    /// aborted task cannot bring its objects back.
    active: Arc<AtomicBool>,
}

/// The on-demand watches. See the [module docs](self).
pub struct ObjectWatches {
    client: Client,
    cache: Arc<ClusterCache>,
    telemetry: Telemetry,
    runtime: tokio::runtime::Handle,
    running: Mutex<HashMap<ObjectResource, Running>>,
}

impl std::fmt::Debug for ObjectWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWatches")
            .field("watching", &self.watching())
            .finish_non_exhaustive()
    }
}

impl ObjectWatches {
    /// Watches started later run on the current tokio runtime and write into `cache`.
    pub fn new(client: Client, cache: Arc<ClusterCache>, telemetry: Telemetry) -> ObjectWatches {
        ObjectWatches {
            client,
            cache,
            telemetry,
            runtime: tokio::runtime::Handle::current(),
            running: Mutex::default(),
        }
    }

    /// Makes the running watches exactly those of `wanted`: starts the new ones, stops (and
    /// forgets the objects of) the others. A resource whose version or scope changed in
    /// discovery is watched afresh.
    pub fn set(&self, wanted: impl IntoIterator<Item = Arc<ResourceInfo>>) {
        let wanted: HashMap<ObjectResource, Arc<ResourceInfo>> = wanted
            .into_iter()
            .filter(|info| info.resource.watched().is_none())
            .map(|info| (info.resource.clone(), info))
            .collect();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<ObjectResource> = running
            .iter()
            .filter(|(r, w)| wanted.get(*r).is_none_or(|info| *info != w.info))
            .map(|(r, _)| r.clone())
            .collect();
        for resource in stale {
            if let Some(watch) = running.remove(&resource) {
                watch.task.abort();
                let mut state = self.cache.write();
                watch.active.store(false, Ordering::Release);
                state.objects.remove(&resource);
                drop(state);
                self.cache.interners.sweep_all();
                tracing::info!(resource = %resource, "stopped watching objects: no plugin metric describes them now");
            }
        }
        for (resource, info) in wanted {
            if running.contains_key(&resource) {
                continue;
            }
            let active = Arc::new(AtomicBool::new(true));
            let task = self.start(&info, active.clone());
            tracing::info!(resource = %resource, version = %info.version, "watching object metadata for plugin metrics");
            running.insert(resource, Running { info, task, active });
        }
    }

    fn start(&self, info: &ResourceInfo, active: Arc<AtomicBool>) -> JoinHandle<()> {
        let group = info.resource.group();
        let api_resource = ApiResource {
            group: group.to_owned(),
            version: info.version.to_string(),
            api_version: if group.is_empty() {
                info.version.to_string()
            } else {
                format!("{group}/{}", info.version)
            },
            kind: info.kind.to_string(),
            plural: info.resource.plural().to_owned(),
        };
        let api =
            Api::<PartialObjectMeta<DynamicObject>>::all_with(self.client.clone(), &api_resource);
        let stream = watcher::watcher(api, watcher::Config::default().page_size(500));
        let _entered = self.runtime.enter();
        spawn_watch(
            stream,
            (self.cache.clone(), self.telemetry.clone()),
            "object",
            ObjectSink {
                resource: info.resource.clone(),
                active,
            },
        )
    }

    /// The resources watched now, sorted.
    pub fn watching(&self) -> Vec<ObjectResource> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<ObjectResource> = running.keys().cloned().collect();
        list.sort();
        list
    }

    /// Stops every watch.
    pub fn abort(&self) {
        self.set([]);
    }
}

/// Writes one resource's objects into [`ClusterState::objects`](super::ClusterState::objects).
struct ObjectSink {
    resource: ObjectResource,
    active: Arc<AtomicBool>,
}

type Meta = PartialObjectMeta<DynamicObject>;

impl Sink<Meta> for ObjectSink {
    type Buffer = NamespacedMap<ObjectInfo>;
    fn buffer(&self, cache: &ClusterCache, buf: &mut Self::Buffer, obj: &Meta) {
        if let Some(info) = project_object(&obj.metadata, &cache.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(buf, ns, name, info);
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        let mut state = cache.write();
        if self.active.load(Ordering::Acquire) {
            state.objects.insert(self.resource.clone(), buf);
        }
        drop(state);
        cache.interners.sweep_all();
    }
    fn apply(&self, cache: &ClusterCache, obj: &Meta) {
        let Some(info) = project_object(&obj.metadata, &cache.interners) else {
            return;
        };
        let mut state = cache.write();
        // Objects arriving before the first list completed are in that list.
        if self.active.load(Ordering::Acquire)
            && let Some(objects) = state.objects.get_mut(&self.resource)
        {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(objects, ns, name, info);
        }
    }
    fn delete(&self, cache: &ClusterCache, obj: &Meta) {
        let (Some(name), ns) = (
            obj.metadata.name.as_deref(),
            obj.metadata.namespace.as_deref().unwrap_or_default(),
        ) else {
            return;
        };
        let mut state = cache.write();
        if let Some(objects) = state.objects.get_mut(&self.resource)
            && let Some(in_ns) = objects.get_mut(ns)
        {
            in_ns.remove(name);
            if in_ns.is_empty() {
                objects.remove(ns);
            }
        }
    }
}
