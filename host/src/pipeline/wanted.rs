//! Which samples the plugins read this cycle, so a cycle scrapes and decodes only those: an
//! endpoint no plugin reads is not fetched, and a family no plugin names is not kept.

use crate::plugins::PluginSet;
use crate::samples::Source;

/// Metric-name patterns per source (exact names, or prefixes written `name*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    patterns: [Vec<String>; Source::ALL.len()],
    /// Prometheus inputs: (source, backend as the plan names it, query), deduplicated.
    queries: Vec<(Source, String, String)>,
}

impl Wanted {
    /// What the configured plugins of `set` read.
    pub fn of(set: &PluginSet) -> Wanted {
        let inputs: Vec<_> = set.plans().flat_map(|(_, plan)| &plan.inputs).collect();
        let mut wanted = Wanted::from_inputs(
            inputs
                .iter()
                .filter(|i| !i.source.is_prometheus())
                .map(|input| (input.source, input.name.as_str())),
        );
        for input in inputs.into_iter().filter(|i| i.source.is_prometheus()) {
            wanted.add_query(input.source, &input.backend, &input.name);
        }
        wanted
    }

    /// Adds a Prometheus input (once: plugins asking for the same query share one request).
    pub fn add_query(&mut self, source: Source, backend: &str, query: &str) {
        let known = self
            .queries
            .iter()
            .any(|(s, b, q)| *s == source && b == backend && q == query);
        if !known {
            self.queries
                .push((source, backend.to_owned(), query.to_owned()));
        }
    }

    /// The Prometheus inputs: (source, backend as named, empty for the default; query).
    pub fn queries(&self) -> impl Iterator<Item = (Source, &str, &str)> {
        self.queries
            .iter()
            .map(|(s, b, q)| (*s, b.as_str(), q.as_str()))
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

    /// Some plugin reads a kubelet endpoint.
    pub fn wants_kubelets(&self) -> bool {
        [
            Source::KubeletResource,
            Source::KubeletSummary,
            Source::KubeletCadvisor,
        ]
        .into_iter()
        .any(|s| self.wants(s))
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
        assert!(wanted.wants_kubelets());
        assert!(!wanted.wants(Source::KubeletCadvisor));
        assert!(wanted.matches(Source::KubeletSummary, "pod_network_receive_bytes_total"));
        assert!(!wanted.matches(Source::KubeletSummary, "node_network_receive_bytes_total"));
        assert!(wanted.matches(Source::Cluster, "kube_pod_status_phase"));
        assert!(!wanted.matches(Source::Cluster, "kube_pod_status_phase_x"));
        assert!(!wanted.matches(Source::KubeletResource, "kube_pod_status_phase"));
        assert_eq!(wanted.patterns[Source::Cluster.index()].len(), 1);
    }

    #[test]
    fn queries_are_deduplicated_by_source_backend_and_query() {
        let mut wanted = Wanted::default();
        wanted.add_query(Source::Prometheus, "", "up");
        wanted.add_query(Source::Prometheus, "", "up");
        wanted.add_query(Source::Prometheus, "b", "up");
        wanted.add_query(Source::PrometheusSeries, "", "up");
        let got: Vec<_> = wanted.queries().collect();
        assert_eq!(
            got,
            [
                (Source::Prometheus, "", "up"),
                (Source::Prometheus, "b", "up"),
                (Source::PrometheusSeries, "", "up")
            ]
        );
        assert!(!wanted.wants(Source::Prometheus));
        assert!(!wanted.wants_kubelets());
    }
}
