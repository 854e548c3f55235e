//! Zero-copy parser for the Prometheus text exposition format, version 0.0.4.
//!
//! Every kubelet `/metrics/resource` body goes through [`parse`], so this is the scrape hot path.
//! The parser borrows names, label text and value tokens from the input and allocates nothing;
//! only a label value that contains an escape sequence is unescaped into an owned `String`, and
//! only when [`LabelSet::get`] or [`LabelSet::iter`] is asked for it.
//!
//! Grammar accepted, line by line (lines end in `\n` or `\r\n`; tokens are separated by any run
//! of spaces or tabs, which may also surround `{`, `}`, `,` and `=`):
//!
//! ```text
//! line    = blank | comment | sample
//! comment = "#" anything                       (# HELP and # TYPE included; skipped)
//! sample  = name [ "{" [ label { "," label } [ "," ] ] "}" ] value [ timestamp ]
//! name    = [a-zA-Z_:][a-zA-Z0-9_:]*
//! label   = [a-zA-Z_][a-zA-Z0-9_]* "=" '"' escaped-utf8 '"'   (escapes: \\ \" \n only)
//! value   = a float as `str::parse::<f64>` reads it: 4.7, 1.253376e+07, NaN, +Inf, -Inf, ...
//! timestamp = an i64 of milliseconds since the Unix epoch, negative allowed
//! ```
//!
//! A malformed line becomes one [`ParseError`] item naming its line; parsing then continues
//! with the next line, so the caller decides whether one bad line voids the scrape. A sample
//! may not repeat a label name, and may carry at most [`MAX_LABELS`] labels.

use std::borrow::Cow;
use std::fmt;
use std::iter::FusedIterator;

use memchr::{memchr, memchr2};

/// Most labels one sample may carry; a line with more is rejected with
/// [`ParseErrorKind::TooManyLabels`]. It bounds the work of the duplicate-name check without
/// allocating, and is far above what kubelets (3 labels) or cAdvisor (about 10) emit.
pub const MAX_LABELS: usize = 128;

/// Labels checked for duplicates in a small stack array before falling back to one of
/// [`MAX_LABELS`] entries.
const INLINE_LABELS: usize = 8;

/// Parses `text` lazily: the returned iterator yields one item per sample line or bad line.
pub fn parse(text: &str) -> Parser<'_> {
    Parser {
        rest: text,
        line: 0,
    }
}

/// One sample line, borrowing from the scraped text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name, e.g. `container_cpu_usage_seconds_total`.
    pub name: &'a str,
    /// Labels between `{` and `}`; empty when the line has none.
    pub labels: LabelSet<'a>,
    /// Sample value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
    /// Timestamp in milliseconds since the Unix epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
}

/// Labels whose positions a [`LabelSet`] records while parsing, so that [`LabelSet::get`] finds
/// them without rescanning the text (kubelet samples have 3, cAdvisor's up to about 10).
const INDEXED_LABELS: usize = 4;

/// The labels of one sample: the validated text between `{` and `}`, read on demand.
///
/// Validation happened while parsing, so reading never fails. Label order is kept as received;
/// equality compares names and unescaped values in that order.
#[derive(Clone, Copy, Default)]
pub struct LabelSet<'a> {
    /// Text between the braces, exactly as received (whitespace and trailing comma included).
    raw: &'a str,
    /// Number of labels in `raw`, at most [`MAX_LABELS`].
    len: u8,
    /// How many leading labels `spans` records (fewer than `len` past [`INDEXED_LABELS`], or
    /// when offsets outgrow `u16`).
    indexed: u8,
    /// Bit `i` is set when the value of indexed label `i` contains an escape.
    escaped: u8,
    spans: [Span; INDEXED_LABELS],
}

/// Where one label lies in [`LabelSet::raw`], as byte offsets.
#[derive(Clone, Copy, Default)]
struct Span {
    name_start: u16,
    name_end: u16,
    /// Just after the value's opening quote.
    value_start: u16,
    /// The value's closing quote.
    value_end: u16,
}

impl<'a> LabelSet<'a> {
    /// The unescaped value of label `name`, borrowed unless the value contains an escape.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        let indexed = &self.spans[..usize::from(self.indexed)];
        for (i, span) in indexed.iter().enumerate() {
            if self.slice(span.name_start, span.name_end) == name {
                let value = self.slice(span.value_start, span.value_end);
                return Some(if self.escaped & (1 << i) != 0 {
                    Cow::Owned(unescape(value))
                } else {
                    Cow::Borrowed(value)
                });
            }
        }
        if self.len == self.indexed {
            return None;
        }
        let rest = RawLabels {
            raw: self.raw,
            pos: indexed
                .last()
                .map_or(0, |span| usize::from(span.value_end) + 1),
        };
        rest.into_iter()
            .find(|label| label.name == name)
            .map(RawLabel::value)
    }

    /// Every `(name, unescaped value)` pair, in the order received.
    pub fn iter(&self) -> Labels<'a> {
        Labels {
            inner: RawLabels {
                raw: self.raw,
                pos: 0,
            },
        }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the sample has no labels (no braces, or `{}`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text between the braces exactly as received, e.g. to hash a series identity.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    fn slice(&self, start: u16, end: u16) -> &'a str {
        self.raw
            .get(usize::from(start)..usize::from(end))
            .unwrap_or_default()
    }
}

