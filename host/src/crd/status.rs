//! The leader's writes: each `MetricsPlugin`'s `status` (conditions `Ready` and `Degraded`,
//! `observedGeneration`, published metrics) through the status subresource (JSON merge patch),
//! and an `events.k8s.io/v1` Event whenever that status changes (applied, or refused and why).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use tokio::sync::watch;

use super::api_resource;
use super::source::Objects;
use super::spec::{Condition, MetricsPluginStatus};
use crate::reload::resources::{ResourceOutcome, ResourceOutcomes};

/// Namespace of the Events about (cluster-scoped) `MetricsPlugin`s, as kubectl looks for them.
pub const EVENT_NAMESPACE: &str = "default";
/// `reportingController` of the Events.
pub const REPORTING_CONTROLLER: &str = "metrics-gateway.io/gateway";
/// Longest Event note the API accepts.
const MAX_NOTE: usize = 1024;

/// The status `outcome` calls for, given the `current` one (transition times are kept for
/// conditions whose status does not change).
pub fn desired_status(
    outcome: &ResourceOutcome,
    current: &MetricsPluginStatus,
    now: jiff::Timestamp,
) -> MetricsPluginStatus {
    let (ready, degraded, reason, message) = match &outcome.refused {
        None => (
            "True",
            "False",
            "Applied".to_string(),
            format!(
                "generation {} is running and publishes {} metric(s)",
                outcome.generation,
                outcome.metrics.len()
            ),
        ),
        Some(refusal) => {
            let running = match outcome.running {
                Some(g) => format!("; generation {g} keeps running"),
                None => "; nothing runs for this resource".into(),
            };
            (
                "False",
                "True",
                refusal.reason.to_string(),
                format!("{}{running}", refusal.message),
            )
        }
    };
    let condition = |type_: &str, status: &str| {
        let since = current
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: type_.into(),
            status: status.into(),
            observed_generation: outcome.generation,
            last_transition_time: since,
            reason: reason.clone(),
            message: message.clone(),
        }
    };
    MetricsPluginStatus {
        observed_generation: Some(outcome.generation),
        conditions: vec![condition("Ready", ready), condition("Degraded", degraded)],
        metrics: outcome.metrics.clone(),
    }
}

fn current_status(object: &DynamicObject) -> MetricsPluginStatus {
    object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

/// Writes status and Events while this replica leads, until aborted.
pub fn spawn(
    client: kube::Client,
    identity: String,
    mut leading: watch::Receiver<bool>,
    mut outcomes: watch::Receiver<Arc<ResourceOutcomes>>,
    mut objects: watch::Receiver<Objects>,
    retry: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let plugins: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource());
        let events: Api<Event> = Api::namespaced(client, EVENT_NAMESPACE);
        // What this replica wrote since it became the leader, by object uid.
        let mut written: HashMap<String, MetricsPluginStatus> = HashMap::new();
        let mut tick = tokio::time::interval(retry);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { break },
                changed = outcomes.changed() => if changed.is_err() { break },
                changed = objects.changed() => if changed.is_err() { break },
                _ = tick.tick() => {}
            }
            if !*leading.borrow_and_update() {
                written.clear();
                continue;
            }
            let outcomes = outcomes.borrow_and_update().clone();
            let objects = objects.borrow_and_update().clone();
            for (name, outcome) in outcomes.iter() {
                let Some(object) = objects.get(name) else {
                    continue;
                };
                // An outcome for another generation is about to be replaced by a reload.
                if object.metadata.generation.unwrap_or(0) != outcome.generation {
                    continue;
                }
                let uid = object.metadata.uid.clone().unwrap_or_default();
                let current = current_status(object);
                let desired = desired_status(outcome, &current, jiff::Timestamp::now());
                if desired == current || written.get(&uid) == Some(&desired) {
                    continue;
                }
                let patch = serde_json::json!({ "status": desired });
                if let Err(error) = plugins
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(resource = %name, %error, "writing MetricsPlugin status");
                    continue;
                }
                written.insert(uid, desired.clone());
                let event = event(object, outcome, &desired, &identity);
                if let Err(error) = events.create(&PostParams::default(), &event).await {
                    tracing::warn!(resource = %name, %error, "recording a MetricsPlugin Event");
                }
            }
        }
    })
}

/// The Event reporting `status` of `object`.
fn event(
    object: &DynamicObject,
    outcome: &ResourceOutcome,
    status: &MetricsPluginStatus,
    identity: &str,
) -> Event {
    let name = object.metadata.name.clone().unwrap_or_default();
    let ready = &status.conditions[0];
    let mut note = ready.message.clone();
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    let resource = api_resource();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:016x}", rand::random::<u64>())),
            namespace: Some(EVENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        regarding: Some(ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            name: Some(name),
            uid: object.metadata.uid.clone(),
            resource_version: object.metadata.resource_version.clone(),
            ..ObjectReference::default()
        }),
        reason: Some(ready.reason.clone()),
        note: Some(note),
        type_: Some(
            if outcome.refused.is_some() {
                "Warning"
            } else {
                "Normal"
            }
            .into(),
        ),
        action: Some("Reload".into()),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(identity.into()),
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::resources::Refusal;

    fn outcome(refused: Option<Refusal>, running: Option<i64>) -> ResourceOutcome {
        ResourceOutcome {
            generation: 2,
            refused,
            running,
            metrics: vec!["pods/x".into()],
        }
    }

    #[test]
    fn refusal_keeps_ready_false_with_the_reason_and_what_runs() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let refusal = Refusal {
            reason: "Sha256Mismatch",
            message: "plugin x: bad".into(),
        };
        let s = desired_status(&outcome(Some(refusal), Some(1)), &Default::default(), now);
        assert_eq!(s.observed_generation, Some(2));
        let ready = &s.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(ready.reason, "Sha256Mismatch");
        assert_eq!(ready.message, "plugin x: bad; generation 1 keeps running");
        assert_eq!(s.conditions[1].status, "True");
        // Applied later: the transition time moves; applied again: it stays.
        let later: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let ok = desired_status(&outcome(None, Some(2)), &s, later);
        assert_eq!(ok.conditions[0].last_transition_time, later.to_string());
        let again = desired_status(&outcome(None, Some(2)), &ok, now);
        assert_eq!(again, ok);
    }
}
