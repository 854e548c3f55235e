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
//!
//! As the host does, the harness sends the cluster's API resources ([`Harness::api_resources`])
//! on an instance's first cycle and whenever they change, leaves a failed input's series
//! ([`Cycle::fail`]) neither sent nor removed, and applies a `replan` from the next cycle,
//! announcing every series again.

use std::collections::{HashMap, HashSet};

use crate::object::ObjectRef;
use crate::types::{
    ApiResource, CustomValue, CycleInput, CycleOutput, ExternalValue, InputFailure, Label,
    MetricKind, Plan, ResourceValue, Series, Source, labels,
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
    /// Ids sent to the instance and not removed since, with their input.
    live: HashMap<u64, u32>,
    /// The cluster's API resources.
    api_resources: Vec<ApiResource>,
    /// The instance has the current `api_resources`.
    api_resources_sent: bool,
    /// Replans the instance returned, in order.
    replans: Vec<Plan>,
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
            live: HashMap::new(),
            api_resources: Vec::new(),
            api_resources_sent: false,
            replans: Vec::new(),
            next_id: 0,
            derived: HashMap::new(),
        })
    }

    /// Stops checking outputs against the contract (for plugins that break it on purpose).
    pub fn lenient(mut self) -> Harness<P> {
        self.lenient = true;
        self
    }

    /// The plan in force: the one `configure` returned, or the last replan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every replan the instance returned so far, in order.
    pub fn replans(&self) -> &[Plan] {
        &self.replans
    }

    /// Sets the cluster's API resources; the next cycle sends them when they changed (the first
    /// cycle of an instance always gets them).
    pub fn api_resources(&mut self, resources: Vec<ApiResource>) -> &mut Self {
        if resources != self.api_resources {
            self.api_resources = resources;
            self.api_resources_sent = false;
        }
        self
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
            failures: Vec::new(),
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
        self.api_resources_sent = false;
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
        failures: Vec<InputFailure>,
        timestamp_ms: i64,
        interval_ms: u64,
    ) -> Result<Output, String> {
        let mut input = CycleInput {
            timestamp_ms,
            interval_ms,
            api_resources: (!self.api_resources_sent).then(|| self.api_resources.clone()),
            ..CycleInput::default()
        };
        let failed = |index: u32| failures.iter().any(|f| f.input == index);
        let mut present = HashMap::new();
        for row in cycle {
            if failed(row.input) {
                continue;
            }
            let key = (row.input, row.name, row.labels);
            let id = match self.ids.get(&key) {
                Some(&id) => id,
                None => {
                    self.next_id += 1;
                    self.ids.insert(key.clone(), self.next_id);
                    self.next_id
                }
            };
            if present.insert(id, key.0).is_none() && !self.live.contains_key(&id) {
                input.added.push(Series {
                    id,
                    input: key.0,
                    name: key.1.clone(),
                    labels: key.2.clone(),
                });
            }
            if let Some((timestamp_ms, value)) = row.sample {
                input.ids.push(id);
                input.timestamps_ms.push(timestamp_ms);
                input.values.push(value);
            }
        }
        // A failed input's series stay live, unsent.
        for (&id, &index) in &self.live {
            if failed(index) {
                present.insert(id, index);
            }
        }
        input.removed = self
            .live
            .keys()
            .filter(|id| !present.contains_key(id))
            .copied()
            .collect();
        input.removed.sort_unstable();
        self.ids.retain(|_, id| present.contains_key(id));
        self.live = present;
        input.failures = failures;
        self.api_resources_sent = true;

        let output = self.plugin.process(&input)?;
        let problems = self.apply_derived(&output);
        let problems = [problems, check(&self.plan, &output)].concat();
        if let Some(plan) = &output.replan {
            // From the next cycle: the new plan, and every series announced again under it.
            self.replans.push(plan.clone());
            self.plan = plan.clone();
            self.live.clear();
            self.ids.clear();
        }
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
    for v in &out.resource {
        let spec = plan.metrics.iter().find(|m| {
            m.name == v.metric && m.kind == MetricKind::Resource && m.resource == v.object.resource
        });
        if spec.is_none() {
            problems.push(format!(
                "resource value of {:?} on {:?}: no such resource metric in the plan",
                v.metric, v.object.resource
            ));
        }
        if v.object.resource == "pods" && (v.object.namespace.is_empty() || v.container.is_empty())
        {
            problems.push(format!(
                "resource value of {:?} on {:?}: pods need a namespace and a container",
                v.metric, v.object
            ));
        }
        if !v.value.is_finite() || v.value < 0.0 {
            problems.push(format!(
                "resource value of {:?} on {:?} is {}",
                v.metric, v.object, v.value
            ));
        }
    }
    for f in &out.failed {
        if !plan.metrics.iter().any(|m| m.name == f.metric) {
            problems.push(format!("failed metric {:?} is not in the plan", f.metric));
        }
    }
    problems
}

