//! Failures answered the way kube-apiserver answers them: a `meta.k8s.io/v1` `Status` body with
//! the matching HTTP code and `reason`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

/// A request that failed, rendered as a Kubernetes `Status`.
#[derive(Debug, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401: no credentials, or credentials nobody recognises.
    pub(crate) fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 with kube-apiserver's RBAC wording.
    pub(crate) fn forbidden(message: String, group: &str, resource: &str, name: &str) -> Self {
        let mut details = json!({ "group": group, "kind": resource });
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        ApiError::new(403, "Forbidden", message).with_details(details)
    }

    /// 404 for a named object of `resource` (plural) in `group`.
    pub(crate) fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let mut details = json!({ "name": name, "kind": resource });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(details)
    }

    /// 409 for a `create` of a name that exists.
    pub(crate) fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(json!({ "name": name, "group": group, "kind": resource }))
    }

    /// 409 for a write at a stale `resourceVersion`.
    pub(crate) fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified} \"{name}\": {why}"),
        )
        .with_details(json!({ "name": name, "group": group, "kind": resource }))
    }

    /// 422 for an object that fails validation.
    pub(crate) fn invalid(kind: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {why}"),
        )
        .with_details(json!({ "name": name, "kind": kind }))
    }

    /// 404 for a path nothing serves.
    pub(crate) fn no_such_path() -> Self {
        ApiError::new(404, "NotFound", "the server could not find the requested resource").with_details(
            json!({ "causes": [{ "reason": "UnexpectedServerResponse", "message": "404 page not found" }] }),
        )
    }

    /// 405 for a verb the resource does not support.
    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 400 for a malformed request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 410 when a resource version (or a continue token's) has left the replay window.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 504 for a list at a resource version the server has not reached.
    pub(crate) fn resource_version_too_large(requested: u64, current: u64) -> Self {
        ApiError::new(504, "Timeout", format!("Too large resource version: {requested}, current: {current}"))
            .with_details(json!({
                "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }],
                "retryAfterSeconds": 1
            }))
    }

    /// The `Status` object itself, e.g. for a watch `ERROR` event.
    pub(crate) fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// The HTTP code.
    pub(crate) fn code(&self) -> u16 {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.status_json())
    }
}

/// A JSON body with `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Shorthand for the handlers' result type.
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;
