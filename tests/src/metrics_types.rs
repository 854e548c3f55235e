//! Strict mirrors of the `k8s.io/metrics` wire types the HPA decodes: `metrics.k8s.io/v1beta1`
//! (`PodMetrics`, `NodeMetrics`, their lists), `custom.metrics.k8s.io` `v1beta1` and `v1beta2`
//! (`MetricValue`, `MetricValueList`) and `external.metrics.k8s.io/v1beta1`
//! (`ExternalMetricValue`, its list).
//!
//! JSON field names follow the Go types' `json` tags exactly. Every struct denies unknown fields,
//! so a field the gateway sends that the Go types do not have fails to decode. A field Go always
//! writes (no `omitempty`, or a struct, which Go's encoder never omits) is required here, so a
//! field the gateway leaves out fails too; a pointer without `omitempty` (`selector`) must be
//! present but may be `null`. Quantities, times and durations are parsed as Go parses them, so a
//! malformed one fails like it would in the HPA.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// `metav1.ListMeta` (every field `omitempty`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListMeta {
    /// `selfLink`.
    #[serde(default)]
    pub self_link: Option<String>,
    /// `resourceVersion`.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// `continue`.
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
    /// `remainingItemCount`.
    #[serde(default)]
    pub remaining_item_count: Option<i64>,
}

/// `metav1.ObjectMeta` (every field `omitempty`; nested objects kept as JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `generateName`.
    #[serde(default)]
    pub generate_name: Option<String>,
    /// `namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `selfLink`.
    #[serde(default)]
    pub self_link: Option<String>,
    /// `uid`.
    #[serde(default)]
    pub uid: Option<String>,
    /// `resourceVersion`.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// `generation`.
    #[serde(default)]
    pub generation: Option<i64>,
    /// `creationTimestamp` (Go writes `null` for the zero time).
    #[serde(default)]
    pub creation_timestamp: Option<Time>,
    /// `deletionTimestamp`.
    #[serde(default)]
    pub deletion_timestamp: Option<Time>,
    /// `deletionGracePeriodSeconds`.
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<i64>,
    /// `labels`.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// `annotations`.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `ownerReferences`.
    #[serde(default)]
    pub owner_references: Option<Vec<serde_json::Value>>,
    /// `finalizers`.
    #[serde(default)]
    pub finalizers: Option<Vec<String>>,
    /// `managedFields`.
    #[serde(default)]
    pub managed_fields: Option<Vec<serde_json::Value>>,
}

/// `metrics.k8s.io/v1beta1` `ContainerMetrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerMetrics {
    /// `name`, as in the pod's `spec.containers`.
    pub name: String,
    /// `usage`: `cpu`, `memory`, ….
    pub usage: BTreeMap<String, Quantity>,
}

/// `metrics.k8s.io/v1beta1` `PodMetrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodMetrics {
    /// `kind` (`PodMetrics` when set).
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `timestamp`: the end of the window.
    pub timestamp: Time,
    /// `window`.
    pub window: GoDuration,
    /// `containers`.
    pub containers: Vec<ContainerMetrics>,
}

/// `metrics.k8s.io/v1beta1` `NodeMetrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeMetrics {
    /// `kind` (`NodeMetrics` when set).
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `timestamp`.
    pub timestamp: Time,
    /// `window`.
    pub window: GoDuration,
    /// `usage`.
    pub usage: BTreeMap<String, Quantity>,
}

/// A Kubernetes list (`PodMetricsList`, `MetricValueList`, …): `kind`, `apiVersion`,
/// `metadata` and `items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct List<T> {
    /// `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `metadata` (a struct: Go always writes it).
    pub metadata: ListMeta,
    /// `items` (no `omitempty`).
    pub items: Vec<T>,
}

impl<T> List<T> {
    /// Checks `kind` and `apiVersion`.
    pub fn check_type(&self, kind: &str, api_version: &str) -> Result<(), TypeMetaError> {
        check_type_meta(&self.kind, &self.api_version, kind, api_version)
    }
}

/// `PodMetricsList`.
pub type PodMetricsList = List<PodMetrics>;
/// `NodeMetricsList`.
pub type NodeMetricsList = List<NodeMetrics>;

/// `core/v1` `ObjectReference` (every field `omitempty`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectReference {
    /// `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `uid`.
    #[serde(default)]
    pub uid: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `resourceVersion`.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// `fieldPath`.
    #[serde(default)]
    pub field_path: Option<String>,
}

