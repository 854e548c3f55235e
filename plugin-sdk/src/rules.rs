//! Config-driven routing of per-series values to published metrics: the rule format shared by
//! the `rate`, `ewma` and `pod-network` plugins, usable by any plugin that maps series to
//! custom, external or derived metrics.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

use crate::derived::DerivedEmitter;
use crate::object::ObjectRef;
use crate::selector::Selector;
use crate::types::{
    CustomValue, CycleOutput, ExternalValue, InputSpec, Label, MetricSpec, Plan, Series, Source,
};

/// Where a rule's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A custom metric on objects of this resource (one of [`OBJECT_RESOURCES`]), found from
    /// each series' labels ([`ObjectRef::from_labels`]).
    Object(String),
    /// An external metric.
    External,
    /// A derived series only, for later plugins.
    Derived,
}

/// The object resources the gateway serves custom metrics for.
pub const OBJECT_RESOURCES: [&str; 4] = ["pods", "nodes", "namespaces", "deployments.apps"];

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Target, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "external" => Ok(Target::External),
            "derived" => Ok(Target::Derived),
            resource if OBJECT_RESOURCES.contains(&resource) => Ok(Target::Object(text)),
            _ => Err(serde::de::Error::custom(format!(
                "unknown target {text:?}: expected external, derived, {}",
                OBJECT_RESOURCES.join(", ")
            ))),
        }
    }
}

/// One rule: which series, and the metric their values are published as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Input source.
    pub source: Source,
    /// Series name, `prefix*`, or the PromQL query for source `prometheus`.
    pub series: String,
    /// Prometheus only: the backend's name (default: the default backend).
    #[serde(default)]
    pub backend: String,
    /// Only series whose labels match (`container!=POD,namespace in (a,b)`); default: all.
    #[serde(default, rename = "match")]
    pub matcher: Selector,
    /// The published metric (or derived series) name.
    pub metric: String,
    /// Where values go: an object resource, `external` or `derived`.
    pub target: Target,
    /// Labels kept on published values; values of the series that agree on the target object
    /// and these labels are summed. Default: none for object targets (one value per object, e.g.
    /// a pod's containers summed), every label for `external` and `derived`.
    #[serde(default)]
    pub keep_labels: Option<Vec<String>>,
    /// External only: each value belongs to the namespace in its series' `namespace` label
    /// (series without one are skipped). Default false: served in every namespace.
    #[serde(default)]
    pub namespaced: bool,
    /// How long a value stays servable after its timestamp, ms; 0 (default) for the host's
    /// default.
    #[serde(default)]
    pub max_age_ms: u64,
}

impl Rule {
    /// The metric spec this rule publishes, if it publishes one.
    fn metric_spec(&self) -> Option<MetricSpec> {
        let spec = match &self.target {
            Target::Object(resource) => MetricSpec::custom(&self.metric, resource),
            Target::External => MetricSpec::external(&self.metric, self.namespaced),
            Target::Derived => return None,
        };
        Some(spec.with_max_age_ms(self.max_age_ms))
    }

    fn kept_labels(&self, labels: &[Label]) -> Vec<Label> {
        match (&self.keep_labels, &self.target) {
            (Some(keep), _) => labels
                .iter()
                .filter(|l| keep.contains(&l.name))
                .cloned()
                .collect(),
            (None, Target::Object(_)) => Vec::new(),
            (None, _) => labels.to_vec(),
        }
    }
}

/// Validated rules and the plan they make.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Input index of each rule.
    inputs: Vec<u32>,
    plan: Plan,
}

