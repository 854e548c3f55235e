//! Association of label names with Kubernetes resources (`resources.overrides` and
//! `resources.template`), resolved against the cluster's API resources.

use std::collections::BTreeMap;

use metrics_gateway_sdk::ResourceMapper;
use metrics_gateway_sdk::types::ApiResource;

use crate::config::{GroupResource, ResourceMapping};
use crate::template::{Template, Value};

/// The singular name, or the kind in lower case when discovery gives none.
fn singular(resource: &ApiResource) -> String {
    if resource.singular.is_empty() {
        resource.kind.to_ascii_lowercase()
    } else {
        resource.singular.clone()
    }
}

/// Resources every cluster has, used until the host passes the cluster's own list.
pub fn builtin_api_resources() -> Vec<ApiResource> {
    let r = |group: &str, resource: &str, singular: &str, kind: &str, namespaced| ApiResource {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        singular: singular.into(),
        kind: kind.into(),
        namespaced,
    };
    vec![
        r("", "pods", "pod", "Pod", true),
        r("", "nodes", "node", "Node", false),
        r("", "namespaces", "namespace", "Namespace", false),
        r("", "services", "service", "Service", true),
        r(
            "",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
        ),
        r("apps", "deployments", "deployment", "Deployment", true),
        r("apps", "statefulsets", "statefulset", "StatefulSet", true),
        r("apps", "daemonsets", "daemonset", "DaemonSet", true),
        r("apps", "replicasets", "replicaset", "ReplicaSet", true),
        r("batch", "jobs", "job", "Job", true),
        r("batch", "cronjobs", "cronjob", "CronJob", true),
        r("networking.k8s.io", "ingresses", "ingress", "Ingress", true),
    ]
}

/// A resource a label names: canonical `plural(.group)` and scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resolved {
    /// `pods`, `deployments.apps`.
    pub resource: String,
    /// Whether its objects live in a namespace.
    pub namespaced: bool,
}

/// The canonical name of the `namespaces` resource.
pub const NAMESPACES: &str = "namespaces";

/// A rule's association: overrides and an optional label template.
#[derive(Debug, Clone)]
pub struct Association {
    overrides: BTreeMap<String, GroupResource>,
    template: Option<Template>,
}

/// Label name → resource, for one rule and one list of API resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelMap {
    /// Resource by label name.
    pub labels: BTreeMap<String, Resolved>,
    /// Overrides naming no resource of the cluster, with why.
    pub unresolved: Vec<String>,
}

impl LabelMap {
    /// The label naming namespaces, if any.
    pub fn namespace_label(&self) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, r)| r.resource == NAMESPACES)
            .map(|(l, _)| l.as_str())
    }
}

impl Association {
    /// Parses `resources` (its `namespaced` is the rule's business).
    pub fn new(mapping: &ResourceMapping) -> Result<Association, String> {
        let template = match &mapping.template {
            Some(text) => Some(
                Template::parse(text, &["Group", "Resource"])
                    .map_err(|e| format!("resources.template: {e}"))?,
            ),
            None => None,
        };
        for (label, target) in &mapping.overrides {
            if target.resource.is_empty() {
                return Err(format!("resources.overrides.{label}: `resource` is empty"));
            }
        }
        Ok(Association {
            overrides: mapping.overrides.clone(),
            template,
        })
    }

