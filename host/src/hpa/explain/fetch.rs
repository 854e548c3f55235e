//! The requests `hpa explain` makes, through kube-apiserver as the HPA controller does: each
//! recorded with its method and path, each failure sorted into a cause.

use std::collections::BTreeMap;

use http::{Request, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::api::quantity::Quantity;
use crate::hpa::pods::PodMetric;

/// One request made, as explain reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// `GET`.
    pub method: &'static str,
    /// Path with query.
    pub path: String,
    /// HTTP status (absent when the request could not be sent).
    pub status: Option<u16>,
}

/// Why a metric could not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The metrics API group is not served (not registered, or its backend unavailable: 503).
    ApiUnavailable,
    /// The caller is not authenticated (401) or not allowed (403).
    Auth,
    /// Discovery does not list the metric.
    NoSuchMetric,
    /// The metric exists, but the selector matched no series, or the target matched no pods.
    SelectorMatchedNothing,
    /// The described object does not exist or has no value.
    ObjectNotFound,
    /// The newest value is older than the metric's maximum age.
    Stale,
    /// Anything else (a failed plugin, a malformed answer, …).
    Other,
}

impl Cause {
    /// A short label for text output.
    pub fn label(self) -> &'static str {
        match self {
            Cause::ApiUnavailable => "API not registered or unavailable",
            Cause::Auth => "authentication or authorization error",
            Cause::NoSuchMetric => "no such metric in discovery",
            Cause::SelectorMatchedNothing => "selector matched nothing",
            Cause::ObjectNotFound => "object not found",
            Cause::Stale => "stale value",
            Cause::Other => "error",
        }
    }
}

/// A failed fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Cause.
    pub cause: Cause,
    /// What the server or the check said.
    pub message: String,
}

impl Failure {
    /// A failure of `cause`.
    pub fn new(cause: Cause, message: impl Into<String>) -> Failure {
        Failure {
            cause,
            message: message.into(),
        }
    }
}

/// An answer: status and body.
struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Answer {
    /// The `Status` message, or the raw text.
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| self.text.trim().to_owned(), str::to_owned)
    }
}

/// A kube client that records every request.
pub struct Fetcher {
    client: kube::Client,
    /// Every request made, in order.
    pub calls: Vec<Call>,
}

impl Fetcher {
    /// Wraps `client`.
    pub fn new(client: kube::Client) -> Fetcher {
        Fetcher {
            client,
            calls: Vec::new(),
        }
    }

    /// GETs `path`; a transport error is an [`Cause::ApiUnavailable`] failure.
    async fn get(&mut self, path: &str) -> Result<Answer, Failure> {
        let request = Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::empty())
            .map_err(|e| Failure::new(Cause::Other, format!("building GET {path}: {e}")))?;
        let sent = self.client.send(request).await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.record(path, None);
                return Err(Failure::new(
                    Cause::ApiUnavailable,
                    format!("GET {path}: {e}"),
                ));
            }
        };
        let status = response.status();
        self.record(path, Some(status.as_u16()));
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| Failure::new(Cause::Other, format!("reading GET {path}: {e}")))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body, text })
    }

    fn record(&mut self, path: &str, status: Option<u16>) {
        self.calls.push(Call {
            method: "GET",
            path: path.to_owned(),
            status,
        });
    }

    /// GETs `path` expecting 200 JSON; other statuses become failures by their class.
    pub async fn get_json(&mut self, path: &str) -> Result<Value, Failure> {
        let answer = self.get(path).await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(classify_status(&answer))
    }

    /// The preferred version of an API group (`/apis/{group}`).
    pub async fn preferred_version(&mut self, group: &str) -> Result<String, Failure> {
        let body = self
            .get_json(&format!("/apis/{group}"))
            .await
            .map_err(|f| {
                if f.cause == Cause::ObjectNotFound {
                    Failure::new(
                        Cause::ApiUnavailable,
                        format!("API group {group} is not registered with the API server"),
                    )
                } else {
                    f
                }
            })?;
        body.pointer("/preferredVersion/version")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Failure::new(Cause::Other, format!("/apis/{group}: no preferredVersion"))
            })
    }

    /// Whether discovery of `group_version` lists `name`.
    pub async fn discovery_lists(
        &mut self,
        group_version: &str,
        name: &str,
    ) -> Result<bool, Failure> {
        let body = self.get_json(&format!("/apis/{group_version}")).await?;
        Ok(body["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"].as_str() == Some(name)))
    }
}

fn classify_status(answer: &Answer) -> Failure {
    let message = answer.message();
    let cause = match answer.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Cause::Auth,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => Cause::ApiUnavailable,
        StatusCode::NOT_FOUND if is_stale(&message) => Cause::Stale,
        StatusCode::NOT_FOUND if message.contains("with selector") => Cause::SelectorMatchedNothing,
        StatusCode::NOT_FOUND => Cause::ObjectNotFound,
        _ => Cause::Other,
    };
    Failure::new(cause, format!("{} {}", answer.status.as_u16(), message))
}