/// `metav1.LabelSelectorRequirement`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// `key`.
    pub key: String,
    /// `operator`: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// `values` (`omitempty`).
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// `metav1.LabelSelector` (both fields `omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// `matchLabels`.
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// `matchExpressions`.
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// A field Go always writes that may be `null` (a pointer without `omitempty`): absent fails.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// `custom.metrics.k8s.io/v1beta1` `MetricValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricValueV1Beta1 {
    /// `kind` (inline `TypeMeta`, `omitempty`).
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `describedObject`.
    pub described_object: ObjectReference,
    /// `metricName`.
    pub metric_name: String,
    /// `timestamp`.
    pub timestamp: Time,
    /// `window` (seconds, `omitempty`).
    #[serde(default)]
    pub window: Option<i64>,
    /// `value`.
    pub value: Quantity,
    /// `selector` (no `omitempty`: present, `null` without a metric selector).
    #[serde(deserialize_with = "present")]
    pub selector: Option<LabelSelector>,
}

/// `custom.metrics.k8s.io/v1beta2` `MetricIdentifier`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricIdentifier {
    /// `name`.
    pub name: String,
    /// `selector` (no `omitempty`: present, `null` without a metric selector).
    #[serde(deserialize_with = "present")]
    pub selector: Option<LabelSelector>,
}

/// `custom.metrics.k8s.io/v1beta2` `MetricValue`; also what a v1beta1 value converts to, as the
/// HPA's custom metrics client converts every answer to v1beta2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricValue {
    /// `kind` (inline `TypeMeta`, `omitempty`).
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `describedObject`.
    pub described_object: ObjectReference,
    /// `metric`.
    pub metric: MetricIdentifier,
    /// `timestamp`.
    pub timestamp: Time,
    /// `windowSeconds` (`omitempty`).
    #[serde(default)]
    pub window_seconds: Option<i64>,
    /// `value`.
    pub value: Quantity,
}

impl From<MetricValueV1Beta1> for MetricValue {
    fn from(v: MetricValueV1Beta1) -> MetricValue {
        MetricValue {
            kind: v.kind,
            api_version: v.api_version,
            described_object: v.described_object,
            metric: MetricIdentifier {
                name: v.metric_name,
                selector: v.selector,
            },
            timestamp: v.timestamp,
            window_seconds: v.window,
            value: v.value,
        }
    }
}

/// `custom.metrics.k8s.io/v1beta1` `MetricValueList`.
pub type MetricValueListV1Beta1 = List<MetricValueV1Beta1>;
/// `custom.metrics.k8s.io/v1beta2` `MetricValueList`.
pub type MetricValueList = List<MetricValue>;

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalMetricValue {
    /// `kind` (inline `TypeMeta`, `omitempty`).
    #[serde(default)]
    pub kind: Option<String>,
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `metricName`.
    pub metric_name: String,
    /// `metricLabels` (no `omitempty`).
    pub metric_labels: BTreeMap<String, String>,
    /// `timestamp`.
    pub timestamp: Time,
    /// `window` (seconds, `omitempty`).
    #[serde(default)]
    pub window: Option<i64>,
    /// `value`.
    pub value: Quantity,
}

/// `ExternalMetricValueList`.
pub type ExternalMetricValueList = List<ExternalMetricValue>;

/// A `kind` or `apiVersion` that is not the expected one.
#[derive(Debug, thiserror::Error)]
#[error(
    "expected kind {expected_kind:?} apiVersion {expected_api_version:?}, got kind {kind:?} apiVersion {api_version:?}"
)]
pub struct TypeMetaError {
    expected_kind: String,
    expected_api_version: String,
    kind: Option<String>,
    api_version: Option<String>,
}

/// Checks a decoded object's `kind` and `apiVersion`.
pub fn check_type_meta(
    kind: &Option<String>,
    api_version: &Option<String>,
    expected_kind: &str,
    expected_api_version: &str,
) -> Result<(), TypeMetaError> {
    if kind.as_deref() == Some(expected_kind)
        && api_version.as_deref() == Some(expected_api_version)
    {
        return Ok(());
    }
    Err(TypeMetaError {
        expected_kind: expected_kind.into(),
        expected_api_version: expected_api_version.into(),
        kind: kind.clone(),
        api_version: api_version.clone(),
    })
}

/// A value that does not parse as Go parses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {text:?}: {reason}")]
pub struct ParseError {
    what: &'static str,
    text: String,
    reason: &'static str,
}

