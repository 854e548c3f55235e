//! One plugin instance: a `Store` kept across cycles, its memory limit, and calls under a deadline.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::runtime::EPOCH_TICK;
use super::wit::{Bindings, Pre};

/// Most log lines one call may emit; the rest are counted and dropped.
const MAX_LOG_LINES: u32 = 100;
/// Longest log message kept, bytes; longer ones are cut.
const MAX_LOG_BYTES: usize = 4096;
/// Most table elements an instance may have (Rust plugins use a few hundred).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The store data of one instance: what the `log` import and the limiter need.
pub struct HostState {
    plugin: Arc<str>,
    limits: StoreLimits,
    /// A memory growth was refused during the current call.
    memory_exceeded: bool,
    /// Log lines emitted during the current call.
    log_lines: u32,
}

impl HostState {
    /// Emits a plugin's log line as a `tracing` event, within the per-call budget.
    pub(super) fn log(&mut self, level: tracing::Level, message: &str) {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    plugin = &*self.plugin,
                    "plugin logged more than {MAX_LOG_LINES} lines in one call; dropping the rest of this call's lines"
                );
            }
            return;
        }
        let message = truncate(message, MAX_LOG_BYTES);
        let plugin = &*self.plugin;
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(plugin, "{message}"),
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_exceeded = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// How one call into a plugin ended (the `outcome` label of the call counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It returned a result.
    Ok,
    /// It returned an error, or output the host refused; the instance is kept.
    Error,
    /// It trapped; the instance is discarded.
    Trap,
    /// It ran past its deadline; the instance is discarded.
    Deadline,
    /// It hit its memory limit and trapped; the instance is discarded.
    Memory,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Trap => "trap",
            Outcome::Deadline => "deadline",
            Outcome::Memory => "memory",
        }
    }
}

/// A call that ended the instance: a trap, an exhausted deadline or the memory limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// [`Outcome::Trap`], [`Outcome::Deadline`] or [`Outcome::Memory`].
    pub outcome: Outcome,
    /// What happened, for logs and the failed metrics' message.
    pub message: String,
}

/// Limits of one instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline of one call, ms.
    pub timeout_ms: u64,
    /// Linear memory limit, bytes.
    pub memory_bytes: usize,
}

/// A live plugin instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    deadline_ticks: u64,
}

impl Instance {
    /// Instantiates `pre` in a fresh store limited by `limits`.
    pub fn new(pre: &Pre, plugin: Arc<str>, limits: Limits) -> Result<Instance, Fault> {
        let engine = pre.engine().clone();
        let mut store = Store::new(
            &engine,
            HostState {
                plugin,
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .table_elements(MAX_TABLE_ELEMENTS)
                    .build(),
                memory_exceeded: false,
                log_lines: 0,
            },
        );
        store.limiter(|s| s);
        store.epoch_deadline_trap();
        let deadline_ticks = limits
            .timeout_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .saturating_add(1);
        store.set_epoch_deadline(deadline_ticks);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| classify(&store, &e))?;
        Ok(Instance {
            store,
            bindings,
            deadline_ticks,
        })
    }

    /// Runs `f` under the call deadline, classifying a failure as a [`Fault`].
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let data = self.store.data_mut();
        data.memory_exceeded = false;
        data.log_lines = 0;
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&self.bindings, &mut self.store).map_err(|e| classify(&self.store, &e))
    }
}

/// Classifies a failed call from the error and what the limiter saw.
fn classify(store: &Store<HostState>, err: &wasmtime::Error) -> Fault {
    let outcome = if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        Outcome::Deadline
    } else if store.data().memory_exceeded {
        Outcome::Memory
    } else {
        Outcome::Trap
    };
    tracing::debug!(
        plugin = &*store.data().plugin,
        "plugin call failed: {err:#}"
    );
    let message = match outcome {
        Outcome::Deadline => "ran past its deadline".to_owned(),
        Outcome::Memory => format!("exceeded its memory limit ({})", err.root_cause()),
        _ => format!("trapped: {}", err.root_cause()),
    };
    Fault { outcome, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
