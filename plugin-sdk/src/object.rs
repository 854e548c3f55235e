//! References to the Kubernetes objects that custom metric values describe.

use crate::types::{Label, label};

/// The Kubernetes object a custom metric value describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Plural resource, with its group unless core: `pods`, `nodes`, `deployments.apps`.
    pub resource: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Resources [`ObjectRef::from_labels`] knows: (resource, label naming the object, namespaced).
const KNOWN: &[(&str, &str, bool)] = &[
    ("pods", "pod", true),
    ("nodes", "node", false),
    ("namespaces", "namespace", false),
    ("deployments.apps", "deployment", true),
    ("statefulsets.apps", "statefulset", true),
    ("daemonsets.apps", "daemonset", true),
    ("replicasets.apps", "replicaset", true),
    ("jobs.batch", "job", true),
    ("services", "service", true),
];

/// The label that names an object of `resource` in kube-state-metrics style series
/// (`pods` → `pod`, `deployments.apps` → `deployment`), for the resources the SDK knows.
pub fn object_label(resource: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(r, _, _)| *r == resource)
        .map(|(_, l, _)| *l)
}

/// Whether `resource` is cluster-scoped (`nodes`, `namespaces`, `persistentvolumes`, …).
pub fn is_cluster_scoped(resource: &str) -> bool {
    match KNOWN.iter().find(|(r, _, _)| *r == resource) {
        Some((_, _, namespaced)) => !namespaced,
        None => matches!(
            resource,
            "persistentvolumes"
                | "storageclasses.storage.k8s.io"
                | "clusterroles.rbac.authorization.k8s.io"
        ),
    }
}

impl ObjectRef {
    /// An object of `resource` in `namespace` (empty when cluster-scoped).
    pub fn new(
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> ObjectRef {
        ObjectRef {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// A pod.
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> ObjectRef {
        ObjectRef::new("pods", namespace, name)
    }

    /// A node.
    pub fn node(name: impl Into<String>) -> ObjectRef {
        ObjectRef::new("nodes", "", name)
    }

    /// A namespace (the object itself, served at `namespaces/{ns}/metrics/{metric}`).
    pub fn namespace(name: impl Into<String>) -> ObjectRef {
        ObjectRef::new("namespaces", "", name)
    }

    /// A Deployment.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> ObjectRef {
        ObjectRef::new("deployments.apps", namespace, name)
    }

    /// The object of `resource` that series `labels` describe, by the kube-state-metrics
    /// conventions: the object's name in the label [`object_label`] gives (`pod`, `node`,
    /// `deployment`, …) and, for namespaced resources, its namespace in `namespace`
    /// (`namespaces` take their name from `namespace`). `None` when a label is missing or
    /// empty, or the resource is not one the SDK knows.
    pub fn from_labels(resource: &str, labels: &[Label]) -> Option<ObjectRef> {
        let (resource, name_label, namespaced) = *KNOWN.iter().find(|(r, _, _)| *r == resource)?;
        let name = label(labels, name_label).filter(|n| !n.is_empty())?;
        let namespace = if namespaced {
            label(labels, "namespace").filter(|n| !n.is_empty())?
        } else {
            ""
        };
        Some(ObjectRef::new(resource, namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::labels;

    #[test]
    fn from_labels_follows_the_label_conventions() {
        let l = labels(&[("namespace", "web"), ("pod", "p-1"), ("node", "n-1")]);
        assert_eq!(
            ObjectRef::from_labels("pods", &l),
            Some(ObjectRef::pod("web", "p-1"))
        );
        assert_eq!(
            ObjectRef::from_labels("nodes", &l),
            Some(ObjectRef::node("n-1"))
        );
        assert_eq!(
            ObjectRef::from_labels("namespaces", &l),
            Some(ObjectRef::namespace("web"))
        );
        assert_eq!(ObjectRef::from_labels("deployments.apps", &l), None);
        let d = labels(&[("namespace", "web"), ("deployment", "api")]);
        assert_eq!(
            ObjectRef::from_labels("deployments.apps", &d),
            Some(ObjectRef::deployment("web", "api"))
        );
    }

    #[test]
    fn from_labels_needs_the_namespace_of_namespaced_objects() {
        let l = labels(&[("pod", "p-1")]);
        assert_eq!(ObjectRef::from_labels("pods", &l), None);
        let empty = labels(&[("namespace", ""), ("pod", "p-1")]);
        assert_eq!(ObjectRef::from_labels("pods", &empty), None);
        assert_eq!(ObjectRef::from_labels("widgets", &l), None);
    }

    #[test]
    fn scope_of_resources() {
        assert!(is_cluster_scoped("nodes"));
        assert!(is_cluster_scoped("namespaces"));
        assert!(!is_cluster_scoped("pods"));
        assert!(!is_cluster_scoped("deployments.apps"));
    }
}