fn parse_error(what: &'static str, text: &str, reason: &'static str) -> ParseError {
    ParseError {
        what,
        text: text.into(),
        reason,
    }
}

/// A `resource.Quantity` (`<signed number><suffix>`: `n u m "" k M G T P E`, `Ki … Ei`, or an
/// `e`/`E` exponent), kept exactly as a fraction.
#[derive(Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    numerator: i128,
    denominator: i128,
}

impl Quantity {
    /// Parses `text` with `resource.ParseQuantity`'s grammar.
    pub fn parse(text: &str) -> Result<Quantity, ParseError> {
        let bad = |reason| parse_error("quantity", text, reason);
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            Some(_) => (false, text),
            None => return Err(bad("empty")),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad("no digits"));
        }
        if fraction.contains('.') {
            return Err(bad("two decimal points"));
        }
        let digits = format!("{whole}{fraction}");
        if digits.len() > 30 {
            return Err(bad("too many digits"));
        }
        let mantissa: i128 = digits.parse().map_err(|_| bad("not a number"))?;
        let (binary, exponent10): (u32, i32) = match suffix {
            "Ki" => (1, 0),
            "Mi" => (2, 0),
            "Gi" => (3, 0),
            "Ti" => (4, 0),
            "Pi" => (5, 0),
            "Ei" => (6, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "" => (0, 0),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| bad("bad exponent"))?;
                (0, exp)
            }
            _ => return Err(bad("unknown suffix")),
        };
        let exponent10 = exponent10 - fraction.len() as i32;
        if !(-40..=30).contains(&exponent10) {
            return Err(bad("out of range"));
        }
        let mut numerator = mantissa
            .checked_mul(1i128 << (10 * binary))
            .ok_or_else(|| bad("out of range"))?;
        let mut denominator: i128 = 1;
        let pow = 10i128
            .checked_pow(exponent10.unsigned_abs())
            .ok_or_else(|| bad("out of range"))?;
        if exponent10 >= 0 {
            numerator = numerator
                .checked_mul(pow)
                .ok_or_else(|| bad("out of range"))?;
        } else {
            denominator = pow;
        }
        if negative {
            numerator = -numerator;
        }
        Ok(Quantity {
            text: text.to_owned(),
            numerator,
            denominator,
        })
    }

    /// `MilliValue()`: thousandths, rounded up as Go rounds them.
    pub fn milli_value(&self) -> i64 {
        let n = self.numerator.saturating_mul(1000);
        let d = self.denominator;
        let q = n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0);
        q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The value as a float (for comparisons with tolerances).
    pub fn as_f64(&self) -> f64 {
        self.numerator as f64 / self.denominator as f64
    }

    /// The text as served.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({:?})", self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
        let text = String::deserialize(d)?;
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A `metav1.Time`: RFC 3339 (Go writes whole seconds), as milliseconds since the epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i64);

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => write!(f, "Time({t})"),
            Err(_) => write!(f, "Time({} ms)", self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let text = String::deserialize(d)?;
        let t: jiff::Timestamp = text
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("time {text:?} is not RFC 3339: {e}")))?;
        Ok(Time(t.as_millisecond()))
    }
}

