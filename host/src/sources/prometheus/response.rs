//! Prometheus HTTP API answers: instant-query results (`vector` and `scalar` accepted, `matrix`
//! and `string` refused), `status: error` bodies, `/api/v1/series` lists read as a stream
//! into interned series (the JSON is never kept), stopped at a cap, and `/api/v1/labels` lists
//! as one series per label name, capped too.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::series::{NAME_LABEL, SeriesTable};
use crate::samples::Family;

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResponseError {
    /// Prometheus answered `status: error`.
    #[error("Prometheus error ({error_type}): {error}")]
    Prometheus {
        /// `errorType`, e.g. `bad_data`, `timeout`, `execution`.
        error_type: String,
        /// `error`.
        error: String,
    },
    /// A result type plugins cannot use.
    #[error(
        "the query returned a {0}; only instant vectors and scalars are accepted (a range \
         selector needs a function such as rate() around it)"
    )]
    ResultType(String),
    /// More series than the cap.
    #[error("more than {0} series (max_series)")]
    TooManySeries(usize),
    /// More label names than the cap.
    #[error("more than {0} label names (max_series)")]
    TooManyLabels(usize),
    /// Not a Prometheus API answer.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Envelope<'a, D> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    data: Option<D>,
    #[serde(rename = "errorType", borrow, default)]
    error_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

impl<D> Envelope<'_, D> {
    fn into_data(self) -> Result<D, ResponseError> {
        if self.status != "success" {
            return Err(ResponseError::Prometheus {
                error_type: self.error_type.unwrap_or_default().into_owned(),
                error: self.error.unwrap_or_default().into_owned(),
            });
        }
        self.data
            .ok_or_else(|| ResponseError::Malformed("status success without data".into()))
    }
}

#[derive(Deserialize)]
struct QueryData<'a> {
    #[serde(rename = "resultType", borrow)]
    result_type: Cow<'a, str>,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample<'a> {
    #[serde(borrow)]
    metric: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    value: (f64, Cow<'a, str>),
}

/// Parses an error body (any HTTP status): Prometheus' `errorType` and `error` when it is one.
pub fn error_body(body: &[u8]) -> Option<ResponseError> {
    let envelope: Envelope<'_, IgnoredAny> = serde_json::from_slice(body).ok()?;
    envelope.into_data().err()
}

/// Parses an instant query's answer into `family`, its series interned in `table`.
pub fn parse_query(
    body: &[u8],
    table: &mut SeriesTable,
    family: &mut Family,
) -> Result<(), ResponseError> {
    let envelope: Envelope<'_, QueryData<'_>> =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    let data = envelope.into_data()?;
    match &*data.result_type {
        "vector" => {
            let samples: Vec<VectorSample<'_>> = Vec::deserialize(&data.result)
                .map_err(|e| ResponseError::Malformed(format!("vector result: {e}")))?;
            for s in samples {
                let series = table.series(s.metric.iter().map(|(k, v)| (&**k, &**v)));
                family.push(series, seconds_to_ms(s.value.0), parse_value(&s.value.1)?);
            }
            Ok(())
        }
        "scalar" => {
            let (t, v): (f64, Cow<'_, str>) = Deserialize::deserialize(&data.result)
                .map_err(|e| ResponseError::Malformed(format!("scalar result: {e}")))?;
            family.push(table.series([]), seconds_to_ms(t), parse_value(&v)?);
            Ok(())
        }
        other => Err(ResponseError::ResultType(other.to_owned())),
    }
}

/// Prometheus' float timestamp (seconds, ms precision) in ms.
fn seconds_to_ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// A sample value as Prometheus writes it: a decimal, `NaN`, `+Inf` or `-Inf`.
fn parse_value(v: &str) -> Result<f64, ResponseError> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v
            .parse()
            .map_err(|_| ResponseError::Malformed(format!("sample value {v:?} is not a number"))),
    }
}

/// What a series discovery found.
#[derive(Debug, Default)]
pub struct Discovered {
    /// The series, or one per shape.
    pub series: Vec<std::sync::Arc<crate::samples::Series>>,
    /// How many series Prometheus returned.
    pub returned: usize,
}

/// Parses an `/api/v1/series` answer into interned series, failing as soon as there are more
/// than `cap` (the run is then abandoned: [`SeriesTable::abandon`]). With `shapes`, each series
/// is reduced to its name and label names (values empty) and each shape is returned once.
pub fn parse_series(
    body: &[u8],
    table: &mut SeriesTable,
    cap: usize,
    shapes: bool,
) -> Result<Discovered, ResponseError> {
    let mut out = Discovered::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope = SeriesEnvelope {
        table,
        cap,
        shapes,
        out: &mut out,
    }
    .deserialize(&mut de);
    let result = match envelope {
        Ok(Some(e)) => Err(e),
        Ok(None) => de
            .end()
            .map(|()| out)
            .map_err(|e| ResponseError::Malformed(e.to_string())),
        Err(e) => {
            let message = e.to_string();
            Err(match message.strip_prefix(TOO_MANY) {
                Some(_) => ResponseError::TooManySeries(cap),
                None => ResponseError::Malformed(message),
            })
        }
    };
    if result.is_err() {
        table.abandon();
    }
    result
}

