//! `hostile-plugin`: a plugin that misbehaves on demand, to test that the gateway survives its
//! plugins. Config: `{"mode": "..."}`, see [`Mode`].

use std::collections::BTreeSet;

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, InputSpec, MetricSpec, ObjectRef, Plan, Plugin, SeriesTable, Source,
    export_plugin,
};
use serde::Deserialize;

/// The plugin's config: how it misbehaves. Every mode publishes (or tries to) the same plan: custom
/// `hostile_ok` on pods, custom `hostile_node` on nodes, external `hostile_external` and
/// `hostile_cycles`, derived series `hostile_huge`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Mode {
    /// Behaves: `hostile_ok` = 1 for every pod with a current phase in the cluster input, and
    /// `hostile_external` = 1.
    Ok,
    /// Never returns from `process`.
    Loop,
    /// Allocates without bound in `process`.
    Alloc,
    /// Panics in `configure`.
    TrapConfigure,
    /// Panics in `process`.
    TrapProcess,
    /// Panics in every `every`-th `process` call of an instance; otherwise counts successful
    /// cycles (kept across instances by snapshot/restore) and publishes the count as
    /// `hostile_cycles`.
    TrapEvery {
        /// The period of the panics (at least 1).
        every: u32,
    },
    /// What `ok` publishes, plus `hostile_ok` for pods `ghost-0..2` in namespace `ghost` and
    /// `hostile_node` for node `ghost-node`, none of which exist.
    GhostObjects,
    /// `hostile_ok` is NaN for every pod and `hostile_external` is +inf.
    Nan,
    /// 2,000,000 samples of derived series `hostile_huge` (more than any sane output cap).
    Huge,
    /// Adds custom metric `hostile_bad` on the resource `unicorns`, which does not exist.
    BadPlan,
    /// What `ok` publishes, but reports `hostile_ok` as failed (contract 0.2.0 `failed`).
    FailMetric,
    /// What `ok` publishes; the first cycle also replans: a new input before the phase input
    /// (which moves to index 1) and external `hostile_replanned`, from then on the number of
    /// series announced for input 1 in the cycle.
    Replan,
    /// What `ok` publishes; the first cycle also replans to take external `pending_pods`, the
    /// pending-pods plugin's metric.
    ReplanConflict,
    /// What `ok` publishes for pods; also reads the label names of the default Prometheus
    /// backend (contract 0.3.0 `prometheus-labels`, input 1) and publishes `hostile_external` =
    /// 1 once per label name, with label `label_name`, instead of the unlabelled value; when the
    /// input fails, `hostile_external` fails with its message.
    Labels {
        /// The series selector (`match[]`); empty or absent: every series.
        #[serde(default)]
        selector: String,
    },
}

/// The metric `replan-conflict` tries to take.
const TAKEN: &str = "pending_pods";

/// The misbehaving plugin.
pub struct Hostile {
    mode: Mode,
    series: SeriesTable,
    /// `process` calls of this instance.
    calls: u64,
    /// Successful cycles, across instances.
    cycles: u64,
}

impl Hostile {
    /// Pods with a current phase (value 1) in `input`.
    fn pods(&self, input: &CycleInput) -> BTreeSet<ObjectRef> {
        input
            .samples()
            .filter(|s| s.value == 1.0)
            .filter_map(|s| self.series.get(s.id))
            .filter_map(|series| ObjectRef::from_labels("pods", &series.labels))
            .collect()
    }

    /// What `ok` publishes, with `value` for pods and `external` for `hostile_external`.
    fn ok(&self, input: &CycleInput, value: f64, external: f64) -> CycleOutput {
        let mut out = CycleOutput::new();
        let t = input.timestamp_ms;
        for pod in self.pods(input) {
            out.push_custom("hostile_ok", pod, value, t);
        }
        out.push_external("hostile_external", "", external, t);
        out
    }
}

impl Plugin for Hostile {
    type Config = Mode;

