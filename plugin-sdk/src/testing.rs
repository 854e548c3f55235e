//! Native testing of plugins, without wasm: build cycles from named series, run
//! [`Plugin::process`], query the output.
//!
//! ```
//! # use metrics_gateway_sdk::*;
//! # #[derive(serde::Deserialize)] struct Config {}
//! # struct Count;
//! # impl Plugin for Count {
//! #     type Config = Config;
//! #     fn configure(_: Config) -> Result<(Self, Plan), String> {
//! #         let mut plan = Plan::new();
//! #         plan.add_input(InputSpec::new(Source::Cluster, "kube_pod_info"));
//! #         plan.add_metric(MetricSpec::external("pods", false))?;
//! #         Ok((Count, plan))
//! #     }
//! #     fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
//! #         let mut out = CycleOutput::new();
//! #         out.push_external("pods", "", input.ids.len() as f64, input.timestamp_ms);
//! #         Ok(out)
//! #     }
//! # }
//! use metrics_gateway_sdk::testing::Harness;
//!
//! let mut h = Harness::<Count>::new("{}").unwrap();
//! let out = h
//!     .cycle(15_000)
//!     .sample("kube_pod_info", &[("namespace", "a"), ("pod", "p")], 1.0)
//!     .sample("kube_pod_info", &[("namespace", "a"), ("pod", "q")], 1.0)
//!     .run()
//!     .unwrap();
//! assert_eq!(out.external("pods", ""), Some(2.0));
//! ```
//!
//! Every output is checked against the contract (metrics in the plan with the right kind and
//! resource, namespaces as the spec says, finite values, derived ids announced before use);
//! a violation panics with what is wrong, unless the harness is [`Harness::lenient`].

use std::collections::{HashMap, HashSet};

use crate::object::ObjectRef;
use crate::types::{
    CustomValue, CycleInput, CycleOutput, ExternalValue, Label, MetricKind, Plan, Series, Source,
    labels,
};
use crate::{Plugin, configure_json};

/// Key of an input series: input index, name and labels.
type SeriesKey = (u32, String, Vec<Label>);

/// Runs one plugin instance over cycles, as the host does.
pub struct Harness<P: Plugin> {
    config: String,
    plugin: P,
    plan: Plan,
    lenient: bool,
    /// Ids of the input series by key.
    ids: HashMap<SeriesKey, u64>,
    /// Ids sent to the instance and not removed since.
    live: HashSet<u64>,
    next_id: u64,
    /// Live derived series of the instance.
    derived: HashMap<u64, Series>,
}

impl<P: Plugin> Harness<P> {
    /// Configures an instance from its JSON config text.
    pub fn new(config: &str) -> Result<Harness<P>, String> {
        let (plugin, plan) = configure_json::<P>(config)?;
        Ok(Harness {
            config: config.to_owned(),
            plugin,
            plan,
            lenient: false,
            ids: HashMap::new(),
            live: HashSet::new(),
            next_id: 0,
            derived: HashMap::new(),
        })
    }

    /// Stops checking outputs against the contract (for plugins that break it on purpose).
    pub fn lenient(mut self) -> Harness<P> {
        self.lenient = true;
        self
    }

