//! Authentication and authorization of every API request, delegated to the Kubernetes API the
//! way an aggregated API server does (see `docs/ARCHITECTURE.md`, "Security decisions").
//!
//! Per request: paths in `authorization.always_allow_paths` pass untouched; otherwise the
//! caller is identified ([`authn`]), identity headers are stripped ([`front_proxy`]), and a
//! `SubjectAccessReview` ([`authz`]) decides. Failures answer a `Status`: 401 when no
//! credential is valid, 403 when denied, 503 when a review cannot be made (fail closed).

pub mod authn;
pub mod authz;
pub mod ca_bundle;
pub mod cache;
pub mod client_cert;
pub mod front_proxy;
pub mod request_info;
pub mod token_review;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::authn::{Authenticator, AuthnError};
use self::authz::Authorizer;
use self::ca_bundle::{Bundles, Overrides};
use self::client_cert::PeerCert;
use self::request_info::RequestInfo;
use self::token_review::TokenReviewer;
use super::status::ApiError;
use crate::clock::Clock;
use crate::config::Config;
use crate::telemetry::{AuthnLabels, AuthzLabels, Telemetry};

/// An authenticated user, as a `SubjectAccessReview` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// UID (may be empty).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (scopes, credential id, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A review (`TokenReview`, `SubjectAccessReview`) that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{kind} failed: {reason}")]
pub struct ReviewError {
    kind: &'static str,
    reason: String,
}

impl ReviewError {
    /// A failed review of `kind`.
    pub fn new(kind: &'static str, reason: impl Into<String>) -> ReviewError {
        ReviewError {
            kind,
            reason: reason.into(),
        }
    }
}

/// Authentication and authorization, shared by all connections.
#[derive(Debug)]
pub struct Auth {
    /// CA bundles and header names.
    pub bundles: Arc<Bundles>,
    /// Identifies callers.
    pub authn: Authenticator,
    /// Decides what they may do.
    pub authz: Authorizer,
    /// Self-metrics.
    pub telemetry: Telemetry,
}

/// The connection's client certificate facts, as a request extension.
#[derive(Clone, Debug, Default)]
pub struct ConnectionPeer(pub Arc<PeerCert>);

impl Auth {
    /// Authentication and authorization for `[authentication]` and `[authorization]`; reads
    /// the authentication ConfigMap once before returning, so the first requests can be
    /// verified (the watch started with [`Bundles::watch`] keeps it current).
    pub async fn new(
        config: &Config,
        client: &kube::Client,
        clock: &Clock,
        telemetry: &Telemetry,
    ) -> anyhow::Result<Auth> {
        let a = &config.authentication;
        let overrides = Overrides::from_config(a, |p| config.resolve(p));
        let bundles =
            Arc::new(Bundles::new(overrides).context("loading [authentication] CA files")?);
        bundles.load_once(client).await;
        let capacity = config.authorization.cache_size.get() as usize;
        let tokens = a.token_review.then(|| {
            TokenReviewer::new(
                client.clone(),
                a.token_cache_ttl_secs,
                capacity,
                clock.clone(),
                telemetry.clone(),
            )
        });
        Ok(Auth {
            bundles,
            authn: Authenticator {
                tokens,
                anonymous: a.anonymous,
            },
            authz: Authorizer::new(
                client.clone(),
                &config.authorization,
                clock.clone(),
                telemetry.clone(),
            ),
            telemetry: telemetry.clone(),
        })
    }