    fn configure(mode: Mode) -> Result<(Self, Plan), String> {
        match mode {
            Mode::TrapConfigure => panic!("hostile plugin: trap in configure"),
            Mode::TrapEvery { every: 0 } => return Err("`every` must be at least 1".to_owned()),
            _ => {}
        }
        let mut plan = Plan::new();
        plan.add_input(InputSpec::new(Source::Cluster, "kube_pod_status_phase"));
        add_metrics(&mut plan)?;
        if mode == Mode::BadPlan {
            plan.add_metric(MetricSpec::custom("hostile_bad", "unicorns"))?;
        }
        if let Mode::Labels { selector } = &mode {
            plan.add_input(InputSpec::prometheus_labels("", selector));
        }
        let plugin = Hostile {
            mode,
            series: SeriesTable::new(),
            calls: 0,
            cycles: 0,
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        self.series.apply(input);
        self.calls += 1;
        let t = input.timestamp_ms;
        match self.mode {
            Mode::Ok | Mode::BadPlan => Ok(self.ok(input, 1.0, 1.0)),
            Mode::Labels { .. } => {
                let mut out = self.ok(input, 1.0, 1.0);
                out.external.clear();
                if let Some(message) = input.failure(1) {
                    out.fail("hostile_external", message);
                    return Ok(out);
                }
                for name in self.series.names_of(1) {
                    out.push_external("hostile_external", "", 1.0, t).labels =
                        metrics_gateway_sdk::labels(&[("label_name", name)]);
                }
                Ok(out)
            }
            Mode::FailMetric => {
                let mut out = self.ok(input, 1.0, 1.0);
                out.custom.clear();
                out.fail("hostile_ok", "hostile plugin: its input is unusable");
                Ok(out)
            }
            Mode::Replan | Mode::ReplanConflict => {
                let mut out = self.ok(input, 1.0, 1.0);
                if self.calls == 1 {
                    let mut plan = Plan::new();
                    plan.add_input(InputSpec::new(Source::Cluster, "kube_node_info"));
                    plan.add_input(InputSpec::new(Source::Cluster, "kube_pod_status_phase"));
                    add_metrics(&mut plan)?;
                    plan.add_metric(MetricSpec::external(
                        if self.mode == Mode::Replan {
                            "hostile_replanned"
                        } else {
                            TAKEN
                        },
                        self.mode == Mode::ReplanConflict,
                    ))?;
                    out.replan = Some(plan);
                } else if self.mode == Mode::Replan {
                    let moved = input.added.iter().filter(|s| s.input == 1).count();
                    out.push_external("hostile_replanned", "", moved as f64, t);
                }
                Ok(out)
            }
            Mode::Loop => {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Mode::Alloc => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1; 1 << 20]));
                }
            }
            Mode::TrapConfigure => Err("unreachable: configure traps".to_owned()),
            Mode::TrapProcess => panic!("hostile plugin: trap in process"),
            Mode::TrapEvery { every } => {
                if self.calls.is_multiple_of(u64::from(every)) {
                    panic!(
                        "hostile plugin: trap in call {} of this instance",
                        self.calls
                    );
                }
                self.cycles += 1;
                let mut out = CycleOutput::new();
                out.push_external("hostile_cycles", "", self.cycles as f64, t);
                Ok(out)
            }
            Mode::GhostObjects => {
                let mut out = self.ok(input, 1.0, 1.0);
                for i in 0..3 {
                    out.push_custom(
                        "hostile_ok",
                        ObjectRef::pod("ghost", format!("ghost-{i}")),
                        1.0,
                        t,
                    );
                }
                out.push_custom("hostile_node", ObjectRef::node("ghost-node"), 1.0, t);
                Ok(out)
            }
            Mode::Nan => Ok(self.ok(input, f64::NAN, f64::INFINITY)),
            Mode::Huge => {
                const N: usize = 2_000_000;
                let mut out = CycleOutput::new();
                let mut emitter = metrics_gateway_sdk::DerivedEmitter::new();
                emitter.emit(&mut out, "hostile_huge", &[], t, 0.0);
                let id = out.derived_ids[0];
                out.derived_ids = vec![id; N];
                out.derived_timestamps_ms = vec![t; N];
                out.derived_values = (0..N).map(|i| i as f64).collect();
                Ok(out)
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.cycles.to_le_bytes().to_vec()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| format!("snapshot of {} bytes, expected 8", state.len()))?;
        self.cycles = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// The metrics every mode publishes.
fn add_metrics(plan: &mut Plan) -> Result<(), String> {
    plan.add_metric(MetricSpec::custom("hostile_ok", "pods"))?;
    plan.add_metric(MetricSpec::custom("hostile_node", "nodes"))?;
    plan.add_metric(MetricSpec::external("hostile_external", false))?;
    plan.add_metric(MetricSpec::external("hostile_cycles", false))?;
    plan.add_derived("hostile_huge");
    Ok(())
}