    /// The plan the instance returned.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plugin instance.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// Starts a cycle at `timestamp_ms` (interval 15 s; samples default to this timestamp).
    pub fn cycle(&mut self, timestamp_ms: i64) -> Cycle<'_, P> {
        Cycle {
            harness: self,
            timestamp_ms,
            interval_ms: 15_000,
            rows: Vec::new(),
        }
    }

    /// Replaces the instance as the host does after a fault: snapshots the old one, configures
    /// a new one with the same config, and restores the snapshot into it. The next cycle
    /// announces every series to the new instance again.
    pub fn restart(&mut self) -> Result<(), String> {
        let state = self.plugin.snapshot();
        self.restart_with(&state)
    }

    /// Replaces the instance by a fresh one restored from `state` (empty: nothing restored).
    pub fn restart_with(&mut self, state: &[u8]) -> Result<(), String> {
        let (mut plugin, plan) = configure_json::<P>(&self.config)?;
        if !state.is_empty() {
            plugin.restore(state)?;
        }
        self.plugin = plugin;
        self.plan = plan;
        self.live.clear();
        self.derived.clear();
        Ok(())
    }

    /// The index of the first input of the plan that `name` from `source` answers.
    fn input_for(&self, source: Option<Source>, name: &str) -> u32 {
        let found = self
            .plan
            .inputs
            .iter()
            .position(|i| source.is_none_or(|s| s == i.source) && i.matches_name(name));
        match found {
            Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
            None => panic!(
                "series {name:?} (source {source:?}) answers no input of the plan: {:?}",
                self.plan.inputs
            ),
        }
    }

    fn run(
        &mut self,
        cycle: Vec<Row>,
        timestamp_ms: i64,
        interval_ms: u64,
    ) -> Result<Output, String> {
        let mut input = CycleInput {
            timestamp_ms,
            interval_ms,
            ..CycleInput::default()
        };
        let mut present = HashSet::new();
        for row in cycle {
            let key = (row.input, row.name, row.labels);
            let id = match self.ids.get(&key) {
                Some(&id) => id,
                None => {
                    self.next_id += 1;
                    self.ids.insert(key.clone(), self.next_id);
                    self.next_id
                }
            };
            if present.insert(id) && !self.live.contains(&id) {
                input.added.push(Series {
                    id,
                    input: key.0,
                    name: key.1.clone(),
                    labels: key.2.clone(),
                });
            }
            input.ids.push(id);
            input.timestamps_ms.push(row.timestamp_ms);
            input.values.push(row.value);
        }
        input.removed = self.live.difference(&present).copied().collect();
        input.removed.sort_unstable();
        self.ids.retain(|_, id| present.contains(id));
        self.live = present;

        let output = self.plugin.process(&input)?;
        let problems = self.apply_derived(&output);
        let problems = [problems, check(&self.plan, &output)].concat();
        if !self.lenient && !problems.is_empty() {
            panic!(
                "the plugin's output breaks the contract:\n{}",
                problems.join("\n")
            );
        }
        Ok(Output {
            output,
            derived: self.derived.clone(),
        })
    }

    /// Tracks the instance's derived series; returns contract violations.
    fn apply_derived(&mut self, out: &CycleOutput) -> Vec<String> {
        let mut problems = Vec::new();
        for id in &out.derived_removed {
            if self.derived.remove(id).is_none() {
                problems.push(format!("derived-removed id {id} was never added"));
            }
        }
        for s in &out.derived_added {
            if !self.plan.derived.contains(&s.name) {
                problems.push(format!(
                    "derived series {:?} is not in plan.derived",
                    s.name
                ));
            }
            if self.derived.insert(s.id, s.clone()).is_some() {
                problems.push(format!("derived id {} added twice", s.id));
            }
        }
        let columns = [
            out.derived_ids.len(),
            out.derived_timestamps_ms.len(),
            out.derived_values.len(),
        ];
        if columns.iter().any(|&n| n != columns[0]) {
            problems.push(format!("derived columns differ in length: {columns:?}"));
        }
        let mut seen = HashSet::new();
        for (id, value) in out.derived_ids.iter().zip(&out.derived_values) {
            if !self.derived.contains_key(id) {
                problems.push(format!("derived sample for unannounced id {id}"));
            }
            if !seen.insert(id) {
                problems.push(format!("two derived samples for id {id} in one cycle"));
            }
            if !value.is_finite() {
                problems.push(format!("derived id {id}: value {value} is not finite"));
            }
        }
        problems
    }
}

/// Contract violations of `out` against `plan` (custom and external values).
fn check(plan: &Plan, out: &CycleOutput) -> Vec<String> {
    let mut problems = Vec::new();
    for v in &out.custom {
        let spec = plan.metrics.iter().find(|m| {
            m.name == v.metric && m.kind == MetricKind::Custom && m.resource == v.object.resource
        });
        match spec {
            None => problems.push(format!(
                "custom value of {:?} on {:?}: no such custom metric in the plan",
                v.metric, v.object.resource
            )),
            Some(spec) if spec.namespaced == v.object.namespace.is_empty() => {
                problems.push(format!(
                    "custom value of {:?} on {:?}: namespace {:?} does not fit namespaced = {}",
                    v.metric, v.object, v.object.namespace, spec.namespaced
                ))
            }
            Some(_) => {}
        }
        if !v.value.is_finite() {
            problems.push(format!(
                "custom value of {:?} on {:?} is {}",
                v.metric, v.object, v.value
            ));
        }
    }
    for v in &out.external {
        match plan.metric(&v.metric, MetricKind::External) {
            None => problems.push(format!(
                "external value of {:?}: no such external metric in the plan",
                v.metric
            )),
            Some(spec) if spec.namespaced == v.namespace.is_empty() => problems.push(format!(
                "external value of {:?}: namespace {:?} does not fit namespaced = {}",
                v.metric, v.namespace, spec.namespaced
            )),
            Some(_) => {}
        }
        if !v.value.is_finite() {
            problems.push(format!("external value of {:?} is {}", v.metric, v.value));
        }
    }
    problems
}

