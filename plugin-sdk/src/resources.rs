//! Resolves resource names as `kubectl` accepts them to the contract's canonical form, from the
//! cluster's API resources (`CycleInput::api_resources`).

use crate::types::ApiResource;

/// A resource resolved by a [`ResourceMapper`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedResource {
    /// The canonical name: plural, with `.group` unless core (`pods`, `deployments.apps`).
    pub qualified: String,
    /// Its objects live in namespaces.
    pub namespaced: bool,
    /// Its kind (`Deployment`).
    pub kind: String,
}

/// Resolves what `kubectl` accepts as a resource name — plural, singular or kind, in any case,
/// with an optional `.group` suffix — to the canonical `plural(.group)` and its scope.
///
/// Without a group, a name several groups define resolves to the core group's resource when
/// there is one, otherwise to the first group listed (discovery order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceMapper {
    resources: Vec<ApiResource>,
}

impl ResourceMapper {
    /// A mapper over `resources` (as the host lists them; subresources are not listed).
    pub fn new(resources: Vec<ApiResource>) -> ResourceMapper {
        ResourceMapper { resources }
    }

    /// Replaces the resources, e.g. when a cycle brings a new list.
    pub fn update(&mut self, resources: Vec<ApiResource>) {
        self.resources = resources;
    }

    /// No resources known yet.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The resource `name` designates, if the cluster has it.
    pub fn resolve(&self, name: &str) -> Option<ResolvedResource> {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        // `deployments.apps` and `pods`: try the whole name first (without a group), then split
        // at each dot so groups with dots (`networking.k8s.io`) work.
        let candidates = std::iter::once((name, None)).chain(
            name.match_indices('.')
                .map(|(i, _)| (&name[..i], Some(&name[i + 1..]))),
        );
        for (base, group) in candidates {
            let matching = |r: &&ApiResource| {
                group.is_none_or(|g| r.group.eq_ignore_ascii_case(g))
                    && (r.resource.eq_ignore_ascii_case(base)
                        || r.singular.eq_ignore_ascii_case(base)
                        || r.kind.eq_ignore_ascii_case(base))
            };
            let found = self
                .resources
                .iter()
                .filter(matching)
                .min_by_key(|r| !r.group.is_empty());
            if let Some(r) = found {
                return Some(ResolvedResource {
                    qualified: r.qualified(),
                    namespaced: r.namespaced,
                    kind: r.kind.clone(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, plural: &str, singular: &str, kind: &str, ns: bool) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: "v1".into(),
            resource: plural.into(),
            singular: singular.into(),
            kind: kind.into(),
            namespaced: ns,
        }
    }

    fn mapper() -> ResourceMapper {
        ResourceMapper::new(vec![
            res("", "pods", "pod", "Pod", true),
            res("", "nodes", "node", "Node", false),
            res("", "events", "event", "Event", true),
            res("apps", "deployments", "deployment", "Deployment", true),
            res("events.k8s.io", "events", "event", "Event", true),
            res("networking.k8s.io", "ingresses", "ingress", "Ingress", true),
        ])
    }

    #[test]
    fn kubectl_spellings_resolve_to_the_canonical_name() {
        let m = mapper();
        for name in [
            "deployments",
            "deployment",
            "Deployment",
            "DEPLOYMENTS.apps",
            "deployment.apps",
        ] {
            let r = m.resolve(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(r.qualified, "deployments.apps", "{name}");
            assert!(r.namespaced);
            assert_eq!(r.kind, "Deployment");
        }
        for name in [
            "ingress",
            "Ingress.networking.k8s.io",
            "ingresses.networking.k8s.io",
        ] {
            assert_eq!(
                m.resolve(name).unwrap().qualified,
                "ingresses.networking.k8s.io",
                "{name}"
            );
        }
        let node = m.resolve("Node").unwrap();
        assert_eq!((node.qualified.as_str(), node.namespaced), ("nodes", false));
    }

    #[test]
    fn core_wins_without_a_group_and_unknown_names_resolve_to_nothing() {
        let m = mapper();
        assert_eq!(m.resolve("events").unwrap().qualified, "events");
        assert_eq!(
            m.resolve("events.events.k8s.io").unwrap().qualified,
            "events.events.k8s.io"
        );
        assert_eq!(m.resolve("deployments.batch"), None);
        assert_eq!(m.resolve("widgets"), None);
        assert_eq!(m.resolve(""), None);
        assert!(ResourceMapper::default().resolve("pods").is_none());
    }
}