/// One sample to send.
struct Row {
    input: u32,
    name: String,
    labels: Vec<Label>,
    /// Timestamp and value; `None` for a discovered series, announced without a sample.
    sample: Option<(i64, f64)>,
}

/// A cycle being built; [`Cycle::run`] sends it. Series sent in the previous cycle and missing
/// from this one are announced as removed.
pub struct Cycle<'h, P: Plugin> {
    harness: &'h mut Harness<P>,
    timestamp_ms: i64,
    interval_ms: u64,
    rows: Vec<Row>,
    failures: Vec<InputFailure>,
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
        self.push(None, name, labels, Some((timestamp_ms, value)))
    }

    /// A sample with its own timestamp.
    pub fn sample_at(
        self,
        name: &str,
        labels: &[(&str, &str)],
        timestamp_ms: i64,
        value: f64,
    ) -> Self {
        self.push(None, name, labels, Some((timestamp_ms, value)))
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
        self.push(Some(source), name, labels, Some((timestamp_ms, value)))
    }

    /// A series found by a discovery of `source` (`prometheus-series`, `prometheus-labels`,
    /// `prometheus-series-shapes`), announced as the host announces it: in `added` while it is
    /// present, without a sample; for shapes, with empty label values and once per shape.
    pub fn discovered(self, source: Source, name: &str, labels: &[(&str, &str)]) -> Self {
        if source == Source::PrometheusSeriesShapes {
            let shape: Vec<(&str, &str)> = labels.iter().map(|&(k, _)| (k, "")).collect();
            return self.push(Some(source), name, &shape, None);
        }
        self.push(Some(source), name, labels, None)
    }

    /// Label names listed by the plan's first `prometheus-labels` input, each a series named
    /// after it without labels or samples.
    pub fn label_names(self, names: &[&str]) -> Self {
        names.iter().fold(self, |cycle, name| {
            cycle.discovered(Source::PrometheusLabels, name, &[])
        })
    }

    fn push(
        mut self,
        source: Option<Source>,
        name: &str,
        pairs: &[(&str, &str)],
        sample: Option<(i64, f64)>,
    ) -> Self {
        let input = self.harness.input_for(source, name);
        self.rows.push(Row {
            input,
            name: name.to_owned(),
            labels: labels(pairs),
            sample,
        });
        self
    }

    /// Reports input `input` (an index into the plan's inputs) as failed this cycle with
    /// `message`: its samples in this cycle are not sent, and its series are not removed.
    pub fn fail(mut self, input: u32, message: &str) -> Self {
        self.failures.push(InputFailure {
            input,
            message: message.to_owned(),
        });
        self
    }

    /// Runs the plugin over the cycle; `Err` is the plugin's own error.
    pub fn run(self) -> Result<Output, String> {
        self.harness.run(
            self.rows,
            self.failures,
            self.timestamp_ms,
            self.interval_ms,
        )
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

    /// The resource value of `metric` for `object`'s `container` (empty for nodes).
    pub fn resource(&self, metric: &str, object: &ObjectRef, container: &str) -> Option<f64> {
        self.output
            .resource
            .iter()
            .find(|v: &&ResourceValue| {
                v.metric == metric && v.object == *object && v.container == container
            })
            .map(|v| v.value)
    }

    /// Why `metric` failed this cycle, if the plugin reported it failed.
    pub fn failed(&self, metric: &str) -> Option<&str> {
        self.output
            .failed
            .iter()
            .find(|f| f.metric == metric)
            .map(|f| f.message.as_str())
    }

    /// The replan returned this cycle.
    pub fn replan(&self) -> Option<&Plan> {
        self.output.replan.as_ref()
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
                "replan" if self.inputs.len() == 1 => {
                    let mut plan = Plan::new();
                    plan.add_input(InputSpec::new(Source::Cluster, "c"));
                    plan.add_input(InputSpec::new(Source::Cluster, "a"));
                    plan.add_metric(MetricSpec::custom("m", "pods"))?;
                    plan.add_metric(MetricSpec::external("n", false))?;
                    out.replan = Some(plan);
                }
                "fail" => out.fail("m", "input a failed"),
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

    /// Keeps the inputs of a discovery by shape.
    struct Shapes(Vec<CycleInput>);

    impl Plugin for Shapes {
        type Config = EchoConfig;

        fn configure(_: EchoConfig) -> Result<(Self, Plan), String> {
            let mut plan = Plan::new();
            plan.add_input(InputSpec::prometheus_series_shapes("", "{job=\"x\"}"));
            Ok((Shapes(Vec::new()), plan))
        }

        fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
            self.0.push(input.clone());
            Ok(CycleOutput::new())
        }
    }

    #[test]
    fn shapes_are_announced_once_with_empty_values() {
        let mut h = Harness::<Shapes>::new("{}").unwrap();
        h.cycle(0)
            .discovered(Source::PrometheusSeriesShapes, "up", &[("pod", "a")])
            .discovered(Source::PrometheusSeriesShapes, "up", &[("pod", "b")])
            .discovered(Source::PrometheusSeriesShapes, "up", &[])
            .run()
            .unwrap();
        let first = &h.plugin().0[0];
        let shapes: Vec<(u32, Option<&str>)> = first
            .added
            .iter()
            .map(|s| (s.input, s.label("pod")))
            .collect();
        assert_eq!(shapes, [(0, Some("")), (0, None)]);
        assert!(first.ids.is_empty(), "discoveries carry no samples");
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
    fn a_failed_inputs_series_are_neither_sent_nor_removed() {
        let mut h = Harness::<Echo>::new("{}").unwrap();
        h.cycle(0)
            .sample("a", &[], 1.0)
            .sample("b_1", &[], 2.0)
            .run()
            .unwrap();
        h.cycle(1)
            .sample("a", &[], 1.0)
            .sample("b_1", &[], 2.0)
            .fail(1, "prometheus \"main\": connection refused")
            .run()
            .unwrap();
        h.cycle(2).sample("a", &[], 1.0).run().unwrap();
        let inputs = &h.plugin().inputs;
        let b = inputs[0].added[1].id;
        assert_eq!(inputs[1].ids.len(), 1);
        assert!(inputs[1].removed.is_empty());
        assert_eq!(
            inputs[1].failure(1),
            Some("prometheus \"main\": connection refused")
        );
        assert_eq!(inputs[1].failure(0), None);
        assert_eq!(inputs[2].removed, vec![b]);
        assert!(inputs[2].failures.is_empty());
    }

    #[test]
    fn api_resources_arrive_first_and_on_change() {
        let pods = ApiResource {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            singular: "pod".into(),
            kind: "Pod".into(),
            namespaced: true,
        };
        let mut h = Harness::<Echo>::new("{}").unwrap();
        h.api_resources(vec![pods.clone()]);
        h.cycle(0).run().unwrap();
        h.cycle(1).run().unwrap();
        h.api_resources(vec![pods.clone()]);
        h.cycle(2).run().unwrap();
        let mut services = pods.clone();
        services.resource = "services".into();
        h.api_resources(vec![pods.clone(), services]);
        h.cycle(3).run().unwrap();
        let got: Vec<Option<usize>> = h
            .plugin()
            .inputs
            .iter()
            .map(|i| i.api_resources.as_ref().map(Vec::len))
            .collect();
        assert_eq!(got, [Some(1), None, None, Some(2)]);
        h.restart_with(&[]).unwrap();
        h.cycle(4).run().unwrap();
        assert_eq!(
            h.plugin().inputs[0].api_resources.as_ref().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_replan_applies_from_the_next_cycle_with_every_series_again() {
        let mut h = Harness::<Echo>::new(r#"{"publish": "replan"}"#).unwrap();
        let out = h.cycle(0).sample("a", &[], 1.0).run().unwrap();
        assert_eq!(out.replan().map(|p| p.inputs.len()), Some(2));
        assert_eq!(h.replans().len(), 1);
        assert!(h.plan().metric("n", MetricKind::External).is_some());
        h.cycle(1)
            .sample("a", &[], 1.0)
            .sample("c", &[], 2.0)
            .run()
            .unwrap();
        let second = &h.plugin().inputs[1];
        let mut added: Vec<(&str, u32)> = second
            .added
            .iter()
            .map(|s| (s.name.as_str(), s.input))
            .collect();
        added.sort();
        assert_eq!(added, [("a", 1), ("c", 0)]);
        assert!(second.removed.is_empty());
    }

    #[test]
    fn failed_metrics_are_reported() {
        let mut h = Harness::<Echo>::new(r#"{"publish": "fail"}"#).unwrap();
        let out = h.cycle(0).run().unwrap();
        assert_eq!(out.failed("m"), Some("input a failed"));
        assert_eq!(out.failed("x"), None);
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