/// One sample to send.
struct Row {
    input: u32,
    name: String,
    labels: Vec<Label>,
    timestamp_ms: i64,
    value: f64,
}

/// A cycle being built; [`Cycle::run`] sends it. Series sent in the previous cycle and missing
/// from this one are announced as removed.
pub struct Cycle<'h, P: Plugin> {
    harness: &'h mut Harness<P>,
    timestamp_ms: i64,
    interval_ms: u64,
    rows: Vec<Row>,
}

impl<P: Plugin> Cycle<'_, P> {
    /// Sets the collection interval (default 15 s).
    pub fn interval_ms(mut self, interval_ms: u64) -> Self {
        self.interval_ms = interval_ms;
        self
    }

    /// A sample of series `name{labels}` at the cycle's timestamp, for the first input of the
    /// plan that the name answers (whatever its source). Panics when no input does.
    pub fn sample(self, name: &str, labels: &[(&str, &str)], value: f64) -> Self {
        let timestamp_ms = self.timestamp_ms;
        self.push(None, name, labels, timestamp_ms, value)
    }

    /// A sample with its own timestamp.
    pub fn sample_at(
        self,
        name: &str,
        labels: &[(&str, &str)],
        timestamp_ms: i64,
        value: f64,
    ) -> Self {
        self.push(None, name, labels, timestamp_ms, value)
    }

    /// A sample for the first input of `source` that `name` answers.
    pub fn sample_from(
        self,
        source: Source,
        name: &str,
        labels: &[(&str, &str)],
        timestamp_ms: i64,
        value: f64,
    ) -> Self {
        self.push(Some(source), name, labels, timestamp_ms, value)
    }

    fn push(
        mut self,
        source: Option<Source>,
        name: &str,
        pairs: &[(&str, &str)],
        timestamp_ms: i64,
        value: f64,
    ) -> Self {
        let input = self.harness.input_for(source, name);
        self.rows.push(Row {
            input,
            name: name.to_owned(),
            labels: labels(pairs),
            timestamp_ms,
            value,
        });
        self
    }

    /// Runs the plugin over the cycle; `Err` is the plugin's own error.
    pub fn run(self) -> Result<Output, String> {
        self.harness
            .run(self.rows, self.timestamp_ms, self.interval_ms)
    }
}

/// One cycle's output, with lookups.
#[derive(Debug, Clone)]
pub struct Output {
    output: CycleOutput,
    /// The instance's live derived series after this cycle.
    derived: HashMap<u64, Series>,
}

impl Output {
    /// The raw output.
    pub fn raw(&self) -> &CycleOutput {
        &self.output
    }

    /// The value of custom metric `metric` for `object` (the first, if there are several).
    pub fn custom(&self, metric: &str, object: &ObjectRef) -> Option<f64> {
        self.custom_value(metric, object).map(|v| v.value)
    }

    /// The full custom value of `metric` for `object`.
    pub fn custom_value(&self, metric: &str, object: &ObjectRef) -> Option<&CustomValue> {
        self.output
            .custom
            .iter()
            .find(|v| v.metric == metric && v.object == *object)
    }

    /// Every custom value of `metric`.
    pub fn custom_values(&self, metric: &str) -> Vec<&CustomValue> {
        self.output
            .custom
            .iter()
            .filter(|v| v.metric == metric)
            .collect()
    }

    /// The value of external metric `metric` in `namespace` (empty: not namespaced) without
    /// labels, or the only one when it has labels.
    pub fn external(&self, metric: &str, namespace: &str) -> Option<f64> {
        let values = self.external_values(metric, namespace);
        match values.as_slice() {
            [one] => Some(one.value),
            _ => values.iter().find(|v| v.labels.is_empty()).map(|v| v.value),
        }
    }

    /// Every external value of `metric` in `namespace`.
    pub fn external_values(&self, metric: &str, namespace: &str) -> Vec<&ExternalValue> {
        self.output
            .external
            .iter()
            .filter(|v| v.metric == metric && v.namespace == namespace)
            .collect()
    }

    /// The value of derived series `name{labels}` emitted this cycle.
    pub fn derived(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let wanted = labels(pairs);
        let id = self
            .derived
            .values()
            .find(|s| s.name == name && s.labels == wanted)?
            .id;
        let row = self.output.derived_ids.iter().position(|&i| i == id)?;
        self.output.derived_values.get(row).copied()
    }