/// Parses an `/api/v1/labels` answer: each label name becomes a series of that name without
/// labels, interned in `table`; more than `cap` names fail.
pub fn parse_labels(
    body: &[u8],
    table: &mut SeriesTable,
    cap: usize,
) -> Result<Vec<std::sync::Arc<crate::samples::Series>>, ResponseError> {
    let envelope: Envelope<'_, Vec<Cow<'_, str>>> =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    let names = envelope.into_data()?;
    if names.len() > cap {
        return Err(ResponseError::TooManyLabels(cap));
    }
    Ok(names
        .iter()
        .map(|name| table.series([(super::series::NAME_LABEL, &**name)]))
        .collect())
}

const TOO_MANY: &str = "\u{1}too many series";

/// The envelope of a series answer: `data` is streamed into the table; an error status is
/// returned as `Some`.
struct SeriesEnvelope<'t> {
    table: &'t mut SeriesTable,
    cap: usize,
    shapes: bool,
    out: &'t mut Discovered,
}

impl<'de> DeserializeSeed<'de> for SeriesEnvelope<'_> {
    type Value = Option<ResponseError>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SeriesEnvelope<'_> {
    type Value = Option<ResponseError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Prometheus API answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut status, mut error_type, mut error) = (None, String::new(), String::new());
        let mut data = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "status" => status = Some(map.next_value::<Cow<'de, str>>()?.into_owned()),
                "errorType" => error_type = map.next_value::<String>()?,
                "error" => error = map.next_value::<String>()?,
                "data" => {
                    map.next_value_seed(SeriesList {
                        table: &mut *self.table,
                        cap: self.cap,
                        shapes: self.shapes,
                        out: &mut *self.out,
                    })?;
                    data = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match status.as_deref() {
            Some("success") if data => Ok(None),
            Some("success") => Ok(Some(ResponseError::Malformed(
                "status success without data".into(),
            ))),
            _ => Ok(Some(ResponseError::Prometheus { error_type, error })),
        }
    }
}

struct SeriesList<'t> {
    table: &'t mut SeriesTable,
    cap: usize,
    shapes: bool,
    out: &'t mut Discovered,
}

impl<'de> DeserializeSeed<'de> for SeriesList<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SeriesList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of label sets")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut labels: Vec<(Cow<'de, str>, Cow<'de, str>)> = Vec::new();
        while let Some(set) = seq.next_element_seed(LabelSet(&mut labels))? {
            let () = set;
            if self.out.returned == self.cap {
                return Err(de::Error::custom(TOO_MANY));
            }
            self.out.returned += 1;
            let labels = labels.iter().map(|(k, v)| (&**k, &**v));
            if self.shapes {
                let shape = labels.map(|(k, v)| (k, if k == NAME_LABEL { v } else { "" }));
                // A shape is returned once per run: when the table first hands it out.
                if let (series, true) = self.table.series_in_run(shape) {
                    self.out.series.push(series);
                }
            } else {
                self.out.series.push(self.table.series(labels));
            }
        }
        Ok(())
    }
}