impl fmt::Debug for LabelSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for LabelSet<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for LabelSet<'a> {
    type Item = (&'a str, Cow<'a, str>);
    type IntoIter = Labels<'a>;

    fn into_iter(self) -> Labels<'a> {
        self.iter()
    }
}

/// Iterator over the `(name, unescaped value)` pairs of a [`LabelSet`].
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    inner: RawLabels<'a>,
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|label| (label.name, label.value()))
    }
}

impl FusedIterator for Labels<'_> {}

/// One label as it appears in validated label text.
struct RawLabel<'a> {
    name: &'a str,
    /// Value between the quotes, escapes not yet undone.
    escaped_value: &'a str,
    has_escape: bool,
}

impl<'a> RawLabel<'a> {
    fn value(self) -> Cow<'a, str> {
        if self.has_escape {
            Cow::Owned(unescape(self.escaped_value))
        } else {
            Cow::Borrowed(self.escaped_value)
        }
    }
}

/// Walks label text that [`parse_labels`] already accepted.
#[derive(Debug, Clone)]
struct RawLabels<'a> {
    raw: &'a str,
    pos: usize,
}

impl<'a> Iterator for RawLabels<'a> {
    type Item = RawLabel<'a>;

    fn next(&mut self) -> Option<RawLabel<'a>> {
        let b = self.raw.as_bytes();
        let mut i = skip_blank(b, self.pos);
        if b.get(i) == Some(&b',') {
            i = skip_blank(b, i + 1);
        }
        if i >= b.len() {
            self.pos = b.len();
            return None;
        }
        let name_start = i;
        while i < b.len() && is_label_char(b[i]) {
            i += 1;
        }
        let name = &self.raw[name_start..i];
        // Validated text: blanks, '=', blanks, '"' follow the name.
        i = skip_blank(b, i);
        i = skip_blank(b, i + 1) + 1;
        let Some((close, has_escape)) = find_close_quote(b, i) else {
            self.pos = b.len();
            return None;
        };
        self.pos = close + 1;
        Some(RawLabel {
            name,
            escaped_value: &self.raw[i..close],
            has_escape,
        })
    }
}

impl FusedIterator for RawLabels<'_> {}

/// Iterator over the samples of a text exposition; see [`parse`].
///
/// Yields `Ok` per sample line and `Err` per malformed line (then goes on with the next line);
/// blank and comment lines yield nothing. Each call consumes at least one line, so it ends.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    /// Input not consumed yet.
    rest: &'a str,
    /// Number of the last line consumed (1-based; 0 before the first).
    line: usize,
}

impl Parser<'_> {
    /// 1-based number of the line the last item came from (0 before the first item), e.g. to
    /// report a semantic problem with the sample just returned.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Sample<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (line, rest) = match memchr(b'\n', self.rest.as_bytes()) {
                Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            self.line += 1;
            match parse_line(line) {
                Ok(Some(sample)) => return Some(Ok(sample)),
                Ok(None) => {}
                Err(kind) => {
                    return Some(Err(ParseError {
                        line: self.line,
                        kind,
                    }));
                }
            }
        }
        None
    }
}

impl FusedIterator for Parser<'_> {}

/// A malformed line: where, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

/// What was wrong with a malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line does not start with a valid metric name, or the name has a bad character.
    #[error("expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName,
    /// A label name is missing or has a bad character (or the label set is not closed).
    #[error("expected a label name matching [a-zA-Z_][a-zA-Z0-9_]* or '}}'")]
    InvalidLabelName,
    /// A label name is not followed by `=`.
    #[error("expected '=' after label name")]
    MissingEquals,
    /// A label value does not start with `"`.
    #[error("expected '\"' to open the label value")]
    MissingQuote,
    /// A label value has no closing `"` on its line.
    #[error("label value has no closing '\"'")]
    UnterminatedLabelValue,
    /// A label value contains `\` followed by something other than `\`, `"` or `n`.
    #[error("invalid escape sequence '\\{0}' in label value (only \\\\, \\\" and \\n are allowed)")]
    InvalidEscape(char),
    /// A label value is followed by something other than `,` or `}`.
    #[error("expected ',' or '}}' after label value")]
    ExpectedCommaOrBrace,
    /// The same label name appears twice in one sample.
    #[error("duplicate label name {0:?}")]
    DuplicateLabel(String),
    /// The sample has more than [`MAX_LABELS`] labels.
    #[error("more than {MAX_LABELS} labels")]
    TooManyLabels,
    /// The metric name (and labels) are not followed by a value.
    #[error("missing sample value")]
    MissingValue,
    /// The value is not a float.
    #[error("invalid sample value (expected a float, NaN, +Inf or -Inf)")]
    InvalidValue,
    /// The timestamp is not an integer number of milliseconds that fits in an i64.
    #[error("invalid timestamp (expected integer milliseconds)")]
    InvalidTimestamp,
    /// Something follows the timestamp.
    #[error("unexpected text after the timestamp")]
    TrailingText,
}

