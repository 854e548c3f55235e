//! `/healthz`, `/livez` and `/readyz`, in kube-apiserver's format (`?verbose` lists checks).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;

use super::ApiState;

/// One named check and its result (`Err` carries the reason).
type Check = (&'static str, Result<(), String>);

fn live_checks(state: &ApiState) -> Vec<Check> {
    let now = state.clock.now_ms();
    let last = state.health.last_cycle_start_ms.load(Ordering::Acquire);
    let limit = state.liveness_limit_ms;
    let timely = if now - last <= limit {
        Ok(())
    } else {
        Err(format!(
            "no collection cycle started for {} s (limit {} s)",
            (now - last) / 1000,
            limit / 1000
        ))
    };
    vec![("ping", Ok(())), ("collection-timely", timely)]
}

fn ready_checks(state: &ApiState) -> Vec<Check> {
    let mut checks = live_checks(state);
    let (nodes, pods) = state.cluster.sync_status();
    let synced = match (nodes, pods) {
        (true, true) => Ok(()),
        (n, p) => Err(format!(
            "cluster watches not synced (nodes: {n}, pods: {p})"
        )),
    };
    let first = if state.health.first_cycle_done.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err("no collection cycle completed yet".to_string())
    };
    checks.push(("cluster-synced", synced));
    checks.push(("first-cycle-done", first));
    checks
}

fn render(
    kind: &str,
    checks: Vec<Check>,
    params: &HashMap<String, String>,
) -> (StatusCode, String) {
    let failed = checks.iter().any(|(_, r)| r.is_err());
    let verbose = params.contains_key("verbose") || failed;
    if !verbose {
        return (StatusCode::OK, "ok".to_string());
    }
    let mut body = String::new();
    for (name, result) in &checks {
        match result {
            Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                tracing::warn!(check = name, reason, "{kind} check failed");
                body.push_str(&format!("[-]{name} failed: {reason}\n"));
            }
        }
    }
    if failed {
        body.push_str(&format!("{kind} check failed\n"));
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    } else {
        body.push_str(&format!("{kind} check passed\n"));
        (StatusCode::OK, body)
    }
}

async fn livez(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    render("livez", live_checks(&s), &q)
}

async fn healthz(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    render("healthz", live_checks(&s), &q)
}

async fn readyz(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    render("readyz", ready_checks(&s), &q)
}

/// Health routes; always reachable without authentication.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}
