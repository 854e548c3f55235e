//! Errors as Kubernetes `Status` objects, shaped like kube-apiserver's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error, rendered as a `Status` body with the matching HTTP code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist or has no metrics (yet).
    #[error("{resource}.{group} \"{name}\" not found")]
    NotFound {
        /// API group.
        group: &'static str,
        /// Resource, as in the `details.kind` kube-apiserver reports (e.g. `podmetrics`).
        resource: &'static str,
        /// Object name (`namespace/name` for pods, as metrics-server reports it).
        name: String,
    },
    /// The object has metrics, but its newest sample is older than the maximum age: served as
    /// a 404 like [`ApiError::NotFound`], with a message saying so.
    #[error(
        "{resource}.{group} \"{name}\" not found: its newest sample is {age_secs} s old, older than the maximum age {max_age_secs} s"
    )]
    Stale {
        /// API group.
        group: &'static str,
        /// Resource, as in `details.kind`.
        resource: &'static str,
        /// Object name.
        name: String,
        /// Age of the newest sample, seconds.
        age_secs: i64,
        /// `metrics.max_sample_age_secs`.
        max_age_secs: i64,
    },
    /// No route matches the path.
    #[error("the server could not find the requested resource")]
    UnknownPath,
    /// A malformed request (bad selector, …).
    #[error("{0}")]
    BadRequest(String),
    /// The server cannot answer yet or any more.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// A custom or external metric has no value for what was asked; the message names the
    /// metric and the object, as custom-metrics-apiserver's `NewMetricNotFound*Error` do.
    #[error("{0}")]
    MetricNotFound(String),
    /// The server failed to produce an answer (e.g. the plugin publishing a metric failed this
    /// cycle); shaped like apimachinery's `NewInternalError`.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// The path exists but does not accept the request's method.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// No valid credentials (the message says no more than kube-apiserver's, or why the
    /// credential could not be checked).
    #[error("{0}")]
    Unauthorized(String),
    /// The authorizer denied the request; the message names user, verb and resource.
    #[error("{message}")]
    Forbidden {
        /// kube-apiserver's wording.
        message: String,
        /// API group of the resource (empty for non-resource paths).
        group: String,
        /// Resource (empty for non-resource paths).
        resource: String,
        /// Object name, if the request names one.
        name: String,
    },
}

impl ApiError {
    fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. }
            | ApiError::Stale { .. }
            | ApiError::UnknownPath
            | ApiError::MetricNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. }
            | ApiError::Stale { .. }
            | ApiError::UnknownPath
            | ApiError::MetricNotFound(_) => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> serde_json::Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        match self {
            ApiError::NotFound {
                group,
                resource,
                name,
            }
            | ApiError::Stale {
                group,
                resource,
                name,
                ..
            } => status["details"] = json!({"name": name, "group": group, "kind": resource}),
            ApiError::Internal(cause) => {
                status["details"] = json!({"causes": [{"message": cause}]});
            }
            ApiError::MethodNotAllowed => status["details"] = json!({}),
            ApiError::Forbidden {
                group,
                resource,
                name,
                ..
            } => {
                status["details"] = json!({"group": group, "kind": resource});
                if !name.is_empty() {
                    status["details"]["name"] = json!(name);
                }
            }
            _ => {}
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code(), axum::Json(self.status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_kube_apiserver_shape() {
        let e = ApiError::NotFound {
            group: "metrics.k8s.io",
            resource: "podmetrics",
            name: "default/x".into(),
        };
        assert_eq!(
            e.status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"podmetrics.metrics.k8s.io \"default/x\" not found","reason":"NotFound",
                   "details":{"name":"default/x","group":"metrics.k8s.io","kind":"podmetrics"},"code":404})
        );
    }

    #[test]
    fn internal_and_method_not_allowed_match_apimachinery_shapes() {
        assert_eq!(
            ApiError::Internal("plugin rate failed: trap".into()).status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"Internal error occurred: plugin rate failed: trap","reason":"InternalError",
                   "details":{"causes":[{"message":"plugin rate failed: trap"}]},"code":500})
        );
        assert_eq!(
            ApiError::MethodNotAllowed.status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"the server does not allow this method on the requested resource",
                   "reason":"MethodNotAllowed","details":{},"code":405})
        );
    }
}
