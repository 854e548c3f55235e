//! Which samples the plugins read this cycle, so a cycle scrapes and decodes only those: an
//! endpoint no plugin reads is not fetched, and a family no plugin names is not kept.

use crate::plugins::PluginSet;
use crate::samples::Source;

/// Metric-name patterns per source (exact names, or prefixes written `name*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    patterns: [Vec<String>; Source::ALL.len()],
}

impl Wanted {
    /// What the configured plugins of `set` read.
    pub fn of(set: &PluginSet) -> Wanted {
        Wanted::from_inputs(
            set.plans()
                .flat_map(|(_, plan)| &plan.inputs)
                .map(|input| (input.source, input.name.as_str())),
        )
    }

    /// From (source, pattern) pairs.
    pub fn from_inputs<'a>(inputs: impl IntoIterator<Item = (Source, &'a str)>) -> Wanted {
        let mut wanted = Wanted::default();
        for (source, pattern) in inputs {
            let list = &mut wanted.patterns[source.index()];
            if !list.iter().any(|p| p == pattern) {
                list.push(pattern.to_owned());
            }
        }
        wanted
    }

    /// Some plugin reads `source`.
    pub fn wants(&self, source: Source) -> bool {
        !self.patterns[source.index()].is_empty()
    }

    /// Some plugin reads metric `name` of `source`.
    pub fn matches(&self, source: Source, name: &str) -> bool {
        self.patterns[source.index()]
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => p == name,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes_per_source() {
        let wanted = Wanted::from_inputs([
            (Source::KubeletSummary, "pod_network_*"),
            (Source::Cluster, "kube_pod_status_phase"),
            (Source::Cluster, "kube_pod_status_phase"),
        ]);
        assert!(wanted.wants(Source::KubeletSummary));
        assert!(!wanted.wants(Source::KubeletCadvisor));
        assert!(wanted.matches(Source::KubeletSummary, "pod_network_receive_bytes_total"));
        assert!(!wanted.matches(Source::KubeletSummary, "node_network_receive_bytes_total"));
        assert!(wanted.matches(Source::Cluster, "kube_pod_status_phase"));
        assert!(!wanted.matches(Source::Cluster, "kube_pod_status_phase_x"));
        assert!(!wanted.matches(Source::KubeletResource, "kube_pod_status_phase"));
        assert_eq!(wanted.patterns[Source::Cluster.index()].len(), 1);
    }
}
