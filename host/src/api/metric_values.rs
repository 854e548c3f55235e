//! JSON pieces shared by `custom.metrics.k8s.io` and `external.metrics.k8s.io`: list envelope,
//! timestamps, windows, query parameters and selector parsing.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize, Serializer};

use super::selector::LabelSelector;
use super::status::ApiError;
use crate::clock::Rfc3339Seconds;

/// Query parameters of metric requests (others, such as `resourceVersion`, are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricParams {
    /// Selects objects by their labels (custom metrics, `*` requests) or series by their labels
    /// (external metrics).
    pub label_selector: Option<String>,
    /// Selects the series of a custom metric by their labels.
    pub metric_label_selector: Option<String>,
}

impl MetricParams {
    /// The parameters, or a 400 when the query string does not decode.
    pub fn from_query(
        query: Result<Query<MetricParams>, QueryRejection>,
    ) -> Result<Self, ApiError> {
        query
            .map(|Query(params)| params)
            .map_err(|e| ApiError::BadRequest(format!("invalid query parameters: {e}")))
    }
}

/// Parses the selector in query parameter `param`; absent means everything. A malformed one is a
/// 400 naming the parameter.
pub fn parse_selector(param: &str, value: Option<&str>) -> Result<LabelSelector, ApiError> {
    let value = value.unwrap_or("");
    LabelSelector::parse(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid {param} {value:?}: {e}")))
}

/// `metav1.Time`: RFC 3339, second precision, UTC.
#[derive(Debug, Clone, Copy)]
pub struct Time(pub i64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Rfc3339Seconds::new(self.0).as_str())
    }
}

/// A window in whole seconds (the APIs' `*int64`): rounded to the nearest second, and at least 1
/// for any positive window, because 0 means "an instantaneous value".
pub fn window_seconds(window_ms: Option<i64>) -> Option<i64> {
    window_ms.map(|ms| match ms {
        ..=0 => 0,
        _ => ((ms + 500) / 1000).max(1),
    })
}

/// An empty `ListMeta` (`{}`).
#[derive(Debug, Serialize)]
pub struct EmptyMeta {}

/// A `…List` object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct List<'a, T> {
    /// `MetricValueList` or `ExternalMetricValueList`.
    pub kind: &'static str,
    /// `group/version`.
    pub api_version: &'a str,
    /// Always empty.
    pub metadata: EmptyMeta,
    /// The values.
    pub items: Vec<T>,
}

/// Serialises `body` as an `application/json` response.
pub fn json_response<T: Serialize>(body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::Internal(format!("encoding the response: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_to_seconds_without_faking_instantaneous_values() {
        assert_eq!(window_seconds(None), None);
        assert_eq!(window_seconds(Some(0)), Some(0));
        assert_eq!(window_seconds(Some(200)), Some(1));
        assert_eq!(window_seconds(Some(17_913)), Some(18));
        assert_eq!(window_seconds(Some(30_000)), Some(30));
        assert_eq!(window_seconds(Some(30_499)), Some(30));
    }
}