    /// Number of live derived series after this cycle.
    pub fn derived_live(&self) -> usize {
        self.derived.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{InputSpec, MetricSpec};

    /// Records its inputs; publishes what its config says.
    struct Echo {
        inputs: Vec<CycleInput>,
        publish: String,
    }

    #[derive(serde::Deserialize)]
    struct EchoConfig {
        #[serde(default)]
        publish: String,
    }

    impl Plugin for Echo {
        type Config = EchoConfig;

        fn configure(config: EchoConfig) -> Result<(Self, Plan), String> {
            let mut plan = Plan::new();
            plan.add_input(InputSpec::new(Source::Cluster, "a"));
            plan.add_input(InputSpec::new(Source::KubeletResource, "b_*"));
            plan.add_metric(MetricSpec::custom("m", "pods"))?;
            let echo = Echo {
                inputs: Vec::new(),
                publish: config.publish,
            };
            Ok((echo, plan))
        }

        fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
            self.inputs.push(input.clone());
            let mut out = CycleOutput::new();
            match self.publish.as_str() {
                "unknown" => {
                    out.push_custom("nope", ObjectRef::pod("ns", "p"), 1.0, 0);
                }
                "cluster-scoped-pod" => {
                    out.push_custom("m", ObjectRef::pod("", "p"), 1.0, 0);
                }
                _ => {}
            }
            Ok(out)
        }

        fn snapshot(&self) -> Vec<u8> {
            vec![self.inputs.len() as u8]
        }

        fn restore(&mut self, state: &[u8]) -> Result<(), String> {
            assert_eq!(state, [2]);
            Ok(())
        }
    }

    #[test]
    fn announces_series_once_and_removes_missing_ones() {
        let mut h = Harness::<Echo>::new("").unwrap();
        h.cycle(1_000)
            .sample("a", &[("x", "1")], 1.0)
            .sample_at("b_1", &[], 900, 2.0)
            .run()
            .unwrap();
        h.cycle(2_000)
            .sample("a", &[("x", "1")], 3.0)
            .run()
            .unwrap();
        h.cycle(3_000)
            .sample("a", &[("x", "1")], 4.0)
            .sample("b_1", &[], 5.0)
            .run()
            .unwrap();
        let inputs = &h.plugin().inputs;
        let first = &inputs[0];
        assert_eq!(first.added.len(), 2);
        assert_eq!((first.added[0].input, first.added[1].input), (0, 1));
        assert_eq!(first.timestamps_ms, vec![1_000, 900]);
        let (a, b) = (first.added[0].id, first.added[1].id);
        assert!(inputs[1].added.is_empty());
        assert_eq!(inputs[1].ids, vec![a]);
        assert_eq!(inputs[1].removed, vec![b]);
        assert_eq!(inputs[2].added.len(), 1);
        assert_ne!(
            inputs[2].added[0].id, b,
            "a series that comes back gets a new id"
        );
    }

    #[test]
    fn a_restarted_instance_gets_every_series_again_and_its_snapshot() {
        let mut h = Harness::<Echo>::new("{}").unwrap();
        h.cycle(0).sample("a", &[], 1.0).run().unwrap();
        h.cycle(1).sample("a", &[], 1.0).run().unwrap();
        h.restart().unwrap();
        h.cycle(2).sample("a", &[], 1.0).run().unwrap();
        assert_eq!(h.plugin().inputs.len(), 1);
        assert_eq!(h.plugin().inputs[0].added.len(), 1);
    }

    #[test]
    #[should_panic(expected = "answers no input")]
    fn a_sample_no_input_wants_is_a_test_bug() {
        let mut h = Harness::<Echo>::new("{}").unwrap();
        let _ = h.cycle(0).sample("c", &[], 1.0);
    }

    #[test]
    #[should_panic(expected = "no such custom metric")]
    fn outputs_are_checked_against_the_plan() {
        let mut h = Harness::<Echo>::new(r#"{"publish": "unknown"}"#).unwrap();
        let _ = h.cycle(0).run();
    }

    #[test]
    #[should_panic(expected = "does not fit namespaced")]
    fn namespaces_are_checked() {
        let mut h = Harness::<Echo>::new(r#"{"publish": "cluster-scoped-pod"}"#).unwrap();
        let _ = h.cycle(0).run();
    }

    #[test]
    fn lenient_harnesses_let_violations_through() {
        let mut h = Harness::<Echo>::new(r#"{"publish": "unknown"}"#)
            .unwrap()
            .lenient();
        let out = h.cycle(0).run().unwrap();
        assert_eq!(out.custom("nope", &ObjectRef::pod("ns", "p")), Some(1.0));
    }
}
