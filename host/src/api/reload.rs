//! `POST /-/reload`: reloads the config now (authorized like every request: a non-resource
//! `post` on `/-/reload`) and answers with what the reload did.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::ApiState;
use crate::reload::Trigger;

/// Runs a reload (after any in flight) and answers 200 with its report, or 500 with the report
/// and the error when the new config was refused (the running one keeps serving).
async fn reload(State(state): State<ApiState>) -> Response {
    let Some(handle) = &state.reload else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "outcome": "error",
                "error": "this gateway was not started from a config file; nothing to reload",
            })),
        )
            .into_response();
    };
    let report = handle.reload(Trigger::Http).await;
    let code = if report.succeeded() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (code, axum::Json(&*report)).into_response()
}

/// The reload route.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/-/reload", post(reload))
}
