//! The little PromQL the plugin needs to understand in a rendered query: its grouping clauses
//! (so one query answers for every object: the object's labels must survive each aggregation)
//! and its range durations (the window a value was computed over).

/// PromQL's aggregation operators.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Open,
    Close,
}

/// Tokens with their byte offsets; strings, selectors (`{…}`) and ranges (`[…]`) are skipped,
/// ranges collected into `ranges`.
fn tokenize(query: &str, ranges: &mut Vec<String>) -> Result<Vec<(usize, Token)>, String> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(query, i)?,
            b'{' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'}' {
                    if matches!(bytes[i], b'"' | b'\'' | b'`') {
                        i = skip_string(query, i)?;
                    } else {
                        i += 1;
                    }
                }
                if i == bytes.len() {
                    return Err(format!("unclosed `{{` in query {query:?}"));
                }
                i += 1;
            }
            b'[' => {
                let end = query[i..]
                    .find(']')
                    .ok_or_else(|| format!("unclosed `[` in query {query:?}"))?;
                ranges.push(query[i + 1..i + end].to_owned());
                i += end + 1;
            }
            b'(' => {
                tokens.push((i, Token::Open));
                i += 1;
            }
            b')' => {
                tokens.push((i, Token::Close));
                i += 1;
            }
            b'#' => {
                // A comment runs to the end of the line.
                i = query[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                tokens.push((start, Token::Ident(query[start..i].to_owned())));
            }
            _ => i += 1,
        }
    }
    Ok(tokens)
}

/// The offset just after the string literal starting at `start`.
fn skip_string(query: &str, start: usize) -> Result<usize, String> {
    let bytes = query.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && quote != b'`' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(format!("unterminated string in query {query:?}"))
}

/// The index of the `Close` matching the `Open` at `open`.
fn matching_close(tokens: &[(usize, Token)], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, (_, t)) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            Token::Ident(_) => {}
        }
    }
    None
}

fn is_ident(tokens: &[(usize, Token)], k: usize, words: &[&str]) -> bool {
    matches!(tokens.get(k), Some((_, Token::Ident(w))) if words.iter().any(|x| w.eq_ignore_ascii_case(x)))
}

/// Makes `query` keep `labels` through every aggregation and vector matching: adds them to each
/// `by (…)` and `on (…)` list, and refuses `without`/`ignoring` lists naming one and
/// aggregations with no grouping clause (they would merge objects). No labels: unchanged.
pub fn keep_labels(query: &str, labels: &[String]) -> Result<String, String> {
    if labels.is_empty() {
        return Ok(query.to_owned());
    }
    let tokens = tokenize(query, &mut Vec::new())?;
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for (k, (_, token)) in tokens.iter().enumerate() {
        let Token::Ident(word) = token else { continue };
        let word = word.to_ascii_lowercase();
        let clause = matches!(word.as_str(), "by" | "on" | "without" | "ignoring");
        if clause && matches!(tokens.get(k + 1), Some((_, Token::Open))) {
            let close = matching_close(&tokens, k + 1)
                .ok_or_else(|| format!("unbalanced parentheses in query {query:?}"))?;
            let (open_at, close_at) = (tokens[k + 1].0, tokens[close].0);
            let listed: Vec<&str> = query[open_at + 1..close_at]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if word == "by" || word == "on" {
                let missing: Vec<&str> = labels
                    .iter()
                    .map(String::as_str)
                    .filter(|l| !listed.contains(l))
                    .collect();
                if !missing.is_empty() {
                    let sep = if listed.is_empty() { "" } else { "," };
                    inserts.push((close_at, format!("{sep}{}", missing.join(","))));
                }
            } else if let Some(l) = labels.iter().find(|l| listed.contains(&l.as_str())) {
                return Err(format!(
                    "`{word} ({})` drops label {l:?}, which maps results to objects",
                    listed.join(",")
                ));
            }
            continue;
        }
        if AGGREGATIONS.contains(&word.as_str()) {
            if is_ident(&tokens, k + 1, &["by", "without"]) {
                continue;
            }
            if !matches!(tokens.get(k + 1), Some((_, Token::Open))) {
                continue;
            }
            let close = matching_close(&tokens, k + 1)
                .ok_or_else(|| format!("unbalanced parentheses in query {query:?}"))?;
            if !is_ident(&tokens, close + 1, &["by", "without"]) {
                return Err(format!(
                    "`{word}(…)` without `by (…)` merges every object into one value; \
                     group it `by (<<.GroupBy>>)`"
                ));
            }
        }
    }
    let mut out = query.to_owned();
    inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, text) in inserts {
        out.insert_str(at, &text);
    }
    Ok(out)
}

/// The longest range (`[2m]`, or a subquery's `[10m:1m]`) in `query`, ms; 0 when none.
pub fn longest_range_ms(query: &str) -> Result<u64, String> {
    let mut ranges = Vec::new();
    tokenize(query, &mut ranges)?;
    let mut longest = 0;
    for range in ranges {
        let range = range.split(':').next().unwrap_or("").trim();
        // `[<<.Window>>]`-style ranges are not durations: only literal ones count.
        longest = longest.max(parse_duration_ms(range)?);
    }
    Ok(longest)
}

/// A Prometheus duration (`90s`, `1h30m`, `500ms`) in ms.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {text:?} (e.g. `2m`, `1h30m`, `30s`)");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(bad()),
        };
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(query: &str, labels: &[&str]) -> Result<String, String> {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        keep_labels(query, &labels)
    }

    #[test]
    fn adds_missing_labels_to_by_and_on() {
        assert_eq!(
            keep(r#"sum(rate(x{a="by (z)"}[2m])) by (name)"#, &["namespace"]).unwrap(),
            r#"sum(rate(x{a="by (z)"}[2m])) by (name,namespace)"#
        );
        assert_eq!(
            keep(
                "sum by (namespace, pod) (x) / on(pod) group_left y",
                &["namespace", "pod"]
            )
            .unwrap(),
            "sum by (namespace, pod) (x) / on(pod,namespace) group_left y"
        );
        assert_eq!(keep("max(x) by ()", &["node"]).unwrap(), "max(x) by (node)");
        assert_eq!(keep("sum(x)", &[]).unwrap(), "sum(x)");
        // Functions are not aggregations.
        assert_eq!(
            keep("sum_over_time(x[5m])", &["pod"]).unwrap(),
            "sum_over_time(x[5m])"
        );
        assert_eq!(
            keep("sum without (container) (x)", &["pod"]).unwrap(),
            "sum without (container) (x)"
        );
    }

    #[test]
    fn refuses_merging_objects() {
        let err = keep("sum(x)", &["namespace"]).unwrap_err();
        assert!(err.contains("`sum(…)` without `by (…)`"), "{err}");
        let err = keep("sum(x) without (pod)", &["namespace", "pod"]).unwrap_err();
        assert!(err.contains(r#"drops label "pod""#), "{err}");
        let err = keep("a / ignoring(namespace) b", &["namespace"]).unwrap_err();
        assert!(err.contains("drops label"), "{err}");
    }

    #[test]
    fn ranges_and_durations() {
        assert_eq!(
            longest_range_ms("rate(x[2m]) + rate(y[90s])").unwrap(),
            120_000
        );
        assert_eq!(
            longest_range_ms("max_over_time(rate(x[1m])[10m:30s])").unwrap(),
            600_000
        );
        assert_eq!(longest_range_ms("x").unwrap(), 0);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert!(parse_duration_ms("3 minutes").is_err());
        assert!(parse_duration_ms("m").is_err());
    }
}