/// Parses one line (without its `\n`); `Ok(None)` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<Sample<'_>>, ParseErrorKind> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let b = line.as_bytes();
    let mut i = skip_blank(b, 0);
    match b.get(i) {
        None | Some(b'#') => return Ok(None),
        Some(&c) if class(c) & METRIC_START != 0 => {}
        Some(_) => return Err(ParseErrorKind::InvalidMetricName),
    }
    let name_start = i;
    i += 1;
    while i < b.len() && class(b[i]) & METRIC_CHAR != 0 {
        i += 1;
    }
    let name = &line[name_start..i];

    let labels = match b.get(i) {
        Some(b'{') => {
            let (labels, next) = parse_labels(line, i + 1)?;
            i = next;
            labels
        }
        Some(b' ' | b'\t') | None => {
            i = skip_blank(b, i);
            if b.get(i) == Some(&b'{') {
                let (labels, next) = parse_labels(line, i + 1)?;
                i = next;
                labels
            } else {
                LabelSet::default()
            }
        }
        Some(_) => return Err(ParseErrorKind::InvalidMetricName),
    };

    i = skip_blank(b, i);
    let value_start = i;
    i = skip_token(b, i);
    if i == value_start {
        return Err(ParseErrorKind::MissingValue);
    }
    let value = line[value_start..i]
        .parse::<f64>()
        .map_err(|_| ParseErrorKind::InvalidValue)?;

    i = skip_blank(b, i);
    let timestamp_ms = if i < b.len() {
        let ts_start = i;
        i = skip_token(b, i);
        let ts = line[ts_start..i]
            .parse::<i64>()
            .map_err(|_| ParseErrorKind::InvalidTimestamp)?;
        if skip_blank(b, i) < b.len() {
            return Err(ParseErrorKind::TrailingText);
        }
        Some(ts)
    } else {
        None
    };

    Ok(Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    }))
}

/// Validates the label set starting just after `{` at byte `start`; returns it and the index
/// just after its `}`.
fn parse_labels(line: &str, start: usize) -> Result<(LabelSet<'_>, usize), ParseErrorKind> {
    match parse_labels_up_to::<INLINE_LABELS>(line, start) {
        Err(ParseErrorKind::TooManyLabels) => parse_many_labels(line, start),
        done => done,
    }
}

/// The rare path for samples with more than [`INLINE_LABELS`] labels.
#[cold]
#[inline(never)]
fn parse_many_labels(line: &str, start: usize) -> Result<(LabelSet<'_>, usize), ParseErrorKind> {
    parse_labels_up_to::<MAX_LABELS>(line, start)
}

/// [`parse_labels`] for at most `N` labels (`TooManyLabels` beyond), `N` ≤ [`MAX_LABELS`].
fn parse_labels_up_to<const N: usize>(
    line: &str,
    start: usize,
) -> Result<(LabelSet<'_>, usize), ParseErrorKind> {
    let b = line.as_bytes();
    let mut set = LabelSet::default();
    let mut seen: [&str; N] = [""; N];
    let mut count = 0;
    let mut i = start;
    loop {
        i = skip_blank(b, i);
        match b.get(i) {
            Some(b'}') => break,
            Some(&c) if class(c) & LABEL_START != 0 => {}
            _ => return Err(ParseErrorKind::InvalidLabelName),
        }
        let name_start = i;
        i += 1;
        while i < b.len() && is_label_char(b[i]) {
            i += 1;
        }
        let name_end = i;
        let name = &line[name_start..name_end];

        i = skip_blank(b, i);
        match b.get(i) {
            Some(b'=') => {}
            Some(_) if i == name_end => return Err(ParseErrorKind::InvalidLabelName),
            _ => return Err(ParseErrorKind::MissingEquals),
        }
        i = skip_blank(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err(ParseErrorKind::MissingQuote);
        }
        i += 1;
        let value_start = i;
        let mut has_escape = false;
        let value_end = loop {
            let Some(offset) = memchr2(b'"', b'\\', &b[i..]) else {
                return Err(ParseErrorKind::UnterminatedLabelValue);
            };
            let at = i + offset;
            if b[at] == b'"' {
                i = at + 1;
                break at;
            }
            has_escape = true;
            match b.get(at + 1) {
                Some(b'\\' | b'"' | b'n') => i = at + 2,
                Some(_) => {
                    let escaped = line[at + 1..].chars().next().unwrap_or('\\');
                    return Err(ParseErrorKind::InvalidEscape(escaped));
                }
                None => return Err(ParseErrorKind::UnterminatedLabelValue),
            }
        };

        if seen[..count].contains(&name) {
            return Err(ParseErrorKind::DuplicateLabel(name.to_owned()));
        }
        if count == N {
            return Err(ParseErrorKind::TooManyLabels);
        }
        seen[count] = name;
        if count < INDEXED_LABELS && usize::from(set.indexed) == count {
            let offset = |at: usize| u16::try_from(at - start).ok();
            if let (Some(name_start), Some(name_end), Some(value_start), Some(value_end)) = (
                offset(name_start),
                offset(name_end),
                offset(value_start),
                offset(value_end),
            ) {
                set.spans[count] = Span {
                    name_start,
                    name_end,
                    value_start,
                    value_end,
                };
                set.escaped |= u8::from(has_escape) << count;
                set.indexed += 1;
            }
        }
        count += 1;

        i = skip_blank(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err(ParseErrorKind::ExpectedCommaOrBrace),
        }
    }
    set.raw = &line[start..i];
    set.len = u8::try_from(count).map_err(|_| ParseErrorKind::TooManyLabels)?;
    Ok((set, i + 1))
}

