//! Label matching: a [`Selector`] is a conjunction of [`Matcher`]s, written like a Kubernetes
//! label selector (`container!=POD,tier in (web,api),!canary`).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::types::{Label, label};

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// `name=value`: the label is present with that value.
    Eq(String, String),
    /// `name!=value`: the label is absent or has another value.
    Ne(String, String),
    /// `name`: the label is present.
    Exists(String),
    /// `!name`: the label is absent.
    NotExists(String),
    /// `name in (a,b)`: the label is present with one of the values.
    In(String, BTreeSet<String>),
    /// `name notin (a,b)`: the label is absent or has none of the values.
    NotIn(String, BTreeSet<String>),
}

impl Matcher {
    /// Whether `labels` meet this requirement.
    pub fn matches(&self, labels: &[Label]) -> bool {
        match self {
            Matcher::Eq(n, v) => label(labels, n) == Some(v.as_str()),
            Matcher::Ne(n, v) => label(labels, n) != Some(v.as_str()),
            Matcher::Exists(n) => label(labels, n).is_some(),
            Matcher::NotExists(n) => label(labels, n).is_none(),
            Matcher::In(n, set) => label(labels, n).is_some_and(|v| set.contains(v)),
            Matcher::NotIn(n, set) => !label(labels, n).is_some_and(|v| set.contains(v)),
        }
    }
}

/// Requirements that must all hold; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements.
    pub matchers: Vec<Matcher>,
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// The offending requirement.
    pub requirement: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid label selector requirement {:?}: {}",
            self.requirement, self.reason
        )
    }
}

impl std::error::Error for SelectorError {}

impl Selector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)` and `k notin (a,b)`, separated by
    /// commas; whitespace around names and values is ignored.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut matchers = Vec::new();
        for requirement in split_requirements(text) {
            let requirement = requirement.trim();
            if requirement.is_empty() {
                continue;
            }
            matchers.push(parse_requirement(requirement)?);
        }
        Ok(Selector { matchers })
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &[Label]) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether there is no requirement.
    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Selector, D::Error> {
        let text = String::deserialize(deserializer)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Splits on commas outside parentheses.
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(req: &str) -> Result<Matcher, SelectorError> {
    let err = |reason| SelectorError {
        requirement: req.to_owned(),
        reason,
    };
    let name = |n: &str| {
        let n = n.trim();
        if n.is_empty() || n.contains(char::is_whitespace) {
            Err(err("a label name must be one non-empty word"))
        } else {
            Ok(n.to_owned())
        }
    };
    if let Some(open) = req.find('(') {
        let inner = req[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| err("a set must end with ')'"))?;
        let set: BTreeSet<String> = inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let head = req[..open].trim_end();
        if let Some(n) = head.strip_suffix("notin") {
            return Ok(Matcher::NotIn(name(n)?, set));
        }
        if let Some(n) = head.strip_suffix("in")
            && n.ends_with(char::is_whitespace)
        {
            return Ok(Matcher::In(name(n)?, set));
        }
        return Err(err("expected `name in (…)` or `name notin (…)`"));
    }
    if let Some((n, v)) = req.split_once("!=") {
        return Ok(Matcher::Ne(name(n)?, v.trim().to_owned()));
    }
    if let Some((n, v)) = req.split_once('=') {
        let v = v.strip_prefix('=').unwrap_or(v);
        return Ok(Matcher::Eq(name(n)?, v.trim().to_owned()));
    }
    match req.strip_prefix('!') {
        Some(n) => Ok(Matcher::NotExists(name(n)?)),
        None => Ok(Matcher::Exists(name(req)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::labels;

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Selector::parse("a=1, b==2,c!=3,d,!e,f in (x, y.z),g notin (w-1)").unwrap();
        assert_eq!(
            s.matchers,
            vec![
                Matcher::Eq("a".into(), "1".into()),
                Matcher::Eq("b".into(), "2".into()),
                Matcher::Ne("c".into(), "3".into()),
                Matcher::Exists("d".into()),
                Matcher::NotExists("e".into()),
                Matcher::In("f".into(), set(&["x", "y.z"])),
                Matcher::NotIn("g".into(), set(&["w-1"])),
            ]
        );
        assert!(Selector::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_requirements() {
        for bad in ["=x", "a b=c", "a in (x", "a within (x)", "!", "ain (x)"] {
            assert!(Selector::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn matches_with_kubernetes_semantics() {
        let l = labels(&[("app", "web"), ("container", "main")]);
        let yes = [
            "app=web",
            "container!=POD",
            "absent!=x",
            "app",
            "!absent",
            "app in (api,web)",
            "app notin (api)",
            "absent notin (api)",
            "app=web,container=main",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches(&l), "{s} should match");
        }
        let no = [
            "app=api",
            "app!=web",
            "absent",
            "!app",
            "absent in (x)",
            "app notin (web)",
            "app=web,!container",
        ];
        for s in no {
            assert!(
                !Selector::parse(s).unwrap().matches(&l),
                "{s} should not match"
            );
        }
    }

    #[test]
    fn deserializes_from_a_string() {
        let s: Selector = serde_json::from_str("\"container!=POD\"").unwrap();
        assert_eq!(
            s.matchers,
            vec![Matcher::Ne("container".into(), "POD".into())]
        );
        let err = serde_json::from_str::<Selector>("\"a in (\"").unwrap_err();
        assert!(err.to_string().contains("invalid label selector"), "{err}");
    }
}
