//! Label and field selectors, as list and watch requests use them.

use std::collections::BTreeMap;

/// The attributes selectors look at: identity, labels and selectable fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    /// Namespace (empty for cluster-scoped objects).
    pub(crate) namespace: String,
    /// Name.
    pub(crate) name: String,
    /// Labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Selectable fields besides `metadata.name` / `metadata.namespace`, e.g. `spec.nodeName`.
    pub(crate) fields: Vec<(&'static str, String)>,
}

impl Attrs {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, v)| v.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the equality (`=`, `==`, `!=`), set (`in`, `notin`) and existence (`k`, `!k`)
    /// forms, comma-separated.
    pub(crate) fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(term)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether it selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key \"{k}\""))
    }
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if let Some(open) = term.find('(') {
        let close = term
            .rfind(')')
            .filter(|c| *c > open)
            .ok_or_else(|| format!("unterminated set in \"{term}\""))?;
        let head: Vec<&str> = term[..open].split_whitespace().collect();
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return match head.as_slice() {
            [key, "in"] => Ok(Requirement::In(valid_key(key)?, values)),
            [key, "notin"] => Ok(Requirement::NotIn(valid_key(key)?, values)),
            _ => Err(format!("unable to parse requirement \"{term}\"")),
        };
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(valid_key(key.trim())?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            valid_key(k.trim())?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(
            valid_key(k.trim())?,
            v.trim().to_string(),
        ));
    }
    Ok(Requirement::Exists(valid_key(term)?))
}

/// A parsed `fieldSelector`: `field=value`, `field==value` and `field!=value`, comma-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `s`, accepting only the fields in `supported` (plus `metadata.name` and
    /// `metadata.namespace`), like the apiserver's per-resource field label conversion.
    pub(crate) fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !supported.contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether `attrs` satisfy every term.
    pub(crate) fn matches(&self, attrs: &Attrs) -> bool {
        self.0
            .iter()
            .all(|(field, equal, value)| (attrs.field(field).unwrap_or("") == value) == *equal)
    }

    /// Whether it selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Everything a list or watch filters on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    /// Only this namespace, when set.
    pub(crate) namespace: Option<String>,
    /// `labelSelector`.
    pub(crate) labels: LabelSelector,
    /// `fieldSelector`.
    pub(crate) fields: FieldSelector,
}

impl Filter {
    /// Whether an object with `attrs` passes.
    pub(crate) fn matches(&self, attrs: &Attrs) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == attrs.namespace)
            && self.labels.matches(&attrs.labels)
            && self.fields.matches(attrs)
    }

    /// Whether it has no selectors (the namespace doesn't count).
    pub(crate) fn has_no_selectors(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_forms() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app",
            "!missing",
            "app in (db, web)",
            "tier notin (back),app=web",
            "",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&l),
                "{s} should match"
            );
        }
        let no = [
            "app=db",
            "app!=web",
            "missing",
            "!app",
            "app in (db)",
            "tier notin (front)",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&l),
                "{s} should not match"
            );
        }
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selector_checks_supported_fields() {
        let attrs = Attrs {
            namespace: "ns".into(),
            name: "p".into(),
            labels: BTreeMap::new(),
            fields: vec![("spec.nodeName", "node-1".into())],
        };
        let f = FieldSelector::parse(
            "spec.nodeName=node-1,metadata.namespace!=other",
            &["spec.nodeName"],
        )
        .unwrap();
        assert!(f.matches(&attrs));
        let f = FieldSelector::parse("metadata.name==q", &[]).unwrap();
        assert!(!f.matches(&attrs));
        assert_eq!(
            FieldSelector::parse("spec.bogus=1", &["spec.nodeName"]).unwrap_err(),
            "field label not supported: spec.bogus"
        );
    }
}