    /// The label map against `api`: the template rendered for
    /// every resource (group with `.` → `_`, singular name); a label two resources render to
    /// goes to the core one, else the first listed. Then the overrides, resolved by the SDK's
    /// `ResourceMapper` as kubectl would (plural, singular or kind, any case; without a group,
    /// the core resource first): an overridden resource has only its override label.
    pub fn resolve(&self, api: &[ApiResource]) -> LabelMap {
        let mut map = LabelMap::default();
        if let Some(template) = &self.template {
            let mut ordered: Vec<&ApiResource> =
                api.iter().filter(|r| !r.resource.contains('/')).collect();
            ordered.sort_by_key(|r| !r.group.is_empty());
            for resource in ordered {
                let fields = BTreeMap::from([
                    ("Group", Value::Str(resource.group.replace('.', "_"))),
                    ("Resource", Value::Str(singular(resource))),
                ]);
                let label = template.render(&fields);
                map.labels.entry(label).or_insert_with(|| Resolved {
                    resource: resource.qualified(),
                    namespaced: resource.namespaced,
                });
            }
        }
        let mapper = ResourceMapper::new(api.to_vec());
        for (label, target) in &self.overrides {
            let name = if target.group.is_empty() {
                target.resource.clone()
            } else {
                format!("{}.{}", target.resource, target.group)
            };
            match mapper.resolve(&name) {
                Some(r) => {
                    // The override is the resource's label: drop what the template gave it.
                    map.labels
                        .retain(|_, resolved| resolved.resource != r.qualified);
                    map.labels.insert(
                        label.clone(),
                        Resolved {
                            resource: r.qualified,
                            namespaced: r.namespaced,
                        },
                    );
                }
                None => {
                    map.labels.remove(label);
                    map.unresolved.push(format!(
                        "resources.overrides.{label}: the cluster has no resource {:?} in group {:?}",
                        target.resource, target.group
                    ));
                }
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(template: Option<&str>, overrides: &[(&str, &str, &str)]) -> ResourceMapping {
        ResourceMapping {
            template: template.map(str::to_owned),
            overrides: overrides
                .iter()
                .map(|(l, g, r)| {
                    (
                        l.to_string(),
                        GroupResource {
                            group: g.to_string(),
                            resource: r.to_string(),
                        },
                    )
                })
                .collect(),
            namespaced: None,
        }
    }

    fn resolved(resource: &str, namespaced: bool) -> Resolved {
        Resolved {
            resource: resource.into(),
            namespaced,
        }
    }

    #[test]
    fn overrides_resolve_like_kubectl() {
        let a = Association::new(&mapping(
            None,
            &[
                ("namespace", "", "namespace"),
                ("pod", "", "pod"),
                ("microservice", "apps", "deployment"),
                ("ing", "networking.k8s.io", "Ingress"),
                ("brand", "cheese.io", "brand"),
            ],
        ))
        .unwrap();
        let map = a.resolve(&builtin_api_resources());
        assert_eq!(map.labels["pod"], resolved("pods", true));
        assert_eq!(map.labels["namespace"], resolved("namespaces", false));
        assert_eq!(
            map.labels["microservice"],
            resolved("deployments.apps", true)
        );
        assert_eq!(
            map.labels["ing"],
            resolved("ingresses.networking.k8s.io", true)
        );
        assert!(!map.labels.contains_key("brand"));
        assert_eq!(map.unresolved.len(), 1);
        assert!(
            map.unresolved[0].contains("overrides.brand"),
            "{:?}",
            map.unresolved
        );
        assert_eq!(map.namespace_label(), Some("namespace"));
    }

    #[test]
    fn templates_render_every_resource() {
        let a = Association::new(&mapping(Some("<<.Resource>>"), &[])).unwrap();
        let map = a.resolve(&builtin_api_resources());
        assert_eq!(map.labels["pod"], resolved("pods", true));
        assert_eq!(map.labels["deployment"], resolved("deployments.apps", true));
        assert_eq!(map.labels["node"], resolved("nodes", false));

        let a = Association::new(&mapping(
            Some("kube_<<.Group>>_<<.Resource>>"),
            &[("kube_ns", "", "namespaces")],
        ))
        .unwrap();
        let map = a.resolve(&builtin_api_resources());
        assert_eq!(
            map.labels["kube_apps_deployment"],
            resolved("deployments.apps", true)
        );
        assert_eq!(
            map.labels["kube_networking_k8s_io_ingress"],
            resolved("ingresses.networking.k8s.io", true)
        );
        assert_eq!(map.labels["kube__pod"], resolved("pods", true));
        assert_eq!(map.namespace_label(), Some("kube_ns"));
    }

    #[test]
    fn core_wins_a_label_two_groups_render() {
        let mut api = builtin_api_resources();
        let event = |group: &str| ApiResource {
            group: group.into(),
            version: "v1".into(),
            resource: "events".into(),
            singular: "event".into(),
            kind: "Event".into(),
            namespaced: true,
        };
        api.insert(0, event("events.k8s.io"));
        api.push(event(""));
        let map = Association::new(&mapping(Some("<<.Resource>>"), &[]))
            .unwrap()
            .resolve(&api);
        assert_eq!(map.labels["event"], resolved("events", true));
    }

    #[test]
    fn refuses_bad_templates() {
        let err = Association::new(&mapping(Some("<<.Kind>>"), &[])).unwrap_err();
        assert!(
            err.starts_with("resources.template: field `.Kind` does not exist"),
            "{err}"
        );
    }
}