export_plugin!(Hostile);

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use metrics_gateway_sdk::testing::{Cycle, Harness};

    fn pods(c: Cycle<'_, Hostile>) -> Cycle<'_, Hostile> {
        let phase = "kube_pod_status_phase";
        c.sample(
            phase,
            &[("namespace", "web"), ("pod", "a"), ("phase", "Running")],
            1.0,
        )
        .sample(
            phase,
            &[("namespace", "web"), ("pod", "a"), ("phase", "Pending")],
            0.0,
        )
        .sample(
            phase,
            &[("namespace", "web"), ("pod", "b"), ("phase", "Running")],
            1.0,
        )
    }

    #[test]
    fn ok_publishes_a_value_per_pod() {
        let mut h = Harness::<Hostile>::new(r#"{"mode": "ok"}"#).unwrap();
        let out = pods(h.cycle(1_000)).run().unwrap();
        assert_eq!(out.custom_values("hostile_ok").len(), 2);
        assert_eq!(
            out.custom("hostile_ok", &ObjectRef::pod("web", "b")),
            Some(1.0)
        );
        assert_eq!(out.external("hostile_external", ""), Some(1.0));
    }

    #[test]
    #[should_panic(expected = "trap in configure")]
    fn trap_configure_panics() {
        let _ = Harness::<Hostile>::new(r#"{"mode": "trap-configure"}"#);
    }

    #[test]
    #[should_panic(expected = "trap in process")]
    fn trap_process_panics() {
        let mut h = Harness::<Hostile>::new(r#"{"mode": "trap-process"}"#).unwrap();
        let _ = h.cycle(0).run();
    }

    #[test]
    fn trap_every_resumes_counting_after_a_restart() {
        let mut h = Harness::<Hostile>::new(r#"{"mode": "trap-every", "every": 3}"#).unwrap();
        let mut published = Vec::new();
        for cycle in 0..9 {
            let result = catch_unwind(AssertUnwindSafe(|| h.cycle(cycle * 1_000).run()));
            match result {
                Ok(out) => published.push(out.unwrap().external("hostile_cycles", "")),
                Err(_) => {
                    published.push(None);
                    h.restart().unwrap();
                }
            }
        }
        let expected = [
            Some(1.0),
            Some(2.0),
            None,
            Some(3.0),
            Some(4.0),
            None,
            Some(5.0),
            Some(6.0),
            None,
        ];
        assert_eq!(published, expected);
    }

    #[test]
    fn ghost_objects_break_nothing_in_the_plan() {
        let mut h = Harness::<Hostile>::new(r#"{"mode": "ghost-objects"}"#).unwrap();
        let out = pods(h.cycle(0)).run().unwrap();
        assert_eq!(
            out.custom("hostile_ok", &ObjectRef::pod("ghost", "ghost-2")),
            Some(1.0)
        );
        assert_eq!(
            out.custom("hostile_node", &ObjectRef::node("ghost-node")),
            Some(1.0)
        );
        assert_eq!(out.custom_values("hostile_ok").len(), 5);
    }

    #[test]
    fn nan_and_huge_break_the_contract() {
        let mut h = Harness::<Hostile>::new(r#"{"mode": "nan"}"#)
            .unwrap()
            .lenient();
        let out = pods(h.cycle(0)).run().unwrap();
        assert!(
            out.custom("hostile_ok", &ObjectRef::pod("web", "a"))
                .unwrap()
                .is_nan()
        );
        assert_eq!(out.external("hostile_external", ""), Some(f64::INFINITY));

        let mut h = Harness::<Hostile>::new(r#"{"mode": "huge"}"#)
            .unwrap()
            .lenient();
        let out = h.cycle(0).run().unwrap();
        assert_eq!(out.raw().derived_values.len(), 2_000_000);
        assert_eq!(out.raw().derived_ids.len(), 2_000_000);
    }

    #[test]
    fn bad_plan_names_an_unknown_resource() {
        let h = Harness::<Hostile>::new(r#"{"mode": "bad-plan"}"#).unwrap();
        assert!(h.plan().metrics.iter().any(|m| m.resource == "unicorns"));
    }

    #[test]
    fn labels_publishes_one_value_per_label_name_and_fails_with_its_input() {
        let mut h =
            Harness::<Hostile>::new(r#"{"mode": "labels", "selector": "queue_depth"}"#).unwrap();
        assert_eq!(
            h.plan().inputs[1],
            InputSpec::prometheus_labels("", "queue_depth")
        );
        let names = |out: &metrics_gateway_sdk::testing::Output| {
            let mut v: Vec<String> = out
                .external_values("hostile_external", "")
                .iter()
                .map(|e| {
                    metrics_gateway_sdk::label(&e.labels, "label_name")
                        .unwrap()
                        .to_owned()
                })
                .collect();
            v.sort();
            v
        };
        let out = h
            .cycle(1_000)
            .label_names(&["__name__", "namespace", "queue"])
            .run()
            .unwrap();
        assert_eq!(names(&out), ["__name__", "namespace", "queue"]);
        let out = h
            .cycle(2_000)
            .label_names(&["__name__", "queue"])
            .run()
            .unwrap();
        assert_eq!(names(&out), ["__name__", "queue"]);
        let out = h.cycle(3_000).fail(1, "backend down").run().unwrap();
        assert_eq!(out.failed("hostile_external"), Some("backend down"));
        // A failed input's series stay live: they are back as soon as it answers again.
        let out = h
            .cycle(4_000)
            .label_names(&["__name__", "queue"])
            .run()
            .unwrap();
        assert_eq!(names(&out), ["__name__", "queue"]);
        assert!(h.plugin().series.names_of(1).len() == 2);
    }

    #[test]
    fn config_errors() {
        assert!(Harness::<Hostile>::new(r#"{"mode": "trap-every", "every": 0}"#).is_err());
        assert!(Harness::<Hostile>::new(r#"{"mode": "trap-every"}"#).is_err());
        assert!(Harness::<Hostile>::new(r#"{"mode": "sulk"}"#).is_err());
        assert!(Harness::<Hostile>::new("{}").is_err());
    }
}
