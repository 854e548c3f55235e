//! What a request addresses, derived from its method and path the way kube-apiserver's
//! `RequestInfoFactory` does, borrowing from the request (no allocation).

use http::Method;

/// Resource attributes of a request under `/api/{version}` or `/apis/{group}/{version}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttrs<'a> {
    /// API group (empty for core).
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Namespace (empty for cluster scope).
    pub namespace: &'a str,
    /// Resource (plural), e.g. `pods`; for custom metrics the described object's resource.
    pub resource: &'a str,
    /// Subresource, e.g. a custom metric's name.
    pub subresource: &'a str,
    /// Object name (`*` for custom-metrics selector queries).
    pub name: &'a str,
}

/// A request as the authorizer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// Kubernetes verb for resource requests (`get`, `list`, `watch`, …), the lower-case HTTP
    /// method for others.
    pub verb: &'static str,
    /// The path, without query.
    pub path: &'a str,
    /// Set for resource requests.
    pub resource: Option<ResourceAttrs<'a>>,
}

/// Namespace subresources: `/namespaces/{ns}/status` addresses the namespace itself.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

fn http_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        _ => "unknown",
    }
}

fn query_flag(query: &str, key: &str) -> bool {
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k == key && matches!(v, "true" | "1")
    })
}

impl<'a> RequestInfo<'a> {
    /// Parses a request's method, path and query.
    pub fn parse(method: &Method, path: &'a str, query: &str) -> RequestInfo<'a> {
        let non_resource = RequestInfo {
            verb: http_verb(method),
            path,
            resource: None,
        };
        // The deepest path interpreted: apis/{group}/{version}/namespaces/{ns}/{res}/{name}/{sub}.
        let mut seg = [""; 8];
        let mut len = 0;
        for part in path.split('/').filter(|p| !p.is_empty()).take(seg.len()) {
            seg[len] = part;
            len += 1;
        }
        let mut attrs = ResourceAttrs::default();
        let rest_at = match seg[0] {
            "api" => 1,
            "apis" => {
                attrs.group = seg[1];
                2
            }
            _ => return non_resource,
        };
        // `/api/v1` and `/apis/{group}/{version}` are discovery: non-resource.
        if len < rest_at + 2 {
            return non_resource;
        }
        attrs.version = seg[rest_at];
        let mut rest = &seg[rest_at + 1..len];
        if rest[0] == "namespaces" && rest.len() > 1 {
            attrs.namespace = rest[1];
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        attrs.resource = rest[0];
        attrs.name = rest.get(1).copied().unwrap_or_default();
        attrs.subresource = rest.get(2).copied().unwrap_or_default();
        let verb = match *method {
            Method::GET | Method::HEAD if !attrs.name.is_empty() => "get",
            Method::GET | Method::HEAD if query_flag(query, "watch") => "watch",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if attrs.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => http_verb(method),
        };
        RequestInfo {
            verb,
            path,
            resource: Some(attrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(path: &str) -> (&'static str, ResourceAttrs<'_>) {
        let info = RequestInfo::parse(&Method::GET, path, "");
        (info.verb, info.resource.expect("a resource request"))
    }

    #[test]
    fn resource_metrics_paths() {
        let (verb, a) = attrs("/apis/metrics.k8s.io/v1beta1/nodes");
        assert_eq!(
            (verb, a.group, a.version, a.resource),
            ("list", "metrics.k8s.io", "v1beta1", "nodes")
        );
        let (verb, a) = attrs("/apis/metrics.k8s.io/v1beta1/nodes/node-1");
        assert_eq!((verb, a.resource, a.name), ("get", "nodes", "node-1"));
        let (verb, a) = attrs("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods");
        assert_eq!(
            (verb, a.namespace, a.resource, a.name),
            ("list", "ns", "pods", "")
        );
        let (verb, a) = attrs("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p");
        assert_eq!(
            (verb, a.namespace, a.resource, a.name),
            ("get", "ns", "pods", "p")
        );
        let watch = RequestInfo::parse(
            &Method::GET,
            "/apis/metrics.k8s.io/v1beta1/pods",
            "watch=true",
        );
        assert_eq!(watch.verb, "watch");
    }

    #[test]
    fn custom_metrics_paths_address_the_described_object() {
        let (verb, a) =
            attrs("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/http_requests");
        assert_eq!(
            (verb, a.namespace, a.resource, a.name, a.subresource),
            ("get", "ns", "pods", "*", "http_requests")
        );
        let (_, a) = attrs("/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/load");
        assert_eq!(
            (a.namespace, a.resource, a.name, a.subresource),
            ("", "nodes", "n1", "load")
        );
        let (_, a) =
            attrs("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/deployments.apps/web/rps");
        assert_eq!(
            (a.resource, a.name, a.subresource),
            ("deployments.apps", "web", "rps")
        );
        let (verb, a) = attrs("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/metrics/queue");
        assert_eq!(
            (verb, a.namespace, a.resource, a.name),
            ("get", "ns", "metrics", "queue")
        );
    }

    #[test]
    fn external_metrics_are_listed() {
        let (verb, a) = attrs("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/queue_depth");
        assert_eq!(
            (verb, a.namespace, a.resource),
            ("list", "ns", "queue_depth")
        );
    }

    #[test]
    fn namespaces_and_their_subresources() {
        let (verb, a) = attrs("/api/v1/namespaces/kube-system");
        assert_eq!(
            (verb, a.namespace, a.resource, a.name),
            ("get", "kube-system", "namespaces", "kube-system")
        );
        let (_, a) = attrs("/api/v1/namespaces/ns/status");
        assert_eq!(
            (a.resource, a.name, a.subresource),
            ("namespaces", "ns", "status")
        );
    }

    #[test]
    fn discovery_and_others_are_non_resource() {
        for path in [
            "/apis",
            "/apis/metrics.k8s.io",
            "/apis/metrics.k8s.io/v1beta1",
            "/api/v1",
            "/metrics",
            "/openapi/v2",
            "/",
        ] {
            let info = RequestInfo::parse(&Method::GET, path, "");
            assert!(info.resource.is_none(), "{path}");
            assert_eq!(info.verb, "get");
        }
        assert_eq!(
            RequestInfo::parse(&Method::POST, "/metrics", "").verb,
            "post"
        );
    }
}