/// The gateway's 404 for a value past its maximum age says "older than".
fn is_stale(message: &str) -> bool {
    message.contains("older than")
}

/// A `Quantity` string's milli-value.
pub fn milli(q: &Value) -> Option<i64> {
    q.as_str()?
        .parse::<Quantity>()
        .ok()
        .map(|q| q.milli_value())
}

fn time_ms(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond())
}

/// `PodMetricsList` → per-pod values as the controller's resource client sums them: every
/// container's `resource` (or `container`'s only); a pod lacking it is left out.
pub fn resource_values(
    list: &Value,
    resource: &str,
    container: Option<&str>,
) -> BTreeMap<String, PodMetric> {
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let containers = item["containers"].as_array().into_iter().flatten();
        let mut sum = 0i64;
        let mut complete = true;
        let mut found = container.is_none();
        for c in containers {
            if container.is_some_and(|name| c["name"].as_str() != Some(name)) {
                continue;
            }
            found = true;
            match milli(&c["usage"][resource]) {
                Some(v) => sum += v,
                None => complete = false,
            }
        }
        let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        if complete && found {
            out.insert(
                name.to_owned(),
                PodMetric {
                    value_milli: sum,
                    timestamp_ms: time_ms(&item["timestamp"]),
                    window_ms: duration_ms(&item["window"]).unwrap_or(0),
                },
            );
        }
    }
    out
}

/// `MetricValueList` (either version) → values by described object name.
pub fn custom_values(list: &Value) -> BTreeMap<String, PodMetric> {
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let Some(name) = item
            .pointer("/describedObject/name")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Some(value) = milli(&item["value"]) else {
            continue;
        };
        let window_ms = item["windowSeconds"]
            .as_i64()
            .or_else(|| item["window"].as_i64())
            .map_or(60_000, |s| s * 1000);
        out.insert(
            name.to_owned(),
            PodMetric {
                value_milli: value,
                timestamp_ms: time_ms(&item["timestamp"]),
                window_ms,
            },
        );
    }
    out
}

/// `"17.913s"`, `"1m0s"` → ms.
fn duration_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3_600_000.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'm' => 60_000.0,
            's' => 1000.0,
            _ => return None,
        };
        total += n * unit;
    }
    Some(total as i64)
}

/// The values of an `ExternalMetricValueList`, milli-units.
pub fn external_values(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| milli(&i["value"]))
        .collect()
}

/// The number of items of a list answer.
pub fn item_count(list: &Value) -> usize {
    list["items"].as_array().map_or(0, Vec::len)
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, message: &str) -> Answer {
        let body = json!({"kind": "Status", "message": message});
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            text: body.to_string(),
            body,
        }
    }

    #[test]
    fn statuses_map_to_causes() {
        for (status, message, cause) in [
            (401, "Unauthorized", Cause::Auth),
            (
                403,
                "forbidden: User \"x\" cannot get resource",
                Cause::Auth,
            ),
            (503, "service unavailable", Cause::ApiUnavailable),
            (
                404,
                "podmetrics.metrics.k8s.io \"a/b\" not found: its newest sample is 60 s old, older than the maximum age 45 s",
                Cause::Stale,
            ),
            (
                404,
                "the server could not find the metric m for pods p with selector code=500",
                Cause::SelectorMatchedNothing,
            ),
            (
                404,
                "the server could not find the metric m for deployments.apps d",
                Cause::ObjectNotFound,
            ),
            (
                500,
                "Internal error occurred: plugin rate failed",
                Cause::Other,
            ),
        ] {
            let failure = classify_status(&answer(status, message));
            assert_eq!(failure.cause, cause, "{status} {message}");
            assert_eq!(failure.message, format!("{status} {message}"));
        }
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(duration_ms(&json!("17.913s")), Some(17_913));
        assert_eq!(duration_ms(&json!("1m0s")), Some(60_000));
        assert_eq!(duration_ms(&json!("500ms")), Some(500));
    }

    #[test]
    fn a_pod_missing_a_container_value_is_left_out() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
             "containers": [{"name": "x", "usage": {"cpu": "250m"}}, {"name": "y", "usage": {"cpu": "1"}}]},
            {"metadata": {"name": "b"}, "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
             "containers": [{"name": "x", "usage": {"memory": "1Ki"}}]},
        ]});
        let all = resource_values(&list, "cpu", None);
        assert_eq!(all.len(), 1);
        assert_eq!(all["a"].value_milli, 1250);
        assert_eq!(all["a"].window_ms, 15_000);
        assert_eq!(
            resource_values(&list, "cpu", Some("y"))["a"].value_milli,
            1000
        );
    }
}