/// One label set, read into a reused buffer.
struct LabelSet<'b, 'de>(&'b mut Vec<(Cow<'de, str>, Cow<'de, str>)>);

impl<'de> DeserializeSeed<'de> for LabelSet<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelSet<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a label set")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.clear();
        while let Some(entry) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
            self.0.push(entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(body: &str) -> Result<Family, ResponseError> {
        let mut family = Family::default();
        parse_query(body.as_bytes(), &mut SeriesTable::default(), &mut family).map(|()| family)
    }

    #[test]
    fn vector_values_timestamps_and_special_floats() {
        let f = query(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a\"b"},"value":[1700000000.123,"1.5"]},
            {"metric":{"job":"x"},"value":[1700000000,"NaN"]},
            {"metric":{"job":"y"},"value":[1700000000,"+Inf"]},
            {"metric":{"job":"z"},"value":[1700000000,"-Inf"]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            f.timestamps_ms,
            [
                1_700_000_000_123,
                1_700_000_000_000,
                1_700_000_000_000,
                1_700_000_000_000
            ]
        );
        assert_eq!(f.values[0], 1.5);
        assert!(f.values[1].is_nan());
        assert_eq!(f.values[2], f64::INFINITY);
        assert_eq!(f.values[3], f64::NEG_INFINITY);
        assert_eq!(&*f.series[0].name, "up");
        assert_eq!(f.series[0].label("job"), Some("a\"b"));
        assert_eq!(f.series[0].label("__name__"), None);
        assert_eq!(&*f.series[1].name, "");
    }

    #[test]
    fn scalar_is_one_unlabelled_sample() {
        let f = query(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42"]}}"#,
        )
        .unwrap();
        assert_eq!((f.timestamps_ms[0], f.values[0]), (1_700_000_000_500, 42.0));
        assert!(f.series[0].labels.is_empty());
    }

    #[test]
    fn matrix_string_and_errors_are_refused() {
        let e = query(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("returned a matrix"), "{e}");
        let e = query(r#"{"status":"success","data":{"resultType":"string","result":[1,"a"]}}"#)
            .unwrap_err();
        assert_eq!(e, ResponseError::ResultType("string".into()));
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        let e = query(body).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus error (bad_data): parse error at char 3"
        );
        assert_eq!(error_body(body.as_bytes()), Some(e));
        assert!(matches!(query("<html>"), Err(ResponseError::Malformed(_))));
        let e = query(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#).unwrap_err();
        assert!(e.to_string().contains("\"x\" is not a number"), "{e}");
    }

    #[test]
    fn series_are_streamed_and_capped() {
        let body = r#"{"status":"success","data":[{"__name__":"a","pod":"p"},{"__name__":"a","pod":"q"}],"warnings":[]}"#;
        let mut t = SeriesTable::default();
        let s = parse_series(body.as_bytes(), &mut t, 2, false).unwrap();
        assert_eq!((s.series.len(), s.returned), (2, 2));
        assert_eq!(s.series[1].label("pod"), Some("q"));
        assert_eq!(
            parse_series(body.as_bytes(), &mut t, 1, false).unwrap_err(),
            ResponseError::TooManySeries(1)
        );
        let e = parse_series(
            br#"{"status":"error","errorType":"bad_data","error":"no match[]"}"#,
            &mut t,
            5,
            false,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Prometheus error (bad_data): no match[]");
    }

    #[test]
    fn shapes_are_returned_once_with_empty_values_and_capped_in_series() {
        let body = r#"{"status":"success","data":[
            {"__name__":"a","pod":"p","path":"/x"},
            {"__name__":"a","pod":"q","path":"/y"},
            {"__name__":"a","pod":"q"},
            {"__name__":"b","pod":"p","path":"/x"},
            {"__name__":"a","path":"/z","pod":"r"}]}"#;
        let mut t = SeriesTable::default();
        let found = parse_series(body.as_bytes(), &mut t, 5, true).unwrap();
        assert_eq!(found.returned, 5, "every series counts");
        assert_eq!(t.len(), 3, "the table holds the shapes only");
        assert_eq!(
            t.strings(),
            5,
            "no label value is interned: \"\", a, b, path, pod"
        );
        let shapes: Vec<(&str, Vec<(&str, &str)>)> = found
            .series
            .iter()
            .map(|s| {
                let labels = s.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
                (&*s.name, labels)
            })
            .collect();
        assert_eq!(
            shapes,
            [
                ("a", vec![("path", ""), ("pod", "")]),
                ("a", vec![("pod", "")]),
                ("b", vec![("path", ""), ("pod", "")]),
            ]
        );
        // A shape keeps its id from run to run; the cap counts series, not shapes.
        t.sweep();
        let again = parse_series(body.as_bytes(), &mut t, 5, true).unwrap();
        assert_eq!(
            again.series.iter().map(|s| s.id).collect::<Vec<_>>(),
            found.series.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        assert_eq!(
            parse_series(body.as_bytes(), &mut t, 4, true).unwrap_err(),
            ResponseError::TooManySeries(4)
        );
        // The failed run returned three shapes part-way; the retry returns each again.
        let retry = parse_series(body.as_bytes(), &mut t, 5, true).unwrap();
        assert_eq!(
            retry.series.iter().map(|s| s.id).collect::<Vec<_>>(),
            found.series.iter().map(|s| s.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn label_names_become_series_without_labels_and_are_capped() {
        let body = r#"{"status":"success","data":["__name__","namespace","queue"]}"#;
        let mut t = SeriesTable::default();
        let s = parse_labels(body.as_bytes(), &mut t, 3).unwrap();
        let names: Vec<&str> = s.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["__name__", "namespace", "queue"]);
        assert!(s.iter().all(|s| s.labels.is_empty()));
        // The same names keep their ids in the next run.
        t.sweep();
        let again = parse_labels(body.as_bytes(), &mut t, 3).unwrap();
        assert_eq!(
            again.iter().map(|s| s.id).collect::<Vec<_>>(),
            s.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        assert_eq!(
            parse_labels(body.as_bytes(), &mut t, 2).unwrap_err(),
            ResponseError::TooManyLabels(2)
        );
        assert_eq!(
            ResponseError::TooManyLabels(2).to_string(),
            "more than 2 label names (max_series)"
        );
        let empty = parse_labels(br#"{"status":"success","data":[]}"#, &mut t, 2).unwrap();
        assert!(empty.is_empty());
        let e = parse_labels(
            br#"{"status":"error","errorType":"bad_data","error":"1:4: parse error"}"#,
            &mut t,
            5,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus error (bad_data): 1:4: parse error"
        );
        assert!(matches!(
            parse_labels(br#"{"status":"success","data":[1]}"#, &mut t, 5),
            Err(ResponseError::Malformed(_))
        ));
    }
}