    /// Decides one request: `Ok(())` to serve it, `Err` with the response to send instead.
    /// Identity headers are stripped from `req` either way.
    pub async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let sources = self.bundles.load();
        if self.authz.always_allowed(req.uri().path()) {
            front_proxy::strip(&sources, req.headers_mut());
            return Ok(());
        }
        let peer = req
            .extensions()
            .get::<ConnectionPeer>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        let authenticated = self
            .authn
            .authenticate(&peer, &sources, req.headers())
            .await;
        let (user, method) = match authenticated {
            Ok(ok) => ok,
            Err(error) => {
                let unavailable = matches!(error, AuthnError::Unavailable(_));
                self.count_authn("none", if unavailable { "error" } else { "failure" });
                tracing::warn!(
                    target: "metrics_gateway::audit",
                    path = req.uri().path(),
                    reason = %error,
                    "request not authenticated"
                );
                front_proxy::strip(&sources, req.headers_mut());
                return Err(match error {
                    AuthnError::Unavailable(e) => {
                        ApiError::Unauthorized(format!("Unauthorized: {e}"))
                    }
                    AuthnError::Unauthorized(_) => ApiError::Unauthorized("Unauthorized".into()),
                });
            }
        };
        self.count_authn(method.as_str(), "success");
        front_proxy::strip(&sources, req.headers_mut());
        let info = RequestInfo::parse(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        );
        match self.authz.authorize(&user, &info).await {
            Ok(d) if d.allowed => {
                self.count_authz("allowed");
                Ok(())
            }
            Ok(d) => {
                self.count_authz("denied");
                let forbidden = forbidden(&user, &info, &d.reason);
                audit_denial(&user, method.as_str(), &info, &d.reason);
                Err(forbidden)
            }
            Err(error) => {
                self.count_authz("error");
                tracing::error!(
                    target: "metrics_gateway::audit",
                    user = user.name,
                    path = info.path,
                    %error,
                    "authorization unavailable: request refused"
                );
                Err(ApiError::ServiceUnavailable(format!(
                    "authorization unavailable, request refused: {error}"
                )))
            }
        }
    }

    fn count_authn(&self, method: &'static str, result: &'static str) {
        self.telemetry
            .authn_requests
            .get_or_create(&AuthnLabels { method, result })
            .inc();
    }

    fn count_authz(&self, decision: &'static str) {
        self.telemetry
            .authz_decisions
            .get_or_create(&AuthzLabels { decision })
            .inc();
    }
}

fn audit_denial(user: &UserInfo, method: &str, info: &RequestInfo<'_>, reason: &str) {
    let r = info.resource.unwrap_or_default();
    tracing::warn!(
        target: "metrics_gateway::audit",
        decision = "forbid",
        user = user.name,
        groups = ?user.groups,
        authentication = method,
        verb = info.verb,
        path = info.path,
        group = r.group,
        resource = r.resource,
        subresource = r.subresource,
        namespace = r.namespace,
        name = r.name,
        reason,
        "request denied"
    );
}

/// The 403 kube-apiserver answers for a denied request.
fn forbidden(user: &UserInfo, info: &RequestInfo<'_>, reason: &str) -> ApiError {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    let Some(r) = &info.resource else {
        return ApiError::Forbidden {
            message: format!(
                "forbidden: User {:?} cannot {} path {:?}{suffix}",
                user.name, info.verb, info.path
            ),
            group: String::new(),
            resource: String::new(),
            name: String::new(),
        };
    };
    let full = if r.subresource.is_empty() {
        r.resource.to_string()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", r.namespace)
    };
    let qualified = if r.group.is_empty() {
        r.resource.to_string()
    } else {
        format!("{}.{}", r.resource, r.group)
    };
    let what = if r.name.is_empty() {
        qualified
    } else {
        format!("{qualified} {:?}", r.name)
    };
    ApiError::Forbidden {
        message: format!(
            "{what} is forbidden: User {:?} cannot {} resource {full:?} in API group {:?} {scope}{suffix}",
            user.name, info.verb, r.group
        ),
        group: r.group.to_string(),
        resource: r.resource.to_string(),
        name: r.name.to_string(),
    }
}

/// The middleware: serves the request only when [`Auth::check`] allows it.
pub async fn guard(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    match auth.check(&mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let alice = UserInfo {
            name: "alice".into(),
            ..UserInfo::default()
        };
        let info = RequestInfo::parse(
            &Method::GET,
            "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods",
            "",
        );
        let status = forbidden(&alice, &info, "").status();
        assert_eq!(
            status["message"],
            "pods.metrics.k8s.io is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"ns\""
        );
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(
            status["details"],
            serde_json::json!({"group": "metrics.k8s.io", "kind": "pods"})
        );
        let info = RequestInfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes/n1", "");
        assert_eq!(
            forbidden(&alice, &info, "").status()["message"],
            "nodes.metrics.k8s.io \"n1\" is forbidden: User \"alice\" cannot get resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope"
        );
        let info = RequestInfo::parse(&Method::GET, "/metrics", "");
        assert_eq!(
            forbidden(&alice, &info, "no RBAC rule").status()["message"],
            "forbidden: User \"alice\" cannot get path \"/metrics\": no RBAC rule"
        );
    }
}
