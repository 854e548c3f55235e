//! Authentication (bearer tokens), request attributes, authorization, and the `TokenReview` and
//! `SubjectAccessReview` APIs that extension API servers delegate to.

use std::collections::BTreeMap;

use http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::status::{ApiError, ApiResult};

/// An authenticated user, as the fake apiserver's token table defines it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:kube-system:metrics-gateway`.
    pub username: String,
    /// Groups. `system:authenticated` is added when missing, as kube-apiserver does.
    pub groups: Vec<String>,
    /// UID (sent as `X-Remote-Uid` when not empty).
    pub uid: String,
}

/// The group kube-apiserver adds to every authenticated user.
const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The key of the one `extra` entry every token user carries, as service-account tokens do.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";

/// A user as the request pipeline sees it: the configured identity plus its `extra`.
#[derive(Clone, Debug)]
pub(crate) struct Subject {
    pub(crate) info: UserInfo,
    pub(crate) extra: BTreeMap<String, Vec<String>>,
}

impl Subject {
    /// The subject a token authenticates as. Like kube-apiserver's service-account authenticator
    /// it records which credential was used (`JTI=…`), derived here from the token itself.
    pub(crate) fn for_token(info: &UserInfo, token: &str) -> Subject {
        let mut extra = BTreeMap::new();
        extra.insert(
            CREDENTIAL_ID_EXTRA.to_string(),
            vec![format!("JTI={}", uuid_like(token))],
        );
        let mut info = info.clone();
        if !info.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            info.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        Subject { info, extra }
    }
}