impl RuleSet {
    /// Validates `rules` and builds their plan (inputs shared between rules that read the same
    /// series).
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, String> {
        if rules.is_empty() {
            return Err("no rules: give at least one".to_owned());
        }
        let mut plan = Plan::new();
        let mut inputs = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            if rule.metric.is_empty() || rule.series.is_empty() {
                return Err(format!("rule {i}: `series` and `metric` must not be empty"));
            }
            if rule.namespaced && rule.target != Target::External {
                return Err(format!(
                    "rule {i} ({}): `namespaced` applies to external targets only",
                    rule.metric
                ));
            }
            let input = match rule.source {
                Source::Prometheus => InputSpec::prometheus(&rule.backend, &rule.series),
                Source::PrometheusSeries => {
                    InputSpec::prometheus_series(&rule.backend, &rule.series)
                }
                Source::PrometheusLabels => {
                    InputSpec::prometheus_labels(&rule.backend, &rule.series)
                }
                Source::PrometheusSeriesShapes => {
                    InputSpec::prometheus_series_shapes(&rule.backend, &rule.series)
                }
                source if rule.backend.is_empty() => InputSpec::new(source, &rule.series),
                _ => {
                    return Err(format!(
                        "rule {i} ({}): `backend` applies to the prometheus sources only",
                        rule.metric
                    ));
                }
            };
            inputs.push(plan.add_input(input));
            match rule.metric_spec() {
                Some(spec) => plan
                    .add_metric(spec)
                    .map_err(|e| format!("rule {i}: {e}"))?,
                None => plan.add_derived(&rule.metric),
            }
        }
        Ok(RuleSet {
            rules,
            inputs,
            plan,
        })
    }

    /// The plan: inputs, published metrics and derived series.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Indices of the rules that take `series` (its input, name and labels match).
    pub fn matching(&self, series: &Series) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(i, rule)| {
                self.inputs[*i] == series.input
                    && self
                        .plan
                        .inputs
                        .get(series.input as usize)
                        .is_some_and(|input| input.matches_name(&series.name))
                    && rule.matcher.matches(&series.labels)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Where `series` goes under rule `rule`: the object (or namespace) and kept labels, or
    /// `None` when its labels do not name the rule's target.
    fn place(&self, rule: usize, series: &Series) -> Option<(Place, Vec<Label>)> {
        let r = &self.rules[rule];
        let place = match &r.target {
            Target::Object(resource) => {
                Place::Object(ObjectRef::from_labels(resource, &series.labels)?)
            }
            Target::External if r.namespaced => Place::External(
                series
                    .label("namespace")
                    .filter(|ns| !ns.is_empty())?
                    .to_owned(),
            ),
            Target::External => Place::External(String::new()),
            Target::Derived => Place::Derived,
        };
        Some((place, r.kept_labels(&series.labels)))
    }
}

/// Where a group of summed values goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    Object(ObjectRef),
    /// External: the namespace, empty when not namespaced.
    External(String),
    Derived,
}

/// One cycle's sum of a group.
#[derive(Debug, Clone, Copy)]
struct Sum {
    value: f64,
    timestamp_ms: i64,
    window_ms: u64,
}

/// Values of one rule that land on one object (or namespace) with the same kept labels.
#[derive(Debug)]
struct Group {
    rule: usize,
    place: Place,
    labels: Vec<Label>,
    /// Live series routed here.
    series: u32,
    sum: Option<Sum>,
}

/// Group ids of one series: where its values go, one per matching rule that can place it.
pub type Routes = Vec<u32>;

/// Routes per-series values to published values following a [`RuleSet`]: each series is
/// routed once when it appears ([`Router::route`]), so a sample costs an addition; values
/// landing on the same object (or namespace) and kept labels are summed, with the oldest
/// timestamp and the longest window; [`Router::finish`] writes a cycle's sums out.
#[derive(Debug)]
pub struct Router {
    rules: RuleSet,
    /// Groups by id; `None` for free slots.
    groups: Vec<Option<Group>>,
    free: Vec<u32>,
    index: HashMap<(usize, Place, Vec<Label>), u32>,
    /// Groups with a sum this cycle.
    touched: Vec<u32>,
}

