//! The requests a cycle makes: an instant query at the cycle's time, and the discoveries of
//! series (`/api/v1/series`) and label names (`/api/v1/labels`) over the window before it.

use std::sync::Arc;

use super::client::{BackendClient, RequestError};
use super::response::{parse_labels, parse_query, parse_series};
use super::series::SeriesTable;
use crate::samples::{Family, Series};

/// Prometheus' lookback: an instant query sees samples up to this long before its time.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A time parameter as Prometheus reads it: Unix seconds with ms decimals.
pub fn time_param(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Runs `query` at `time_ms`; its series are interned in `table` (swept: series no longer
/// returned are forgotten).
pub async fn instant(
    client: &BackendClient,
    query: &str,
    time_ms: i64,
    table: &mut SeriesTable,
) -> Result<Family, RequestError> {
    let time = time_param(time_ms);
    let body = client
        .call("api/v1/query", &[("query", query), ("time", &time)])
        .await?;
    let mut family = Family::default();
    parse_query(&body, table, &mut family)?;
    table.sweep();
    Ok(family)
}

/// Lists the series matching `selector` that had samples in the `window_ms` before `time_ms`,
/// at most `cap` of them, interned in `table` (with `shapes`, one per shape: see
/// [`parse_series`]), and how many Prometheus returned.
pub async fn series(
    client: &BackendClient,
    selector: &str,
    time_ms: i64,
    window_ms: i64,
    cap: usize,
    shapes: bool,
    table: &mut SeriesTable,
) -> Result<(Arc<[Arc<Series>]>, usize), RequestError> {
    let (start, end) = (time_param(time_ms - window_ms), time_param(time_ms));
    let body = client
        .call(
            "api/v1/series",
            &[("match[]", selector), ("start", &start), ("end", &end)],
        )
        .await?;
    let parsed = parse_series(&body, table, cap, shapes);
    drop(body);
    let found = parsed?;
    table.sweep();
    Ok((found.series.into(), found.returned))
}

/// Lists the label names of the series matching `selector` (of every series when it is empty)
/// that had samples in the `window_ms` before `time_ms`, at most `cap` of them, each interned
/// in `table` as a series named after it, and how many there are.
pub async fn labels(
    client: &BackendClient,
    selector: &str,
    time_ms: i64,
    window_ms: i64,
    cap: usize,
    table: &mut SeriesTable,
) -> Result<(Arc<[Arc<Series>]>, usize), RequestError> {
    let (start, end) = (time_param(time_ms - window_ms), time_param(time_ms));
    let mut params = vec![("start", start.as_str()), ("end", end.as_str())];
    if !selector.is_empty() {
        params.push(("match[]", selector));
    }
    let body = client.call("api/v1/labels", &params).await?;
    let names = parse_labels(&body, table, cap)?;
    table.sweep();
    let count = names.len();
    Ok((names.into(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keeps_milliseconds() {
        assert_eq!(time_param(1_700_000_000_123), "1700000000.123");
        assert_eq!(time_param(1_700_000_000_005), "1700000000.005");
    }
}