/// A deterministic UUID-shaped string derived from `seed`.
pub(crate) fn uuid_like(seed: &str) -> String {
    let h = hex_digest(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `len` lowercase hex digits derived from `seed` (FNV-1a, chained): stable fake ids and hashes.
pub(crate) fn hex_digest(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut round: u8 = 0;
    while out.len() < len {
        for b in seed.bytes().chain([round]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
        round = round.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `SubjectAccessReview.spec.resourceAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAttributes {
    /// Namespace of the object (empty for cluster-scoped or all namespaces).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Kubernetes verb: get, list, watch, create, …
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
    /// API group (empty for core).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Resource (plural).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Subresource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `SubjectAccessReview.spec.nonResourceAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonResourceAttributes {
    /// URL path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Lower-case HTTP verb.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
}

/// `authorization.k8s.io/v1` `SubjectAccessReviewSpec`: what the authorizer decides on, both for
/// `SubjectAccessReview`s posted to the fake apiserver and for the fake's own requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReviewSpec {
    /// Set for resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_attributes: Option<ResourceAttributes>,
    /// Set for non-resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_resource_attributes: Option<NonResourceAttributes>,
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes of the user.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
    /// User UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// What a request addresses, parsed from its method and path as kube-apiserver's
/// `RequestInfoFactory` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// Kubernetes verb (resource requests) or lower-case HTTP method (others).
    pub(crate) verb: String,
    /// The path, without query.
    pub(crate) path: String,
    /// Set when the path addresses a resource.
    pub(crate) resource: Option<ResourceAttributes>,
}

impl RequestInfo {
    /// Parses `path` (no query) of a request with `method`; `watch` is whether the query asks to
    /// watch.
    pub(crate) fn parse(method: &Method, path: &str, watch: bool) -> RequestInfo {
        let non_resource = || RequestInfo {
            verb: method.as_str().to_ascii_lowercase(),
            path: path.to_string(),
            resource: None,
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return non_resource(),
        };
        if rest.is_empty() {
            return non_resource();
        }
        let mut attrs = ResourceAttributes {
            group: group.to_string(),
            version: version.to_string(),
            ..ResourceAttributes::default()
        };
        let rest = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
                attrs.namespace = ns.to_string();
                tail
            }
            ["namespaces", ns] => {
                attrs.namespace = ns.to_string();
                rest
            }
            _ => rest,
        };
        attrs.resource = rest[0].to_string();
        attrs.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        attrs.subresource = rest.get(2..).map(|s| s.join("/")).unwrap_or_default();
        let verb = match *method {
            Method::GET | Method::HEAD if !attrs.name.is_empty() => "get",
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if attrs.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        attrs.verb = if verb.is_empty() {
            method.as_str().to_ascii_lowercase()
        } else {
            verb.to_string()
        };
        RequestInfo {
            verb: attrs.verb.clone(),
            path: path.to_string(),
            resource: Some(attrs),
        }
    }

    /// A list or watch whose `fieldSelector` requires one `metadata.name` is authorized as a
    /// request for that name, as kube-apiserver's `RequestInfoFactory` does (what lets a Role
    /// with `resourceNames` allow watching one object).
    pub(crate) fn named_by_field_selector(mut self, query: &str) -> RequestInfo {
        let Some(attrs) = self.resource.as_mut() else {
            return self;
        };
        if !attrs.name.is_empty() || !matches!(attrs.verb.as_str(), "list" | "watch") {
            return self;
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let selector = pairs.iter().find(|(k, _)| k == "fieldSelector");
        if let Some((_, selector)) = selector {
            for requirement in selector.split(',') {
                let name = requirement
                    .strip_prefix("metadata.name==")
                    .or_else(|| requirement.strip_prefix("metadata.name="));
                if let Some(name) = name {
                    attrs.name = name.to_string();
                }
            }
        }
        self
    }

    /// The access review the authorizer is asked for this request by `subject`.
    pub(crate) fn review_spec(&self, subject: &Subject) -> SubjectAccessReviewSpec {
        SubjectAccessReviewSpec {
            resource_attributes: self.resource.clone(),
            non_resource_attributes: self.resource.is_none().then(|| NonResourceAttributes {
                path: self.path.clone(),
                verb: self.verb.clone(),
            }),
            user: subject.info.username.clone(),
            groups: subject.info.groups.clone(),
            extra: subject.extra.clone(),
            uid: subject.info.uid.clone(),
        }
    }

    /// The 403 kube-apiserver's RBAC authorizer answers when this request is denied.
    pub(crate) fn forbidden(&self, subject: &Subject) -> ApiError {
        let user = &subject.info.username;
        match &self.resource {
            None => ApiError::forbidden(
                format!(
                    "forbidden: User \"{user}\" cannot {} path \"{}\"",
                    self.verb, self.path
                ),
                "",
                "",
                "",
            ),
            Some(r) => {
                let full = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let what = if r.name.is_empty() {
                    full.clone()
                } else {
                    format!("{full} \"{}\"", r.name)
                };
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace \"{}\"", r.namespace)
                };
                ApiError::forbidden(
                    format!(
                        "{what} is forbidden: User \"{user}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
                        r.verb, r.group
                    ),
                    &r.group,
                    &r.resource,
                    &r.name,
                )
            }
        }
    }
}

/// The server's audience for tokens that don't ask for one (kube-apiserver's default issuer).
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Deserialize)]
struct ReviewBody<S> {
    #[serde(default)]
    spec: S,
}

#[derive(Default, Deserialize)]
struct TokenReviewSpec {
    #[serde(default)]
    token: String,
    #[serde(default)]
    audiences: Vec<String>,
}

/// Answers a `TokenReview` body against the token table (`lookup`).
pub(crate) fn token_review(
    body: &[u8],
    lookup: impl Fn(&str) -> Option<Subject>,
) -> ApiResult<Value> {
    let review: ReviewBody<TokenReviewSpec> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("decoding TokenReview: {e}")))?;
    let spec = review.spec;
    if spec.token.is_empty() {
        return Err(ApiError::bad_request(
            "TokenReview.spec.token: Required value",
        ));
    }
    let audiences = if spec.audiences.is_empty() {
        vec![DEFAULT_AUDIENCE.to_string()]
    } else {
        spec.audiences.clone()
    };
    let status = match lookup(&spec.token) {
        Some(subject) => {
            let mut user =
                json!({ "username": subject.info.username, "groups": subject.info.groups });
            if !subject.info.uid.is_empty() {
                user["uid"] = json!(subject.info.uid);
            }
            if !subject.extra.is_empty() {
                user["extra"] = json!(subject.extra);
            }
            json!({ "authenticated": true, "user": user, "audiences": audiences })
        }
        None => json!({ "user": {}, "error": "[invalid bearer token, token lookup failed]" }),
    };
    let mut spec_json = json!({ "token": spec.token });
    if !spec.audiences.is_empty() {
        spec_json["audiences"] = json!(spec.audiences);
    }
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "spec": spec_json,
        "status": status,
    }))
}

