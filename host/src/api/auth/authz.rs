//! Delegated authorization: a `SubjectAccessReview` (authorization.k8s.io/v1) per distinct
//! (user, request attributes), with allowed and denied answers cached on separate TTLs.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use super::cache::{Key, KeyHasher, TtlCache};
use super::request_info::RequestInfo;
use super::{ReviewError, UserInfo};
use crate::clock::Clock;
use crate::config::AuthorizationConfig;
use crate::telemetry::{AuthCacheLabels, Telemetry};

/// How long one review may take before the request fails closed.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// An `always_allow_paths` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathRule {
    Exact(String),
    Prefix(String),
}

/// The authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The reviewer's reason, if it gave one.
    pub reason: String,
}

/// Asks the API server whether users may do what they request.
pub struct Authorizer {
    client: Client,
    always_allow: Vec<PathRule>,
    cache: TtlCache<Decision>,
    allowed_ttl_ms: i64,
    denied_ttl_ms: i64,
    clock: Clock,
    telemetry: Telemetry,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// An authorizer for `[authorization]`.
    pub fn new(
        client: Client,
        cfg: &AuthorizationConfig,
        clock: Clock,
        telemetry: Telemetry,
    ) -> Authorizer {
        let always_allow = cfg
            .always_allow_paths
            .iter()
            .map(|p| match p.get_ref().strip_suffix('*') {
                Some(prefix) => PathRule::Prefix(prefix.to_string()),
                None => PathRule::Exact(p.get_ref().clone()),
            })
            .collect();
        Authorizer {
            client,
            always_allow,
            cache: TtlCache::new(cfg.cache_size.get() as usize),
            allowed_ttl_ms: i64::from(cfg.allowed_ttl_secs) * 1000,
            denied_ttl_ms: i64::from(cfg.denied_ttl_secs) * 1000,
            clock,
            telemetry,
        }
    }

    /// Whether `path` is served without authentication or authorization.
    pub fn always_allowed(&self, path: &str) -> bool {
        self.always_allow.iter().any(|rule| match rule {
            PathRule::Exact(p) => p == path,
            PathRule::Prefix(p) => path.starts_with(p.as_str()),
        })
    }

    /// Decides whether `user` may make the request `info` describes.
    pub async fn authorize(
        &self,
        user: &UserInfo,
        info: &RequestInfo<'_>,
    ) -> Result<Decision, ReviewError> {
        let key = cache_key(user, info);
        let now = self.clock.now_ms();
        if let Some(hit) = self.cache.get(&key, now) {
            self.count("hit");
            return Ok(hit);
        }
        self.count("miss");
        let api = Api::<SubjectAccessReview>::all(self.client.clone());
        let review = review(user, info);
        let answer =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| {
                    ReviewError::new(
                        "SubjectAccessReview",
                        format!("no answer within {} s", REVIEW_TIMEOUT.as_secs()),
                    )
                })?
                .map_err(|e| ReviewError::new("SubjectAccessReview", e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        if let Some(error) = status.evaluation_error.as_deref().filter(|e| !e.is_empty()) {
            tracing::debug!(error, "SubjectAccessReview reported an evaluation error");
        }
        let decision = Decision {
            allowed: status.allowed && status.denied != Some(true),
            reason: status.reason.unwrap_or_default(),
        };
        let ttl = if decision.allowed {
            self.allowed_ttl_ms
        } else {
            self.denied_ttl_ms
        };
        if ttl > 0 {
            self.cache.insert(key, decision.clone(), now + ttl, now);
        }
        Ok(decision)
    }

    fn count(&self, result: &'static str) {
        self.telemetry
            .auth_cache_lookups
            .get_or_create(&AuthCacheLabels {
                cache: "authorization",
                result,
            })
            .inc();
    }
}

/// Everything a decision depends on, hashed.
fn cache_key(user: &UserInfo, info: &RequestInfo<'_>) -> Key {
    let mut h = KeyHasher::default();
    h.field(&user.name).field(&user.uid);
    for g in &user.groups {
        h.field("g").field(g);
    }
    for (k, values) in &user.extra {
        h.field("x").field(k);
        for v in values {
            h.field(v);
        }
    }
    h.field("verb").field(info.verb);
    match &info.resource {
        Some(r) => {
            h.field("resource")
                .field(r.group)
                .field(r.version)
                .field(r.namespace)
                .field(r.resource)
                .field(r.subresource)
                .field(r.name);
        }
        None => {
            h.field("path").field(info.path);
        }
    }
    h.finish()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The `SubjectAccessReview` for `user` making request `info`.
pub fn review(user: &UserInfo, info: &RequestInfo<'_>) -> SubjectAccessReview {
    let (resource_attributes, non_resource_attributes) = match &info.resource {
        Some(r) => (
            Some(ResourceAttributes {
                verb: Some(info.verb.to_string()),
                group: Some(r.group.to_string()),
                version: non_empty(r.version),
                namespace: non_empty(r.namespace),
                resource: non_empty(r.resource),
                subresource: non_empty(r.subresource),
                name: non_empty(r.name),
                ..ResourceAttributes::default()
            }),
            None,
        ),
        None => (
            None,
            Some(NonResourceAttributes {
                path: Some(info.path.to_string()),
                verb: Some(info.verb.to_string()),
            }),
        ),
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: non_empty(&user.name),
            uid: non_empty(&user.uid),
            groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..SubjectAccessReview::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn review_carries_resource_attributes() {
        let info = RequestInfo::parse(
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/rps",
            "labelSelector=app%3Dweb",
        );
        let sar = review(&user("alice", &["devs"]), &info);
        let json = serde_json::to_value(&sar.spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "user": "alice",
                "groups": ["devs"],
                "resourceAttributes": {
                    "verb": "get", "group": "custom.metrics.k8s.io", "version": "v1beta2",
                    "namespace": "ns", "resource": "pods", "name": "*", "subresource": "rps"
                }
            })
        );
    }

    #[test]
    fn review_carries_non_resource_attributes() {
        let info = RequestInfo::parse(&Method::GET, "/metrics", "");
        let json = serde_json::to_value(&review(&user("bob", &[]), &info).spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"user": "bob", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
        );
    }

    #[test]
    fn cache_key_depends_on_user_and_attributes() {
        let a = RequestInfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", "");
        let b = RequestInfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/pods", "");
        let alice = user("alice", &["devs"]);
        assert_eq!(cache_key(&alice, &a), cache_key(&alice, &a));
        assert_ne!(cache_key(&alice, &a), cache_key(&alice, &b));
        assert_ne!(
            cache_key(&alice, &a),
            cache_key(&user("alice", &["admins"]), &a)
        );
        assert_ne!(
            cache_key(&alice, &a),
            cache_key(&user("mallory", &["devs"]), &a)
        );
    }
}
