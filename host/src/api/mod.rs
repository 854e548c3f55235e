//! The HTTPS API: `metrics.k8s.io`, `custom.metrics.k8s.io`, `external.metrics.k8s.io`,
//! discovery, health and self-metrics, one router per area.

pub mod auth;
pub mod custom_metrics;
pub mod discovery;
pub mod external_metrics;
pub mod health;
pub mod metric_values;
pub mod quantity;
pub mod reload;
pub mod resource_metrics;
pub mod selector;
pub mod server;
pub mod status;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clock::Clock;
use crate::pipeline::CollectionHealth;
use crate::reload::trigger::ReloadHandle;
use crate::sources::cluster::ClusterCache;
use crate::store::{Snapshot, Store};
use crate::telemetry::{RouteLabels, Telemetry};

/// Everything handlers read; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// The served snapshot.
    pub store: Arc<Store>,
    /// Cluster state (for readiness).
    pub cluster: Arc<ClusterCache>,
    /// Collection liveness facts.
    pub health: Arc<CollectionHealth>,
    /// Self-metrics.
    pub telemetry: Telemetry,
    /// Time source.
    pub clock: Clock,
    /// Samples older than this are not served, ms (`metrics.max_sample_age_secs`, reloadable).
    pub max_sample_age_ms: Arc<AtomicI64>,
    /// Liveness fails when no cycle started for this long, ms.
    pub liveness_limit_ms: i64,
    /// Reload requests (`POST /-/reload`); `None` when the gateway was not started from a file.
    pub reload: Option<ReloadHandle>,
}

impl ApiState {
    /// Serves `snapshot` alone, read at `clock`: no collection, cluster or reload behind it
    /// (router tests and benchmarks).
    pub fn serving(snapshot: Snapshot, clock: Clock) -> ApiState {
        let store = Arc::new(Store::default());
        store.publish(snapshot);
        ApiState {
            store,
            cluster: Arc::default(),
            health: Arc::new(CollectionHealth::new(clock.now_ms())),
            telemetry: Telemetry::new(),
            clock,
            max_sample_age_ms: Arc::new(AtomicI64::new(45_000)),
            liveness_limit_ms: 60_000,
            reload: None,
        }
    }

    /// The sample age limit now, ms.
    pub fn max_sample_age_ms(&self) -> i64 {
        self.max_sample_age_ms.load(Ordering::Acquire)
    }
}

async fn self_metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.encode(),
    )
        .into_response()
}

async fn record_latency(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .telemetry
        .api_request_duration
        .get_or_create(&RouteLabels {
            route,
            code: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> status::ApiError {
    status::ApiError::UnknownPath
}

async fn method_not_allowed() -> status::ApiError {
    status::ApiError::MethodNotAllowed
}

/// The whole API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(discovery::routes())
        .merge(resource_metrics::routes())
        .merge(custom_metrics::routes())
        .merge(external_metrics::routes())
        .merge(health::routes())
        .merge(reload::routes())
        .route("/metrics", get(self_metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_latency,
        ))
        .with_state(state)
}

#[cfg(test)]
mod plugin_metrics_tests;
#[cfg(test)]
mod tests;