/// Answers a `SubjectAccessReview` body with `authorize`.
pub(crate) fn subject_access_review(
    body: &[u8],
    authorize: impl Fn(&SubjectAccessReviewSpec) -> bool,
) -> ApiResult<Value> {
    let review: ReviewBody<SubjectAccessReviewSpec> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("decoding SubjectAccessReview: {e}")))?;
    let spec = review.spec;
    if spec.resource_attributes.is_some() == spec.non_resource_attributes.is_some() {
        return Err(ApiError::bad_request(
            "SubjectAccessReview.spec: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    if spec.user.is_empty() && spec.groups.is_empty() {
        return Err(ApiError::bad_request(
            "SubjectAccessReview.spec: at least one of user or group must be specified",
        ));
    }
    let status = if authorize(&spec) {
        json!({ "allowed": true, "reason": "allowed by the fake apiserver's authorizer" })
    } else {
        json!({ "allowed": false })
    };
    Ok(json!({
        "kind": "SubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "spec": spec,
        "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_info_follows_the_apiserver_rules() {
        let get = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/ns-1/pods/p", false);
        let r = get.resource.unwrap();
        assert_eq!(
            (
                r.verb.as_str(),
                r.namespace.as_str(),
                r.resource.as_str(),
                r.name.as_str()
            ),
            ("get", "ns-1", "pods", "p")
        );
        let list = RequestInfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", false);
        let r = list.resource.unwrap();
        assert_eq!(
            (r.verb.as_str(), r.group.as_str(), r.version.as_str()),
            ("list", "metrics.k8s.io", "v1beta1")
        );
        let watch = RequestInfo::parse(&Method::GET, "/api/v1/pods", true)
            .resource
            .unwrap();
        assert_eq!(watch.verb, "watch");
        let ns = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/kube-system", false)
            .resource
            .unwrap();
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_str(),
                ns.namespace.as_str()
            ),
            ("namespaces", "kube-system", "kube-system")
        );
        let status = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/a/pods/p/status", false)
            .resource
            .unwrap();
        assert_eq!(status.subresource, "status");
        let one = RequestInfo::parse(
            &Method::GET,
            "/api/v1/namespaces/kube-system/configmaps",
            true,
        )
        .named_by_field_selector(
            "watch=1&fieldSelector=metadata.name%3Dextension-apiserver-authentication",
        );
        let one = one.resource.unwrap();
        assert_eq!(
            (one.verb.as_str(), one.name.as_str()),
            ("watch", "extension-apiserver-authentication")
        );
        let other = RequestInfo::parse(&Method::GET, "/api/v1/pods", false)
            .named_by_field_selector("fieldSelector=spec.nodeName%3Dn1");
        assert_eq!(other.resource.unwrap().name, "");
        let discovery = RequestInfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1", false);
        assert!(discovery.resource.is_none());
        assert_eq!(discovery.verb, "get");
    }

    #[test]
    fn forbidden_message_matches_rbac_wording() {
        let subject = Subject {
            info: UserInfo {
                username: "alice".into(),
                ..UserInfo::default()
            },
            extra: BTreeMap::new(),
        };
        let info = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/ns/pods", false);
        let status = info.forbidden(&subject).status_json();
        assert_eq!(
            status["message"],
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(status["code"], 403);
    }

    #[test]
    fn bearer_token_needs_the_bearer_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn hex_digest_is_stable_and_sized() {
        assert_eq!(hex_digest("x", 64).len(), 64);
        assert_eq!(hex_digest("x", 64), hex_digest("x", 64));
        assert_ne!(hex_digest("x", 16), hex_digest("y", 16));
        assert_eq!(uuid_like("t").len(), 36);
    }
}
