//! The bootstrap RBAC policy kube-apiserver grants the HPA controller (ClusterRole
//! `system:controller:horizontal-pod-autoscaler`, plus `system:discovery` for every
//! authenticated user), as an [`Authorizer`](super::Authorizer) rule set, so a rig can give the
//! HPA's identity exactly the access it has in a real cluster.

use super::auth::SubjectAccessReviewSpec;

/// One RBAC `PolicyRule` on resources: groups, resources (`*`, `r`, `r/sub`, `*/sub`), verbs.
struct Rule {
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
}

/// `system:controller:horizontal-pod-autoscaler` (kubernetes `plugin/pkg/auth/authorizer/rbac/
/// bootstrappolicy/controller_policy.go`).
const HPA_CONTROLLER_RULES: &[Rule] = &[
    Rule {
        groups: &["autoscaling"],
        resources: &["horizontalpodautoscalers"],
        verbs: &["get", "list", "watch"],
    },
    Rule {
        groups: &["autoscaling"],
        resources: &["horizontalpodautoscalers/status"],
        verbs: &["update"],
    },
    Rule {
        groups: &["*"],
        resources: &["*/scale"],
        verbs: &["get", "update"],
    },
    Rule {
        groups: &[""],
        resources: &["pods"],
        verbs: &["list"],
    },
    Rule {
        groups: &["metrics.k8s.io"],
        resources: &["pods"],
        verbs: &["list"],
    },
    Rule {
        groups: &["custom.metrics.k8s.io"],
        resources: &["*"],
        verbs: &["get", "list"],
    },
    Rule {
        groups: &["external.metrics.k8s.io"],
        resources: &["*"],
        verbs: &["get", "list"],
    },
    Rule {
        groups: &["", "events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "update", "patch"],
    },
];

/// `system:discovery` and `system:public-info-viewer`: the non-resource paths every
/// authenticated user may `get`.
const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];

fn matches(patterns: &[&str], value: &str) -> bool {
    patterns.iter().any(|p| *p == "*" || *p == value)
}

fn resource_matches(patterns: &[&str], resource: &str, subresource: &str) -> bool {
    let full = if subresource.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{subresource}")
    };
    patterns.iter().any(|p| {
        *p == "*"
            || *p == full
            || (!subresource.is_empty() && p.strip_prefix("*/") == Some(subresource))
    })
}

/// Whether the HPA controller's bootstrap roles allow the request in `spec`.
pub fn hpa_controller_allows(spec: &SubjectAccessReviewSpec) -> bool {
    if let Some(r) = &spec.resource_attributes {
        return HPA_CONTROLLER_RULES.iter().any(|rule| {
            matches(rule.groups, &r.group)
                && matches(rule.verbs, &r.verb)
                && resource_matches(rule.resources, &r.resource, &r.subresource)
        });
    }
    spec.non_resource_attributes.as_ref().is_some_and(|n| {
        n.verb == "get"
            && DISCOVERY_PATHS.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => n.path.starts_with(prefix),
                None => n.path == *p,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::super::auth::{NonResourceAttributes, ResourceAttributes};
    use super::*;

    fn resource(group: &str, resource: &str, sub: &str, verb: &str) -> SubjectAccessReviewSpec {
        SubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                verb: verb.into(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        }
    }

    #[test]
    fn the_hpa_reads_metrics_and_nothing_more() {
        for (group, res, sub, verb) in [
            ("metrics.k8s.io", "pods", "", "list"),
            (
                "custom.metrics.k8s.io",
                "pods",
                "requests_per_second",
                "get",
            ),
            ("custom.metrics.k8s.io", "metrics", "", "get"),
            ("external.metrics.k8s.io", "queue_depth", "", "list"),
            ("apps", "deployments", "scale", "get"),
            ("", "pods", "", "list"),
        ] {
            assert!(
                hpa_controller_allows(&resource(group, res, sub, verb)),
                "{verb} {group}/{res}/{sub}"
            );
        }
        for (group, res, sub, verb) in [
            ("metrics.k8s.io", "nodes", "", "list"),
            ("metrics.k8s.io", "pods", "", "get"),
            ("", "secrets", "", "get"),
            ("apps", "deployments", "", "get"),
            ("custom.metrics.k8s.io", "pods", "x", "create"),
        ] {
            assert!(
                !hpa_controller_allows(&resource(group, res, sub, verb)),
                "{verb} {group}/{res}/{sub}"
            );
        }
    }

    #[test]
    fn discovery_paths_are_readable() {
        let get = |path: &str| SubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: path.into(),
                verb: "get".into(),
            }),
            ..SubjectAccessReviewSpec::default()
        };
        assert!(hpa_controller_allows(&get("/apis")));
        assert!(hpa_controller_allows(&get("/apis/custom.metrics.k8s.io")));
        assert!(!hpa_controller_allows(&get("/metrics")));
    }
}
