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
    /// No route matches the path.
    #[error("the server could not find the requested resource")]
    UnknownPath,
    /// A malformed request (bad selector, …).
    #[error("{0}")]
    BadRequest(String),
    /// The server cannot answer yet or any more.
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl ApiError {
    fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
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
        if let ApiError::NotFound {
            group,
            resource,
            name,
        } = self
        {
            status["details"] = json!({"name": name, "group": group, "kind": resource});
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
}
