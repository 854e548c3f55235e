//! Fuzzes the kubelet Prometheus text parser.
//!
//! For any input: no panic, at most one item per line, errors in line order, every accepted
//! sample reads back consistently, and rendering the accepted samples canonically and parsing
//! that again gives the same samples.

#![no_main]

use std::fmt::Write as _;

use libfuzzer_sys::fuzz_target;

/// The parser, compiled from its source so the fuzz build needs none of the host crate.
#[path = "../../host/src/sources/kubelet/promtext.rs"]
mod promtext;

use promtext::{MAX_LABELS, Sample, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let accepted = check(&text);
    let rendered = render(&accepted);
    let reparsed = check(&rendered);
    assert_eq!(
        reparsed.len(),
        accepted.len(),
        "re-rendered text lost samples:\n{rendered}"
    );
    for (again, first) in reparsed.iter().zip(&accepted) {
        assert_eq!(again.name, first.name);
        assert!(
            again.labels.iter().eq(first.labels.iter()),
            "labels differ:\n{rendered}"
        );
        assert!(
            again.value.to_bits() == first.value.to_bits()
                || (again.value.is_nan() && first.value.is_nan()),
            "value {} became {}",
            first.value,
            again.value
        );
        assert_eq!(again.timestamp_ms, first.timestamp_ms);
    }
});

/// Parses `text`, checks what must hold for any input, and returns the accepted samples.
fn check(text: &str) -> Vec<Sample<'_>> {
    let lines = text.split('\n').count();
    let mut accepted = Vec::new();
    let mut items = 0;
    let mut last_error_line = 0;
    let mut last_line = 0;
    let mut parser = parse(text);
    while let Some(item) = parser.next() {
        items += 1;
        assert!(parser.line() > last_line && parser.line() <= lines);
        last_line = parser.line();
        match item {
            Ok(sample) => {
                check_sample(&sample);
                accepted.push(sample);
            }
            Err(err) => {
                assert!(
                    err.line > last_error_line && err.line == parser.line(),
                    "{err}"
                );
                last_error_line = err.line;
                assert!(err.to_string().starts_with(&format!("line {}: ", err.line)));
            }
        }
    }
    assert!(items <= lines, "{items} items from {lines} lines");
    accepted
}

fn check_sample(sample: &Sample<'_>) {
    let name = sample.name.as_bytes();
    assert!(name[0].is_ascii_alphabetic() || name[0] == b'_' || name[0] == b':');
    assert!(
        name.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
    );
    let labels: Vec<_> = sample.labels.iter().collect();
    assert_eq!(labels.len(), sample.labels.len());
    assert!(labels.len() <= MAX_LABELS);
    assert_eq!(sample.labels.is_empty(), labels.is_empty());
    for (i, (name, value)) in labels.iter().enumerate() {
        let bytes = name.as_bytes();
        assert!(bytes[0].is_ascii_alphabetic() || bytes[0] == b'_');
        assert!(
            bytes
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'_')
        );
        assert!(
            labels[..i].iter().all(|(other, _)| other != name),
            "duplicate {name}"
        );
        assert_eq!(sample.labels.get(name).as_ref(), Some(value));
    }
    if labels.is_empty() {
        assert!(sample.labels.raw().trim_matches([' ', '\t']).is_empty());
    }
}

/// Renders samples canonically: escaped label values, round-tripping floats.
fn render(samples: &[Sample<'_>]) -> String {
    let mut out = String::new();
    for sample in samples {
        out.push_str(sample.name);
        if !sample.labels.is_empty() {
            out.push('{');
            for (i, (name, value)) in sample.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let value = value
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(out, "{name}=\"{value}\"");
            }
            out.push('}');
        }
        let value = sample.value;
        let _ = match value {
            v if v.is_nan() => write!(out, " NaN"),
            f64::INFINITY => write!(out, " +Inf"),
            f64::NEG_INFINITY => write!(out, " -Inf"),
            v => write!(out, " {v:?}"),
        };
        if let Some(ts) = sample.timestamp_ms {
            let _ = write!(out, " {ts}");
        }
        out.push('\n');
    }
    out
}
