//! Which discovered series a rule takes (`seriesFilters`, `name.matches`) and the API name it
//! gives them (`name.as`), as prometheus-adapter defines them.

use regex::Regex;

use crate::config::{NameMapping, RegexFilter};
use crate::goregex;

/// A rule's naming: the series name filters and the `matches` → `as` rewrite.
#[derive(Debug, Clone)]
pub struct Naming {
    /// `is` filters (must match) and `isNot` filters (must not).
    filters: Vec<(Regex, bool)>,
    matches: Regex,
    as_: String,
}

impl Naming {
    /// Compiles `name` and `filters`. `name.matches` defaults to `.*`; `name.as` to `$0`
    /// without capture groups and `$1` with one, and is required with more.
    pub fn new(name: &NameMapping, filters: &[RegexFilter]) -> Result<Naming, String> {
        let mut compiled = Vec::new();
        for (i, filter) in filters.iter().enumerate() {
            let (pattern, keep) = match (&filter.is, &filter.is_not) {
                (Some(p), None) => (p, true),
                (None, Some(p)) => (p, false),
                _ => {
                    return Err(format!(
                        "seriesFilters[{i}]: give exactly one of `is` and `isNot`"
                    ));
                }
            };
            let regex =
                goregex::compile(pattern).map_err(|e| format!("seriesFilters[{i}]: {e}"))?;
            compiled.push((regex, keep));
        }
        let pattern = if name.matches.is_empty() {
            ".*"
        } else {
            &name.matches
        };
        let matches = goregex::compile(pattern).map_err(|e| format!("name.matches: {e}"))?;
        let as_ = if name.as_.is_empty() {
            match matches.captures_len() - 1 {
                0 => "$0".to_owned(),
                1 => "$1".to_owned(),
                n => {
                    return Err(format!(
                        "name.as: required when name.matches has {n} capture groups"
                    ));
                }
            }
        } else {
            name.as_.clone()
        };
        Ok(Naming {
            filters: compiled,
            matches,
            as_,
        })
    }

    /// The API name of series `series`, or `None` when the filters or `name.matches` reject it.
    /// Like Go's `Regexp.ExpandString`, the result is `as` expanded with the first match's
    /// groups (not a replacement inside the series name).
    pub fn api_name(&self, series: &str) -> Option<String> {
        if !self
            .filters
            .iter()
            .all(|(regex, keep)| regex.is_match(series) == *keep)
        {
            return None;
        }
        let captures = self.matches.captures(series)?;
        let mut name = String::new();
        captures.expand(&self.as_, &mut name);
        (!name.is_empty()).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(matches: &str, as_: &str, filters: &[(&str, bool)]) -> Result<Naming, String> {
        let filters: Vec<RegexFilter> = filters
            .iter()
            .map(|(p, keep)| RegexFilter {
                is: keep.then(|| p.to_string()),
                is_not: (!keep).then(|| p.to_string()),
            })
            .collect();
        let name = NameMapping {
            matches: matches.into(),
            as_: as_.into(),
        };
        Naming::new(&name, &filters)
    }

    #[test]
    fn documented_defaults_and_rewrites() {
        let n = naming("^container_(.*)_seconds_total$", "", &[]).unwrap();
        assert_eq!(
            n.api_name("container_cpu_usage_seconds_total").as_deref(),
            Some("cpu_usage")
        );
        assert_eq!(n.api_name("container_memory_usage_bytes"), None);
        let n = naming("^(.*)_total$", "${1}_per_second", &[]).unwrap();
        assert_eq!(
            n.api_name("http_requests_total").as_deref(),
            Some("http_requests_per_second")
        );
        let n = naming("", "", &[]).unwrap();
        assert_eq!(n.api_name("queue_depth").as_deref(), Some("queue_depth"));
        let n = naming("", "cheesy_goodness", &[]).unwrap();
        assert_eq!(n.api_name("cheddar").as_deref(), Some("cheesy_goodness"));
        // Unanchored: the expansion of the first match, not a replacement in the name.
        let n = naming("requests_(.*)", "", &[]).unwrap();
        assert_eq!(n.api_name("http_requests_total").as_deref(), Some("total"));
        let err = naming("^(a)_(b)$", "", &[]).unwrap_err();
        assert!(err.contains("name.as: required"), "{err}");
    }

    #[test]
    fn filters_is_and_is_not() {
        let n = naming(
            "^container_(.*)_total$",
            "",
            &[("^container_.*_seconds_total$", false)],
        )
        .unwrap();
        assert_eq!(n.api_name("container_cpu_usage_seconds_total"), None);
        assert_eq!(
            n.api_name("container_network_receive_bytes_total")
                .as_deref(),
            Some("network_receive_bytes")
        );
        let n = naming("", "", &[("^http_", true)]).unwrap();
        assert_eq!(n.api_name("grpc_calls"), None);
        assert!(
            naming("", "", &[("(", true)])
                .unwrap_err()
                .starts_with("seriesFilters[0]: ")
        );
    }

    #[test]
    fn regex_metacharacters_do_not_over_match() {
        // `.` in a filter is a metacharacter; escaped, it only matches a dot.
        let n = naming(r"^app\.requests_(.*)$", "", &[]).unwrap();
        assert_eq!(n.api_name("app:requests_total"), None);
        assert_eq!(n.api_name("appXrequests_total"), None);
    }
}