/// Index of the `"` closing a validated label value starting at `from`, and whether the value
/// contains an escape.
fn find_close_quote(b: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    let mut has_escape = false;
    loop {
        let at = i + memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[at] == b'"' {
            return Some((at, has_escape));
        }
        has_escape = true;
        i = at + 2;
    }
}

/// Undoes `\\`, `\"` and `\n` in a validated label value.
fn unescape(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        match rest.as_bytes().get(at + 1) {
            Some(b'n') => out.push('\n'),
            Some(&c) => out.push(char::from(c)),
            None => {}
        }
        rest = rest.get(at + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// First index at or after `i` that is not a space or tab.
#[inline]
fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// First index at or after `i` that is a space or tab (or the end).
#[inline]
fn skip_token(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;

/// Character classes of every byte, as bit sets of the constants above.
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let word = b.is_ascii_alphabetic() || b == b'_';
        let mut bits = 0;
        if word {
            bits |= METRIC_START | METRIC_CHAR | LABEL_START | LABEL_CHAR;
        }
        if b.is_ascii_digit() {
            bits |= METRIC_CHAR | LABEL_CHAR;
        }
        if b == b':' {
            bits |= METRIC_START | METRIC_CHAR;
        }
        table[c] = bits;
        c += 1;
    }
    table
};

#[inline]
fn class(b: u8) -> u8 {
    CLASSES[usize::from(b)]
}

#[inline]
fn is_label_char(b: u8) -> bool {
    class(b) & LABEL_CHAR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captured kind-cluster payload of REFERENCE.md §1.
    const CAPTURED: &str = "\
container_cpu_usage_seconds_total{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 4.710169 1633253812125
container_memory_working_set_bytes{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 1.253376e+07 1633253812125
container_start_time_seconds{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 1.633252712e+9 1633253812125
node_cpu_usage_seconds_total 357.35491 1633253809720
node_memory_working_set_bytes 1.616273408e+09 1633253809720
pod_cpu_usage_seconds_total{namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 4.67812 1633253803935
scrape_error 0
";

    fn samples(text: &str) -> Vec<Sample<'_>> {
        parse(text)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid exposition")
    }

    fn one(text: &str) -> Sample<'_> {
        let mut all = samples(text);
        assert_eq!(all.len(), 1, "expected one sample in {text:?}");
        all.remove(0)
    }

    fn labels_of(sample: &Sample<'_>) -> Vec<(String, String)> {
        sample
            .labels
            .iter()
            .map(|(name, value)| (name.to_owned(), value.into_owned()))
            .collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn error(text: &str) -> ParseError {
        parse(text)
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("expected an error for {text:?}"))
    }

    #[test]
    fn captured_kubelet_payload() {
        let all = samples(CAPTURED);
        let container = [
            ("container", "coredns"),
            ("namespace", "kube-system"),
            ("pod", "coredns-558bd4d5db-4dpjz"),
        ];
        type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64, i64);
        let expected: [Expected<'_>; 7] = [
            (
                "container_cpu_usage_seconds_total",
                &container,
                4.710169,
                1633253812125,
            ),
            (
                "container_memory_working_set_bytes",
                &container,
                12533760.0,
                1633253812125,
            ),
            (
                "container_start_time_seconds",
                &container,
                1633252712.0,
                1633253812125,
            ),
            (
                "node_cpu_usage_seconds_total",
                &[],
                357.35491,
                1633253809720,
            ),
            (
                "node_memory_working_set_bytes",
                &[],
                1616273408.0,
                1633253809720,
            ),
            (
                "pod_cpu_usage_seconds_total",
                &[
                    ("namespace", "kube-system"),
                    ("pod", "coredns-558bd4d5db-4dpjz"),
                ],
                4.67812,
                1633253803935,
            ),
            ("scrape_error", &[], 0.0, 0),
        ];
        assert_eq!(all.len(), expected.len());
        for (sample, (name, labels, value, timestamp)) in all.iter().zip(expected) {
            assert_eq!(sample.name, name);
            assert_eq!(labels_of(sample), pairs(labels), "{name}");
            assert_eq!(sample.labels.len(), labels.len());
            assert_eq!(sample.value.to_bits(), value.to_bits(), "{name}");
            let expected_ts = (name != "scrape_error").then_some(timestamp);
            assert_eq!(sample.timestamp_ms, expected_ts, "{name}");
        }
        assert_eq!(
            all[0].labels.get("pod").as_deref(),
            Some("coredns-558bd4d5db-4dpjz")
        );
        assert!(matches!(
            all[0].labels.get("namespace"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(all[0].labels.get("node"), None);
        assert!(all[3].labels.is_empty());
    }

    #[test]
    fn help_type_and_other_comments_are_skipped() {
        let text = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
#
#TYPE no space
   # indented comment with {braces} and \"quotes\" 1 2 3
container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 1 2
# EOF
";
        let sample = one(text);
        assert_eq!(sample.name, "container_cpu_usage_seconds_total");
        assert_eq!(sample.value, 1.0);
        assert_eq!(sample.timestamp_ms, Some(2));
    }

    #[test]
    fn blank_lines_crlf_and_missing_final_newline() {
        let text = "\r\n\n   \n\t\r\na 1\r\n\r\nb{x=\"y\"} 2 3\r\nc 4";
        let all = samples(text);
        let got: Vec<_> = all
            .iter()
            .map(|s| (s.name, s.value, s.timestamp_ms))
            .collect();
        assert_eq!(
            got,
            [("a", 1.0, None), ("b", 2.0, Some(3)), ("c", 4.0, None)]
        );
        assert_eq!(all[1].labels.get("x").as_deref(), Some("y"));
        assert!(samples("").is_empty());
        assert!(samples("\n\n").is_empty());
    }

    #[test]
    fn blanks_and_tabs_between_every_token() {
        let sample =
            one(" \t metric_a \t{ \tpod\t =\t \"p\" \t, ns = \"n\" ,\t} \t 1.5 \t 42 \t\r\n");
        assert_eq!(sample.name, "metric_a");
        assert_eq!(labels_of(&sample), pairs(&[("pod", "p"), ("ns", "n")]));
        assert_eq!(sample.value, 1.5);
        assert_eq!(sample.timestamp_ms, Some(42));
        // No blank at all between the closing brace and the value is accepted too.
        assert_eq!(one("m{a=\"b\"}7").value, 7.0);
    }

    #[test]
    fn escaped_label_values_are_unescaped_only_when_needed() {
        let sample =
            one(r#"m{path="C:\\dir\\",quote="say \"hi\"",multi="a\nb",plain="x",both="\\n"} 1"#);
        assert_eq!(sample.labels.get("path").as_deref(), Some(r"C:\dir\"));
        assert_eq!(sample.labels.get("quote").as_deref(), Some(r#"say "hi""#));
        assert_eq!(sample.labels.get("multi").as_deref(), Some("a\nb"));
        assert_eq!(sample.labels.get("both").as_deref(), Some(r"\n"));
        assert!(matches!(
            sample.labels.get("plain"),
            Some(Cow::Borrowed("x"))
        ));
        assert!(matches!(sample.labels.get("path"), Some(Cow::Owned(_))));
        assert_eq!(sample.labels.len(), 5);
    }

    #[test]
    fn separators_inside_quotes_are_part_of_the_value() {
        let sample = one(r#"m{a="}",b=",",c="=",d="{x=\"1\",y}",e=" # "} 2"#);
        assert_eq!(
            labels_of(&sample),
            pairs(&[
                ("a", "}"),
                ("b", ","),
                ("c", "="),
                ("d", r#"{x="1",y}"#),
                ("e", " # ")
            ])
        );
        assert_eq!(sample.value, 2.0);
    }

    #[test]
    fn trailing_comma_and_empty_label_sets() {
        let sample = one("m{a=\"1\",b=\"2\",} 3");
        assert_eq!(labels_of(&sample), pairs(&[("a", "1"), ("b", "2")]));
        for text in ["m{} 1", "m { } 1", "m{\t} 1", "m 1"] {
            let sample = one(text);
            assert!(sample.labels.is_empty(), "{text}");
            assert_eq!(sample.labels.len(), 0, "{text}");
            assert_eq!(sample.labels.iter().count(), 0, "{text}");
        }
    }

    #[test]
    fn special_and_exponent_values() {
        let value = |text: &str| one(text).value;
        assert!(value("m NaN").is_nan());
        assert_eq!(value("m +Inf"), f64::INFINITY);
        assert_eq!(value("m -Inf"), f64::NEG_INFINITY);
        assert_eq!(value("m Inf"), f64::INFINITY);
        assert_eq!(value("m 1.253376e+07"), 12_533_760.0);
        assert_eq!(value("m 1.633252712e+9"), 1_633_252_712.0);
        assert_eq!(value("m 1.616273408e+09"), 1_616_273_408.0);
        assert_eq!(value("m 2E-3"), 0.002);
        assert_eq!(value("m -0.5"), -0.5);
        assert_eq!(value("m +7"), 7.0);
        assert_eq!(value("m .5"), 0.5);
        assert_eq!(value("m 1e400"), f64::INFINITY);
    }

    #[test]
    fn timestamps_optional_and_signed() {
        assert_eq!(one("m 1").timestamp_ms, None);
        assert_eq!(one("m 1 -1500").timestamp_ms, Some(-1500));
        assert_eq!(one("m 1 +12").timestamp_ms, Some(12));
        assert_eq!(one("m 1 0").timestamp_ms, Some(0));
        assert_eq!(one("m 1 9223372036854775807").timestamp_ms, Some(i64::MAX));
        assert_eq!(one("m 1 -9223372036854775808").timestamp_ms, Some(i64::MIN));
    }

    #[test]
    fn name_character_sets() {
        let sample = one("_:ns:sub_system:metric_9{_l=\"1\",L2=\"2\",a_b_9=\"3\"} 1");
        assert_eq!(sample.name, "_:ns:sub_system:metric_9");
        assert_eq!(
            labels_of(&sample),
            pairs(&[("_l", "1"), ("L2", "2"), ("a_b_9", "3")])
        );
        assert_eq!(one(":colon_first 1").name, ":colon_first");
    }

    #[test]
    fn utf8_label_values() {
        let sample = one("m{pod=\"π-ü-日本\",x=\"\\\"é\\\"\"} 1");
        assert_eq!(sample.labels.get("pod").as_deref(), Some("π-ü-日本"));
        assert_eq!(sample.labels.get("x").as_deref(), Some("\"é\""));
    }

    #[test]
    fn many_labels_use_the_slow_path_and_are_bounded() {
        let render = |count: usize| {
            let labels: Vec<String> = (0..count).map(|i| format!("l{i}=\"v{i}\"")).collect();
            format!("m{{{}}} 1", labels.join(","))
        };
        let text = render(MAX_LABELS);
        let sample = one(&text);
        assert_eq!(sample.labels.len(), MAX_LABELS);
        assert_eq!(sample.labels.get("l127").as_deref(), Some("v127"));
        assert_eq!(sample.labels.iter().count(), MAX_LABELS);

        assert_eq!(
            error(&render(MAX_LABELS + 1)).kind,
            ParseErrorKind::TooManyLabels
        );
        // A duplicate past the inline array is still found.
        let text = format!(
            "{} 1",
            render(12).trim_end_matches(" 1").replace('}', ",l3=\"x\"}")
        );
        assert_eq!(
            error(&text).kind,
            ParseErrorKind::DuplicateLabel("l3".to_owned())
        );
    }

    #[test]
    fn labels_past_the_index_and_in_huge_sets_are_found() {
        // Labels 0..4 are indexed while parsing; later ones are found by scanning on.
        let sample = one(r#"m{a="0",b="1",c="2",d="3",e="4\"",f="5"} 1"#);
        for (name, value) in [("a", "0"), ("d", "3"), ("e", "4\""), ("f", "5")] {
            assert_eq!(sample.labels.get(name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(sample.labels.get("g"), None);

        // Offsets past u16::MAX are not indexed; such labels are found by scanning.
        let long = "x".repeat(70_000);
        let text = format!("m{{short=\"s\",long=\"{long}\",after=\"a\\\\b\"}} 1");
        let sample = one(&text);
        assert_eq!(sample.labels.get("short").as_deref(), Some("s"));
        assert_eq!(sample.labels.get("long").as_deref(), Some(long.as_str()));
        assert_eq!(sample.labels.get("after").as_deref(), Some("a\\b"));
        assert_eq!(sample.labels.get("none"), None);
        assert_eq!(sample.labels.len(), 3);
    }

    #[test]
    fn each_error_names_its_line_and_kind() {
        use ParseErrorKind::*;
        let cases: &[(&str, ParseErrorKind)] = &[
            ("9metric 1", InvalidMetricName),
            ("{a=\"b\"} 1", InvalidMetricName),
            ("metric-name 1", InvalidMetricName),
            ("métric 1", InvalidMetricName),
            ("m{9a=\"b\"} 1", InvalidLabelName),
            ("m{a:b=\"c\"} 1", InvalidLabelName),
            ("m{,} 1", InvalidLabelName),
            ("m{a=\"b\",,} 1", InvalidLabelName),
            ("m{", InvalidLabelName),
            ("m{a \"b\"} 1", MissingEquals),
            ("m{a", MissingEquals),
            ("m{a=b} 1", MissingQuote),
            ("m{a='b'} 1", MissingQuote),
            ("m{a=\"b} 1", UnterminatedLabelValue),
            ("m{a=\"b\\", UnterminatedLabelValue),
            ("m{a=\"b\\t\"} 1", InvalidEscape('t')),
            ("m{a=\"\\é\"} 1", InvalidEscape('é')),
            ("m{a=\"b\" c=\"d\"} 1", ExpectedCommaOrBrace),
            ("m{a=\"b\";c=\"d\"} 1", ExpectedCommaOrBrace),
            ("m{a=\"b\"", ExpectedCommaOrBrace),
            (
                "m{a=\"1\",b=\"2\",a=\"3\"} 1",
                DuplicateLabel("a".to_owned()),
            ),
            ("m", MissingValue),
            ("m{a=\"b\"}", MissingValue),
            ("m \t\r", MissingValue),
            ("m one", InvalidValue),
            ("m 1,5", InvalidValue),
            ("m 0x10", InvalidValue),
            ("m 1 1.5", InvalidTimestamp),
            ("m 1 now", InvalidTimestamp),
            ("m 1 9223372036854775808", InvalidTimestamp),
            ("m 1 2 3", TrailingText),
            ("m 1 2 # comment", TrailingText),
        ];
        for (bad, kind) in cases {
            // The bad line is line 4, after a comment, a blank and a good line; the good line
            // after it is still parsed.
            let text = format!("# HELP m help\n\nok 1\n{bad}\nafter 2\n");
            let items: Vec<_> = parse(&text).collect();
            assert_eq!(items.len(), 3, "{bad:?}");
            assert_eq!(items[0].as_ref().map(|s| s.name), Ok("ok"), "{bad:?}");
            assert_eq!(
                items[1],
                Err(ParseError {
                    line: 4,
                    kind: kind.clone()
                }),
                "{bad:?}"
            );
            assert_eq!(items[2].as_ref().map(|s| s.name), Ok("after"), "{bad:?}");
        }
    }

    #[test]
    fn parser_reports_the_line_of_the_last_item() {
        let mut parser = parse("# HELP a x\n\na 1\r\n\nb{ 2\nc 3");
        assert_eq!(parser.line(), 0);
        assert_eq!(parser.next().map(|s| s.map(|s| s.name)), Some(Ok("a")));
        assert_eq!(parser.line(), 3);
        assert_eq!(parser.next().and_then(Result::err).map(|e| e.line), Some(5));
        assert_eq!(parser.line(), 5);
        assert_eq!(parser.next().map(|s| s.map(|s| s.name)), Some(Ok("c")));
        assert_eq!(parser.line(), 6);
        assert!(parser.next().is_none());
        assert!(parser.next().is_none());
    }

    #[test]
    fn error_display_names_line_and_problem() {
        let err = error("ok 1\r\nm{a=\"1\",a=\"2\"} 1\r\n");
        assert_eq!(err.to_string(), "line 2: duplicate label name \"a\"");
        let err = error("m{a=\"\\x\"} 1");
        assert_eq!(
            err.to_string(),
            "line 1: invalid escape sequence '\\x' in label value (only \\\\, \\\" and \\n are allowed)"
        );
        assert_eq!(
            error("\n\nm 1 x").to_string(),
            "line 3: invalid timestamp (expected integer milliseconds)"
        );
    }

    #[test]
    fn label_set_debug_and_equality_are_semantic() {
        let a = one("m{a=\"1\",b=\"x\\\"y\"} 1");
        let b = one("m { a = \"1\" , b = \"x\\\"y\" , } 1");
        assert_eq!(a.labels, b.labels);
        assert_eq!(a, b);
        assert_ne!(a.labels, one("m{b=\"x\\\"y\",a=\"1\"} 1").labels);
        assert_eq!(format!("{:?}", a.labels), r#"{"a": "1", "b": "x\"y"}"#);
        assert_eq!(b.labels.raw(), " a = \"1\" , b = \"x\\\"y\" , ");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Checks what must hold for any input: no panic, at most one item per line, and
        /// every accepted sample reads back consistently.
        fn check_invariants(text: &str) -> Result<(), TestCaseError> {
            let lines = text.split('\n').count();
            let mut items = 0;
            let mut last_line = 0;
            for item in parse(text) {
                items += 1;
                match item {
                    Ok(sample) => {
                        let name = sample.name.as_bytes();
                        prop_assert!(class(name[0]) & METRIC_START != 0);
                        prop_assert!(name.iter().all(|&c| class(c) & METRIC_CHAR != 0));
                        let labels: Vec<_> = sample.labels.iter().collect();
                        prop_assert_eq!(labels.len(), sample.labels.len());
                        for (i, (name, value)) in labels.iter().enumerate() {
                            prop_assert!(!name.is_empty());
                            prop_assert!(name.bytes().all(is_label_char));
                            prop_assert_eq!(sample.labels.get(name), Some(value.clone()));
                            prop_assert!(labels[..i].iter().all(|(other, _)| other != name));
                        }
                    }
                    Err(err) => {
                        prop_assert!(err.line > last_line && err.line <= lines);
                        last_line = err.line;
                        let prefix = format!("line {}: ", err.line);
                        prop_assert!(err.to_string().starts_with(&prefix));
                    }
                }
            }
            prop_assert!(items <= lines);
            Ok(())
        }

        /// Characters that matter to the grammar, mixed with arbitrary ones.
        fn nasty_char() -> impl Strategy<Value = char> {
            prop_oneof![
                3 => prop::sample::select(vec![
                    '"', '\\', '\n', '\r', '{', '}', ',', '=', ' ', '\t', '#', 'n', 'e', '+', '-',
                    '.', '0', '1', '9', 'a', '_', ':',
                ]),
                1 => any::<char>(),
            ]
        }

        fn label_value() -> impl Strategy<Value = String> {
            prop::collection::vec(nasty_char(), 0..12).prop_map(String::from_iter)
        }

        #[derive(Debug, Clone)]
        struct Generated {
            name: String,
            labels: Vec<(String, String)>,
            value: f64,
            timestamp_ms: Option<i64>,
        }

        fn generated_sample() -> impl Strategy<Value = Generated> {
            (
                "[a-zA-Z_:][a-zA-Z0-9_:]{0,24}",
                prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,10}", label_value()), 0..12),
                prop_oneof![
                    4 => any::<f64>(),
                    1 => Just(f64::NAN),
                    1 => Just(f64::INFINITY),
                    1 => Just(f64::NEG_INFINITY),
                    1 => (0u64..1 << 53).prop_map(|v| v as f64),
                ],
                prop::option::of(any::<i64>()),
            )
                .prop_map(|(name, mut labels, value, timestamp_ms)| {
                    let mut seen = std::collections::HashSet::new();
                    labels.retain(|(name, _)| seen.insert(name.clone()));
                    Generated {
                        name,
                        labels,
                        value,
                        timestamp_ms,
                    }
                })
        }

        /// How to lay a sample out: the blanks used and the optional syntax.
        #[derive(Debug, Clone)]
        struct Layout {
            blanks: [&'static str; 4],
            gaps: [&'static str; 2],
            trailing_comma: bool,
            empty_braces: bool,
            float_style: u8,
            preamble: &'static str,
        }

        fn layout() -> impl Strategy<Value = Layout> {
            let blank = || prop::sample::select(vec!["", " ", "\t", " \t "]);
            let gap = || prop::sample::select(vec![" ", "\t", "  \t"]);
            (
                [blank(), blank(), blank(), blank()],
                [gap(), gap()],
                any::<bool>(),
                any::<bool>(),
                0u8..4,
                prop::sample::select(vec![
                    "",
                    "\n",
                    " \t\n",
                    "# HELP m Some help text\n# TYPE m gauge\n",
                    "#\n",
                ]),
            )
                .prop_map(
                    |(blanks, gaps, trailing_comma, empty_braces, float_style, preamble)| Layout {
                        blanks,
                        gaps,
                        trailing_comma,
                        empty_braces,
                        float_style,
                        preamble,
                    },
                )
        }

        fn escape(value: &str) -> String {
            value
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n")
        }

        fn render_value(value: f64, style: u8) -> String {
            if value.is_nan() {
                "NaN".to_owned()
            } else if value == f64::INFINITY {
                "+Inf".to_owned()
            } else if value == f64::NEG_INFINITY {
                "-Inf".to_owned()
            } else {
                match style {
                    0 => format!("{value}"),
                    1 => format!("{value:e}"),
                    2 => format!("{value:E}"),
                    _ => format!("{value:?}"),
                }
            }
        }

        fn render(sample: &Generated, layout: &Layout, eol: &str) -> String {
            let [b0, b1, b2, b3] = layout.blanks;
            let mut out = format!("{}{b0}{}", layout.preamble.replace('\n', eol), sample.name);
            if !sample.labels.is_empty() || layout.empty_braces {
                out.push_str(b1);
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push_str(b2);
                        out.push(',');
                    }
                    out.push_str(&format!("{b3}{name}{b2}={b3}\"{}\"", escape(value)));
                }
                if layout.trailing_comma && !sample.labels.is_empty() {
                    out.push(',');
                }
                out.push_str(b3);
                out.push('}');
            }
            out.push_str(layout.gaps[0]);
            out.push_str(&render_value(sample.value, layout.float_style));
            if let Some(ts) = sample.timestamp_ms {
                out.push_str(layout.gaps[1]);
                out.push_str(&ts.to_string());
            }
            out.push_str(b1);
            out.push_str(eol);
            out
        }

        fn exposition() -> impl Strategy<Value = (Vec<Generated>, String)> {
            (
                prop::collection::vec((generated_sample(), layout()), 0..16),
                prop::sample::select(vec!["\n", "\r\n"]),
                any::<bool>(),
            )
                .prop_map(|(samples, eol, final_newline)| {
                    let mut text: String = samples
                        .iter()
                        .map(|(sample, layout)| render(sample, layout, eol))
                        .collect();
                    if !final_newline {
                        text.truncate(text.trim_end_matches(['\r', '\n']).len());
                    }
                    (samples.into_iter().map(|(s, _)| s).collect(), text)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn arbitrary_strings_never_panic(text in any::<String>()) {
                check_invariants(&text)?;
            }

            #[test]
            fn grammar_heavy_strings_never_panic(
                text in prop::collection::vec(nasty_char(), 0..200).prop_map(String::from_iter)
            ) {
                check_invariants(&text)?;
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                check_invariants(&String::from_utf8_lossy(&bytes))?;
            }

            #[test]
            fn valid_expositions_round_trip((expected, text) in exposition()) {
                let parsed = parse(&text).collect::<Result<Vec<_>, _>>();
                let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
                prop_assert_eq!(parsed.len(), expected.len());
                for (got, want) in parsed.iter().zip(&expected) {
                    prop_assert_eq!(got.name, want.name.as_str());
                    prop_assert_eq!(&labels_of(got), &want.labels);
                    prop_assert!(
                        got.value.to_bits() == want.value.to_bits()
                            || (got.value.is_nan() && want.value.is_nan()),
                        "{} != {}", got.value, want.value
                    );
                    prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
                    for (name, value) in &want.labels {
                        prop_assert_eq!(got.labels.get(name), Some(Cow::Borrowed(value.as_str())));
                    }
                }
            }

            #[test]
            fn mutated_expositions_never_panic(
                (_, text) in exposition(),
                at in any::<prop::sample::Index>(),
                insert in nasty_char(),
                delete in any::<bool>(),
            ) {
                let mut chars: Vec<char> = text.chars().collect();
                if !chars.is_empty() {
                    let i = at.index(chars.len());
                    if delete {
                        chars.remove(i);
                    } else {
                        chars.insert(i, insert);
                    }
                }
                check_invariants(&String::from_iter(chars))?;
            }
        }
    }
}