impl Router {
    /// Routes by `rules`.
    pub fn new(rules: RuleSet) -> Router {
        Router {
            rules,
            groups: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            touched: Vec::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The plan of the rules.
    pub fn plan(&self) -> &Plan {
        self.rules.plan()
    }

    /// Routes a new series (e.g. from [`crate::SeriesTable::apply_with`]); give the routes back
    /// with [`Router::release`] when the series is removed.
    pub fn route(&mut self, series: &Series) -> Routes {
        let mut routes = Routes::new();
        for rule in self.rules.matching(series) {
            let Some((place, labels)) = self.rules.place(rule, series) else {
                continue;
            };
            let key = (rule, place, labels);
            let id = match self.index.get(&key) {
                Some(&id) => id,
                None => {
                    let (rule, place, labels) = key.clone();
                    let group = Some(Group {
                        rule,
                        place,
                        labels,
                        series: 0,
                        sum: None,
                    });
                    let id = match self.free.pop() {
                        Some(id) => {
                            self.groups[id as usize] = group;
                            id
                        }
                        None => {
                            self.groups.push(group);
                            u32::try_from(self.groups.len() - 1).unwrap_or(u32::MAX)
                        }
                    };
                    self.index.insert(key, id);
                    id
                }
            };
            if let Some(Some(group)) = self.groups.get_mut(id as usize) {
                group.series += 1;
            }
            routes.push(id);
        }
        routes
    }

    /// Gives back the routes of a removed series; groups no series uses any more are dropped.
    pub fn release(&mut self, routes: &[u32]) {
        for &id in routes {
            let Some(slot) = self.groups.get_mut(id as usize) else {
                continue;
            };
            let Some(group) = slot else {
                continue;
            };
            group.series = group.series.saturating_sub(1);
            if group.series == 0 && group.sum.is_none() {
                if let Some(group) = slot.take() {
                    self.index.remove(&(group.rule, group.place, group.labels));
                }
                self.free.push(id);
            }
        }
    }

    /// Adds a value to each of `routes`.
    pub fn add(&mut self, routes: &[u32], timestamp_ms: i64, value: f64, window_ms: u64) {
        for &id in routes {
            let Some(Some(group)) = self.groups.get_mut(id as usize) else {
                continue;
            };
            match &mut group.sum {
                Some(s) => {
                    s.value += value;
                    s.timestamp_ms = s.timestamp_ms.min(timestamp_ms);
                    s.window_ms = s.window_ms.max(window_ms);
                }
                None => {
                    group.sum = Some(Sum {
                        value,
                        timestamp_ms,
                        window_ms,
                    });
                    self.touched.push(id);
                }
            }
        }
    }

    /// Writes the cycle's sums into `out`, in the order their groups were created (derived
    /// series through `derived`, whose cycle it also ends), and starts a new cycle.
    pub fn finish(&mut self, derived: &mut DerivedEmitter, out: &mut CycleOutput) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        for &id in &touched {
            let Some(Some(group)) = self.groups.get_mut(id as usize) else {
                continue;
            };
            let Some(sum) = group.sum.take() else {
                continue;
            };
            let metric = &self.rules.rules[group.rule].metric;
            match &group.place {
                Place::Object(object) => out.custom.push(CustomValue {
                    metric: metric.clone(),
                    object: object.clone(),
                    labels: group.labels.clone(),
                    value: sum.value,
                    timestamp_ms: sum.timestamp_ms,
                    window_ms: sum.window_ms,
                }),
                Place::External(namespace) => out.external.push(ExternalValue {
                    metric: metric.clone(),
                    namespace: namespace.clone(),
                    labels: group.labels.clone(),
                    value: sum.value,
                    timestamp_ms: sum.timestamp_ms,
                    window_ms: sum.window_ms,
                }),
                Place::Derived => {
                    derived.emit(out, metric, &group.labels, sum.timestamp_ms, sum.value);
                }
            }
            // A group released while it had a sum goes now.
            if group.series == 0 {
                self.release_empty(id);
            }
        }
        touched.clear();
        self.touched = touched;
        derived.finish(out);
    }

    fn release_empty(&mut self, id: u32) {
        if let Some(slot) = self.groups.get_mut(id as usize)
            && let Some(group) = slot.take()
        {
            self.index.remove(&(group.rule, group.place, group.labels));
            self.free.push(id);
        }
    }

    /// Number of live groups (objects, namespaces or derived series values go to).
    pub fn groups(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::labels;

    fn rules(json: &str) -> Result<RuleSet, String> {
        let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        RuleSet::new(rules)
    }

    #[test]
    fn builds_a_plan_with_shared_inputs() {
        let set = rules(
            r#"[
            {"source":"kubelet-resource","series":"c_total","metric":"a","target":"pods"},
            {"source":"kubelet-resource","series":"c_total","metric":"b","target":"external","namespaced":true},
            {"source":"cluster","series":"x_*","metric":"c","target":"derived"}
        ]"#,
        )
        .unwrap();
        let plan = set.plan();
        assert_eq!(plan.inputs.len(), 2);
        assert_eq!(plan.metrics.len(), 2);
        assert_eq!(plan.metrics[0], MetricSpec::custom("a", "pods"));
        assert_eq!(plan.metrics[1], MetricSpec::external("b", true));
        assert_eq!(plan.derived, vec!["c".to_owned()]);
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in [
            r#"[]"#,
            r#"[{"source":"cluster","series":"x","metric":"m","target":"widgets"}]"#,
            r#"[{"source":"cluster","series":"x","metric":"m","target":"pods","namespaced":true}]"#,
            r#"[{"source":"cluster","series":"x","metric":"m","target":"pods","typo":1}]"#,
            r#"[{"source":"cluster","series":"x","metric":"m","target":"pods","match":"a in ("}]"#,
            r#"[{"source":"cluster","series":"x","metric":"m","target":"pods","backend":"b"}]"#,
        ] {
            assert!(rules(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn matches_input_name_prefix_and_labels() {
        let set = rules(
            r#"[
            {"source":"cluster","series":"x_*","match":"container!=POD","metric":"m","target":"pods"},
            {"source":"cluster","series":"x_a","metric":"n","target":"pods"}
        ]"#,
        )
        .unwrap();
        let s = |name: &str, container: &str| Series {
            id: 1,
            input: 0,
            name: name.into(),
            labels: labels(&[("container", container)]),
        };
        assert_eq!(set.matching(&s("x_a", "app")), vec![0]);
        assert!(set.matching(&s("x_a", "POD")).is_empty());
        assert!(set.matching(&s("y", "app")).is_empty());
        let other_input = Series {
            input: 1,
            ..s("x_a", "app")
        };
        assert_eq!(set.matching(&other_input), vec![1]);
    }

    #[test]
    fn sums_by_object_and_kept_labels() {
        let set = rules(
            r#"[
            {"source":"cluster","series":"x","metric":"pod_m","target":"pods"},
            {"source":"cluster","series":"x","metric":"ext_m","target":"external","keep_labels":["container"]},
            {"source":"cluster","series":"x","metric":"der_m","target":"derived"}
        ]"#,
        )
        .unwrap();
        let series = |id, pod: &str, container: &str| Series {
            id,
            input: 0,
            name: "x".into(),
            labels: labels(&[("namespace", "ns"), ("pod", pod), ("container", container)]),
        };
        let (a, b, c) = (
            series(1, "p", "app"),
            series(2, "p", "side"),
            series(3, "q", "app"),
        );
        let mut router = Router::new(set);
        let (ra, rb, rc) = (router.route(&a), router.route(&b), router.route(&c));
        assert_eq!(ra.len(), 3);
        router.add(&ra, 1_000, 1.0, 10);
        router.add(&rb, 900, 2.0, 20);
        router.add(&rc, 1_000, 4.0, 10);
        let mut derived = DerivedEmitter::new();
        let mut out = CycleOutput::new();
        router.finish(&mut derived, &mut out);

        assert_eq!(out.custom.len(), 2);
        let p = &out.custom[0];
        assert_eq!(
            (p.object.name.as_str(), p.value, p.timestamp_ms, p.window_ms),
            ("p", 3.0, 900, 20)
        );
        assert!(p.labels.is_empty());
        let ext: Vec<(String, f64)> = out
            .external
            .iter()
            .map(|e| (e.labels[0].value.clone(), e.value))
            .collect();
        assert_eq!(ext, vec![("app".to_owned(), 5.0), ("side".to_owned(), 2.0)]);
        assert_eq!(
            out.derived_added.len(),
            3,
            "derived keeps every label: one series each"
        );

        // Sums start over each cycle; groups go with their last series.
        let groups = router.groups();
        router.add(&ra, 2_000, 1.0, 10);
        let mut out = CycleOutput::new();
        router.finish(&mut derived, &mut out);
        assert_eq!(out.custom.len(), 1);
        assert_eq!(out.custom[0].value, 1.0);
        router.release(&rb);
        assert_eq!(
            router.groups(),
            groups - 2,
            "b's external and derived groups are gone"
        );
        router.release(&ra);
        router.release(&rc);
        assert_eq!(router.groups(), 0);
        // Freed slots are reused.
        let mut again = router.route(&a);
        again.sort_unstable();
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|id| (*id as usize) < 7), "{again:?}");
    }

    #[test]
    fn series_whose_labels_name_no_target_are_not_routed() {
        let set = rules(
            r#"[
            {"source":"cluster","series":"x","metric":"m","target":"pods"},
            {"source":"cluster","series":"x","metric":"e","target":"external","namespaced":true}
        ]"#,
        )
        .unwrap();
        let mut router = Router::new(set);
        let s = Series {
            id: 1,
            input: 0,
            name: "x".into(),
            labels: labels(&[("pod", "p")]),
        };
        assert!(router.route(&s).is_empty());
    }
}