/// A `metav1.Duration`: Go's `time.Duration` text (`"17.913s"`, `"1m0s"`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// Parses Go's `time.ParseDuration` syntax: signed sequences of numbers with units `ns`,
    /// `us`, `µs`, `ms`, `s`, `m`, `h`.
    pub fn parse(text: &str) -> Result<GoDuration, ParseError> {
        let bad = |reason| parse_error("duration", text, reason);
        let (negative, mut rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(GoDuration(0));
        }
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        let mut nanos: f64 = 0.0;
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| bad("missing unit"))?;
            let value: f64 = rest[..n].parse().map_err(|_| bad("bad number"))?;
            rest = &rest[n..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad("unknown unit")),
            };
            nanos += value * scale;
            rest = &rest[unit_len..];
        }
        let ms = (nanos / 1e6).round() as i64;
        Ok(GoDuration(if negative { -ms } else { ms }))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoDuration, D::Error> {
        let text = String::deserialize(d)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Decodes `body` as `T`, naming the JSON path of the first field that fails.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// A body that does not decode into the Go types' shape.
#[derive(Debug, Clone, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct DecodeError {
    /// JSON path of the failing field (`items[0].metric.selector`).
    pub path: String,
    /// What failed.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1BETA2: &str = r#"{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
        "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"p","apiVersion":"/v1"},
        "metric":{"name":"m","selector":null},"timestamp":"2025-01-09T13:45:39Z","windowSeconds":15,"value":"1500m"}]}"#;

    #[test]
    fn a_v1beta2_list_as_served_decodes() {
        let list: MetricValueList = decode(V1BETA2.as_bytes()).unwrap();
        list.check_type("MetricValueList", "custom.metrics.k8s.io/v1beta2")
            .unwrap();
        let item = &list.items[0];
        assert_eq!(item.value.milli_value(), 1500);
        assert_eq!(item.window_seconds, Some(15));
        assert_eq!(item.timestamp, Time(1_736_430_339_000));
        assert!(
            list.check_type("MetricValueList", "custom.metrics.k8s.io/v1beta1")
                .is_err()
        );
    }

    #[test]
    fn an_unknown_field_fails_naming_its_path() {
        let body = V1BETA2.replace("\"windowSeconds\"", "\"window\"");
        let err = decode::<MetricValueList>(body.as_bytes()).unwrap_err();
        assert_eq!(err.path, "items[0].window");
        assert!(err.message.contains("unknown field `window`"), "{err}");
    }

    #[test]
    fn a_missing_required_field_fails_even_when_nullable() {
        let body = V1BETA2.replace(",\"selector\":null", "");
        let err = decode::<MetricValueList>(body.as_bytes()).unwrap_err();
        assert!(err.message.contains("missing field `selector`"), "{err}");
        let body = V1BETA2.replace("\"metadata\":{},", "");
        let err = decode::<MetricValueList>(body.as_bytes()).unwrap_err();
        assert!(err.message.contains("missing field `metadata`"), "{err}");
        let body = V1BETA2.replace(",\"value\":\"1500m\"", "");
        assert!(decode::<MetricValueList>(body.as_bytes()).is_err());
    }

    #[test]
    fn v1beta1_values_convert_like_the_go_client() {
        let body = r#"{"describedObject":{"kind":"Namespace","name":"default","apiVersion":"/v1"},
            "metricName":"m","timestamp":"2025-01-09T13:45:39Z","value":"2","selector":null}"#;
        let v: MetricValue = decode::<MetricValueV1Beta1>(body.as_bytes())
            .unwrap()
            .into();
        assert_eq!((v.metric.name.as_str(), v.window_seconds), ("m", None));
        assert_eq!(v.value.milli_value(), 2000);
    }

    #[test]
    fn external_values_need_their_labels() {
        let ok = r#"{"metricName":"q","metricLabels":{},"timestamp":"2025-01-09T13:45:39Z","value":"5"}"#;
        decode::<ExternalMetricValue>(ok.as_bytes()).unwrap();
        let missing = ok.replace("\"metricLabels\":{},", "");
        assert!(decode::<ExternalMetricValue>(missing.as_bytes()).is_err());
    }

    #[test]
    fn pod_metrics_from_the_reference_decode() {
        let body = r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1","metadata":{"name":"p","namespace":"default","creationTimestamp":"2025-01-09T13:46:04Z"},"timestamp":"2025-01-09T13:45:39Z","window":"17.913s","containers":[{"name":"c","usage":{"cpu":"0","memory":"4620Ki"}}]}"#;
        let pod: PodMetrics = decode(body.as_bytes()).unwrap();
        assert_eq!(pod.window, GoDuration(17_913));
        assert_eq!(
            pod.containers[0].usage["memory"].milli_value(),
            4620 * 1024 * 1000
        );
    }

    #[test]
    fn quantities_parse_like_go() {
        for (text, milli) in [
            ("487558164n", 488),
            ("1500m", 1500),
            ("1", 1000),
            ("1.5", 1500),
            ("2k", 2_000_000),
            ("12Ki", 12_288_000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("-1500m", -1500),
            ("1n", 1),
            ("0", 0),
            (".5", 500),
        ] {
            assert_eq!(
                Quantity::parse(text).unwrap().milli_value(),
                milli,
                "{text}"
            );
        }
        for bad in ["", "m", "1.2.3", "1x", "1 m", "e3", "1ki"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations_parse_like_go() {
        for (text, ms) in [
            ("15s", 15_000),
            ("17.913s", 17_913),
            ("1m0s", 60_000),
            ("1h2m3.5s", 3_723_500),
            ("500ms", 500),
            ("0", 0),
            ("0s", 0),
        ] {
            assert_eq!(GoDuration::parse(text).unwrap(), GoDuration(ms), "{text}");
        }
        for bad in ["", "15", "1d", "s"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
