//! Kubernetes label and field selectors: parsing, validation, matching and canonical printing.
//!
//! Behaviour follows `k8s.io/apimachinery`'s `pkg/labels` (the set-based grammar: `=`, `==`, `!=`,
//! `in`, `notin`, `key`, `!key`, `>`, `<`) and `pkg/fields` (`=`, `==`, `!=` with backslash
//! escaping). Error messages keep apimachinery's wording because they are returned to clients in
//! `400 Bad Request` statuses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;

/// Maximum length, in bytes, of a label value and of the name part of a label key.
const LABEL_NAME_MAX_LEN: usize = 63;
/// Maximum length, in bytes, of the DNS subdomain prefix of a label key.
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Why a selector string was rejected. The `Display` text is meant for a client-facing status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector is malformed, or one of its keys or values is invalid.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// The field selector is malformed (bad term or escape sequence).
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// The field selector names a field the resource cannot be selected by.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// A set of labels a [`LabelSelector`] can be matched against.
pub trait Labels {
    /// The value of label `key`, or `None` when the label is absent.
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl Labels for [(&str, &str)] {
    /// The first pair whose key is `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

impl<const N: usize> Labels for [(&str, &str); N] {
    fn get(&self, key: &str) -> Option<&str> {
        Labels::get(self.as_slice(), key)
    }
}

/// The relation a [`Requirement`] imposes between a label and its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    /// `key>n`, with the parsed bound.
    GreaterThan(i64),
    /// `key<n`, with the parsed bound.
    LessThan(i64),
}

/// One comma-separated term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Operator,
    /// Sorted and deduplicated; one value for exact and numeric operators, none for existence.
    values: Vec<String>,
}

impl Requirement {
    /// Whether a label whose value is `value` (`None` = absent) satisfies this requirement.
    fn matches_value(&self, value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match (self.op, value) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, Some(v)) => has(v),
            (Operator::NotEquals | Operator::NotIn, Some(v)) => !has(v),
            (Operator::NotEquals | Operator::NotIn | Operator::DoesNotExist, None) => true,
            (Operator::Exists, Some(_)) => true,
            (Operator::GreaterThan(bound), Some(v)) => v.parse::<i64>().is_ok_and(|n| n > bound),
            (Operator::LessThan(bound), Some(v)) => v.parse::<i64>().is_ok_and(|n| n < bound),
            _ => false,
        }
    }

    /// Whether this requirement restricts its key to a finite set of values.
    fn pins(&self) -> bool {
        matches!(
            self.op,
            Operator::Equals | Operator::DoubleEquals | Operator::In
        )
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan(_) => ">",
            Operator::LessThan(_) => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        let values = self.values.join(",");
        if matches!(self.op, Operator::In | Operator::NotIn) {
            write!(f, "{}{op}({values})", self.key)
        } else {
            write!(f, "{}{op}{values}", self.key)
        }
    }
}

/// A parsed label selector: the AND of its requirements.
///
/// The empty selector (from `""`) matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key; requirements on the same key keep their input order.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a label selector in Kubernetes syntax, e.g. `app=web,tier in (a,b),!canary`.
    ///
    /// The empty (or all-whitespace) string selects everything.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Parser::new(s)
            .selector()
            .map_err(SelectorError::InvalidLabelSelector)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// The selector that matches every set of labels.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfies every requirement.
    ///
    /// `!=`, `notin` and `!key` match when the label is absent; `=`, `in`, `key`, `>` and `<`
    /// do not.
    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key)))
    }

    /// Values the selector requires for `key` via `=`/`==`/`in` (for index lookups), if it pins it.
    ///
    /// The values are sorted and already filtered by every other requirement on `key`
    /// (`x in (a,b),x!=a` gives `["b"]`); an empty list means no value can match.
    /// `None` means the selector does not restrict `key` to a finite set.
    pub fn required_values(&self, key: &str) -> Option<Vec<&str>> {
        let on_key = || self.requirements.iter().filter(move |r| r.key == key);
        let mut pinning = on_key().filter(|r| r.pins());
        let first = pinning.next()?;
        let candidates = first.values.iter().map(String::as_str);
        Some(
            candidates
                .filter(|v| on_key().all(|r| r.matches_value(Some(v))))
                .collect(),
        )
    }
}

/// A label selector as an API object (`metav1.LabelSelector`), e.g. the `selector` echoed in
/// custom metric values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorObject {
    /// `key=value` terms.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based terms, sorted by key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirementObject>,
}

/// One set-based term of a [`LabelSelectorObject`] (`metav1.LabelSelectorRequirement`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelSelectorRequirementObject {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: &'static str,
    /// Sorted values; empty for `Exists` and `DoesNotExist`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// The selector as an API object, as apimachinery's `ParseToLabelSelector` builds it: `=`
    /// and `==` become `matchLabels` (the last term on a key wins), the rest `matchExpressions`
    /// in key order. `key!=v` becomes `NotIn (v)`, the set it means (upstream rejects it).
    ///
    /// Fails for `>` and `<`, which `metav1.LabelSelector` cannot express.
    pub fn to_object(&self) -> Result<LabelSelectorObject, SelectorError> {
        let mut object = LabelSelectorObject::default();
        for r in &self.requirements {
            let operator = match r.op {
                Operator::Equals | Operator::DoubleEquals => {
                    let value = r.values.first().cloned().unwrap_or_default();
                    object.match_labels.insert(r.key.clone(), value);
                    continue;
                }
                Operator::In => "In",
                Operator::NotIn | Operator::NotEquals => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
                Operator::GreaterThan(_) | Operator::LessThan(_) => {
                    let op = if matches!(r.op, Operator::GreaterThan(_)) {
                        "gt"
                    } else {
                        "lt"
                    };
                    return Err(SelectorError::InvalidLabelSelector(format!(
                        "{op:?} isn't supported in label selectors"
                    )));
                }
            };
            object
                .match_expressions
                .push(LabelSelectorRequirementObject {
                    key: r.key.clone(),
                    operator,
                    values: r.values.clone(),
                });
        }
        Ok(object)
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical form, as Go's `Selector.String()`: requirements sorted by key, values sorted,
    /// no whitespace except around `in`/`notin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Lexical class of a label selector token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    End,
    OpenPar,
    ClosePar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    In,
    NotIn,
    Ident,
}

/// A token and the text it was read from (empty for the end of input).
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    lit: &'a str,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a label selector into tokens, ending with one [`Kind::End`].
///
/// Operators are matched longest-first (`!=` before `!`); any other run of bytes that are neither
/// whitespace nor operator characters is an identifier, or the keyword `in` / `notin`.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_whitespace(b) {
            i += 1;
            continue;
        }
        let start = i;
        let kind = if is_special(b) {
            let double = matches!(b, b'=' | b'!') && bytes.get(i + 1) == Some(&b'=');
            i += if double { 2 } else { 1 };
            match (b, double) {
                (b'=', true) => Kind::DoubleEquals,
                (b'!', true) => Kind::NotEquals,
                (b'=', false) => Kind::Equals,
                (b'!', false) => Kind::Not,
                (b'(', _) => Kind::OpenPar,
                (b')', _) => Kind::ClosePar,
                (b',', _) => Kind::Comma,
                (b'>', _) => Kind::Greater,
                _ => Kind::Less,
            }
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_whitespace(bytes[i]) {
                i += 1;
            }
            match &s[start..i] {
                "in" => Kind::In,
                "notin" => Kind::NotIn,
                _ => Kind::Ident,
            }
        };
        tokens.push(Token {
            kind,
            lit: &s[start..i],
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        lit: "",
    });
    tokens
}

/// Where the parser is: in value position the keywords `in` / `notin` are plain identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Operator,
    Values,
}

/// Recursive-descent parser over the token list of one label selector.
struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            tokens: tokenize(s),
            pos: 0,
        }
    }

    fn peek(&self, cx: Context) -> Token<'a> {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)];
        match (cx, t.kind) {
            (Context::Values, Kind::In | Kind::NotIn) => Token {
                kind: Kind::Ident,
                ..t
            },
            _ => t,
        }
    }

    fn next(&mut self, cx: Context) -> Token<'a> {
        let t = self.peek(cx);
        self.pos += 1;
        t
    }

    /// `selector := requirement ("," requirement)*` or nothing.
    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let t = self.peek(Context::Values);
            match t.kind {
                Kind::Ident | Kind::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let t = self.next(Context::Values);
                    match t.kind {
                        Kind::End => return Ok(requirements),
                        Kind::Comma => {
                            let t = self.peek(Context::Values);
                            if !matches!(t.kind, Kind::Ident | Kind::Not) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.lit
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.lit
                            ));
                        }
                    }
                }
                Kind::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.lit
                    ));
                }
            }
        }
    }

    /// `requirement := ["!"] KEY [op value | ("in"|"notin") "(" values ")"]`.
    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut t = self.next(Context::Values);
        let negated = t.kind == Kind::Not;
        if negated {
            t = self.next(Context::Values);
        }
        if t.kind != Kind::Ident {
            return Err(format!("found '{}', expected: identifier", t.lit));
        }
        let key = t.lit;
        let errs = label_key_errors(key);
        if !errs.is_empty() {
            return Err(format!("key: Invalid value: {key:?}: {}", errs.join("; ")));
        }
        if negated {
            return new_requirement(key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(Context::Values).kind, Kind::End | Kind::Comma) {
            return new_requirement(key, Operator::Exists, Vec::new());
        }
        let t = self.next(Context::Operator);
        let op = match t.kind {
            Kind::In => Operator::In,
            Kind::NotIn => Operator::NotIn,
            Kind::Equals => Operator::Equals,
            Kind::DoubleEquals => Operator::DoubleEquals,
            Kind::NotEquals => Operator::NotEquals,
            // The bound is filled in by `new_requirement` once the value is known.
            Kind::Greater => Operator::GreaterThan(0),
            Kind::Less => Operator::LessThan(0),
            _ => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.lit
                ));
            }
        };
        let values = if matches!(op, Operator::In | Operator::NotIn) {
            self.value_set()?
        } else {
            vec![self.exact_value()?]
        };
        new_requirement(key, op, values)
    }

    /// `"(" values ")"`; returns the values sorted and deduplicated. `()` is the set `{""}`.
    fn value_set(&mut self) -> Result<Vec<&'a str>, String> {
        let t = self.next(Context::Values);
        if t.kind != Kind::OpenPar {
            return Err(format!("found '{}' expected: '('", t.lit));
        }
        let t = self.peek(Context::Values);
        match t.kind {
            Kind::Ident | Kind::Comma => {
                let set = self.identifier_list()?;
                // `identifier_list` only returns with `)` as the next token.
                self.next(Context::Values);
                Ok(set.into_iter().collect())
            }
            Kind::ClosePar => {
                self.next(Context::Values);
                Ok(vec![""])
            }
            _ => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.lit
            )),
        }
    }

    /// A comma-separated list of possibly empty values, up to (not including) `)`.
    fn identifier_list(&mut self) -> Result<BTreeSet<&'a str>, String> {
        let mut set = BTreeSet::new();
        loop {
            let t = self.next(Context::Values);
            match t.kind {
                Kind::Ident => {
                    set.insert(t.lit);
                    let t = self.peek(Context::Values);
                    match t.kind {
                        Kind::Comma => {}
                        Kind::ClosePar => return Ok(set),
                        _ => return Err(format!("found '{}', expected: ',' or ')'", t.lit)),
                    }
                }
                Kind::Comma => {
                    // A leading, trailing or doubled comma stands for the empty value.
                    if set.is_empty() {
                        set.insert("");
                    }
                    match self.peek(Context::Values).kind {
                        Kind::ClosePar => {
                            set.insert("");
                            return Ok(set);
                        }
                        Kind::Comma => {
                            self.next(Context::Values);
                            set.insert("");
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{}', expected: ',', or identifier", t.lit)),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when the term ends right there.
    fn exact_value(&mut self) -> Result<&'a str, String> {
        if matches!(self.peek(Context::Values).kind, Kind::End | Kind::Comma) {
            return Ok("");
        }
        let t = self.next(Context::Values);
        if t.kind == Kind::Ident {
            Ok(t.lit)
        } else {
            Err(format!("found '{}', expected: identifier", t.lit))
        }
    }
}

/// Validates the values of a requirement as apimachinery's `NewRequirement` does, aggregating
/// every problem into one message.
fn new_requirement(key: &str, op: Operator, values: Vec<&str>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    let mut op = op;
    if let Operator::GreaterThan(bound) | Operator::LessThan(bound) = &mut op {
        // The grammar guarantees exactly one value here.
        for (i, v) in values.iter().enumerate() {
            match v.parse::<i64>() {
                Ok(n) => *bound = n,
                Err(_) => errs.push(format!(
                    "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                )),
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let msgs = label_value_errors(v);
        if !msgs.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {v:?}: {}",
                msgs.join("; ")
            ));
        }
    }
    errs.dedup();
    match errs.len() {
        0 => Ok(Requirement {
            key: key.to_owned(),
            op,
            values: values.into_iter().map(str::to_owned).collect(),
        }),
        1 => Err(errs.swap_remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// Formats a pattern failure the way apimachinery's `RegexError` does (including its spacing).
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(e);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(re);
    out.push_str("')");
    out
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: the name part of a key, or a non-empty value.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Dot-separated labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_subdomain(s: &str) -> bool {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                lower_alnum(f) && lower_alnum(l) && b.iter().all(|c| lower_alnum(c) || *c == b'-')
            }
            _ => false,
        }
    })
}

/// Problems with a label key (`[prefix/]name`), as apimachinery's `IsLabelKey` reports them.
fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let name = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LEN {
                    errs.push(format!(
                        "prefix part must be no more than {DNS1123_SUBDOMAIN_MAX_LEN} bytes"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_ERR,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_ERR,
                    LABEL_KEY_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_NAME_MAX_LEN {
        errs.push(format!(
            "name part must be no more than {LABEL_NAME_MAX_LEN} bytes"
        ));
    }
    if !is_label_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_ERR,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems with a label value, as apimachinery's `IsLabelValue` reports them.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_NAME_MAX_LEN {
        errs.push(format!("must be no more than {LABEL_NAME_MAX_LEN} bytes"));
    }
    if !value.is_empty() && !is_label_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    /// `true` for `=` / `==`, `false` for `!=`.
    equals: bool,
    /// Unescaped value.
    value: String,
}

/// A parsed field selector: the AND of `field=value`, `field==value` and `field!=value` terms.
///
/// In values, `\,`, `\=` and `\\` stand for `,`, `=` and `\`. The empty selector matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Sorted by the terms' source text, as apimachinery does.
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses and checks every field is in `supported` (e.g. ["metadata.name","metadata.namespace"]);
    /// an unsupported field is an error `field label not supported: X`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_field_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, equals, raw) = split_field_term(part).ok_or_else(|| {
                SelectorError::InvalidFieldSelector(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ))
            })?;
            let value = unescape_field_value(raw).map_err(SelectorError::InvalidFieldSelector)?;
            terms.push(FieldTerm {
                field: field.to_owned(),
                equals,
                value,
            });
        }
        if let Some(t) = terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            return Err(SelectorError::UnsupportedField(t.field.clone()));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the object whose fields `get` returns satisfies every term; as in Kubernetes, an
    /// absent field (`None`) compares as the empty string.
    pub fn matches<'v>(&self, get: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.terms.iter().all(|t| {
            let actual = get(&t.field).unwrap_or("");
            (actual == t.value) == t.equals
        })
    }

    /// The value an `=` / `==` term requires for `field`, if there is one (the first, in
    /// canonical order).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equals && t.field == field)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form: sorted terms, `==` written as `=`, values re-escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&t.field)?;
            f.write_str(if t.equals { "=" } else { "!=" })?;
            for c in t.value.chars() {
                if matches!(c, '\\' | ',' | '=') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Splits on commas not escaped by a backslash; escapes are kept in the terms.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==` or `=`): (field, is-equality, raw value).
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        [("!=", false), ("==", true), ("=", true)]
            .into_iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, equals)| (&term[..i], equals, &rest[op.len()..]))
    })
}

/// Resolves `\\`, `\,` and `\=`; any other escape, a trailing `\`, or a bare `,`/`=` is an error.
fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ));
                }
                None => return Err("invalid field selector: invalid escape sequence: \\".into()),
            },
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: '{c}'"
                ));
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A selector, the labels it is matched against, and the expected outcome.
    type MatchCase<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    /// A field term and its expected (field, is-equality, raw value) split.
    type SplitCase<'a> = (&'a str, Option<(&'a str, bool, &'a str)>);

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("parse({s:?}): {e}"))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("parse({s:?}) accepted as {sel}"),
            Err(e) => e.to_string(),
        }
    }

    /// From labels `TestSelectorParse`: valid strings print back without their spaces.
    #[test]
    fn label_parse_round_trips() {
        let good = [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ];
        for s in good {
            assert_eq!(parse(s).to_string(), s.replace(' ', ""), "{s:?}");
        }
        for s in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
            parse_err(s);
        }
    }

    /// From labels `TestSetSelectorParser`: canonical form of valid input, and rejected input.
    #[test]
    fn label_set_selector_parser() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("\rx", Some("x")),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                Some("this-is-a-dns.domain.com/key-with-dash"),
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                Some("this-is-another-dns.domain.com/key-with-dash in (so,what)"),
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                Some("0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)"),
            ),
            ("foo  in\t (abc)", Some("foo in (abc)")),
            ("x notin\n (abc)", Some("x notin (abc)")),
            ("x  notin\t\t\t(abc,def)", Some("x notin (abc,def)")),
            ("x in (abc,def)", Some("x in (abc,def)")),
            ("x in (abc,)", Some("x in (,abc)")),
            ("x in ()", Some("x in ()")),
            (
                "x notin (abc,,def),bar,z in (),w",
                Some("bar,w,x notin (,abc,def),z in ()"),
            ),
            ("x,y in (a)", Some("x,y in (a)")),
            ("x=a", Some("x=a")),
            ("x>1", Some("x>1")),
            ("x<7", Some("x<7")),
            ("x=a,y!=b", Some("x=a,y!=b")),
            ("x=a,y!=b,z in (h,i,j)", Some("x=a,y!=b,z in (h,i,j)")),
            ("x=a||y=b", None),
            ("x,,y", None),
            (",x,y", None),
            ("x nott in (y)", None),
            ("x notin ( )", Some("x notin ()")),
            ("x notin (, a)", Some("x notin (,a)")),
            ("a in (xyz),", None),
            ("a in (xyz)b notin ()", None),
            ("a ", Some("a")),
            ("a in (x,y,notin, z,in)", Some("a in (in,notin,x,y,z)")),
            ("a in (xyz abc)", None),
            ("a notin(", None),
            ("a (", None),
            ("(", None),
        ];
        for (input, want) in cases {
            match (LabelSelector::parse(input), want) {
                (Ok(sel), Some(w)) => {
                    assert_eq!(sel.to_string(), *w, "{input:?}");
                    // The canonical form parses back to the same selector.
                    assert_eq!(parse(w), sel, "{input:?} reparsed");
                }
                (Err(_), None) => {}
                (got, _) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// From labels `TestDeterministicParse` and `TestToString`: sorted keys and values.
    #[test]
    fn label_canonical_string() {
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
        assert_eq!(
            parse("z,y notin (jkl),x in (def,abc)").to_string(),
            "x in (abc,def),y notin (jkl),z"
        );
        assert_eq!(
            parse("!z,y!=jkl,x notin (def,abc)").to_string(),
            "x notin (abc,def),y!=jkl,!z"
        );
        assert_eq!(
            parse("x=abc,y==jkl,z!=a,z").to_string(),
            "x=abc,y==jkl,z!=a,z"
        );
        assert_eq!(parse("x>2,y<8,z").to_string(), "x>2,y<8,z");
        // Duplicate values collapse; same-key requirements keep input order.
        assert_eq!(parse("k in (b,a,b),k").to_string(), "k in (a,b),k");
    }

    /// From labels `TestSelectorMatches` and `TestRequirementSelectorMatching`.
    #[test]
    fn label_matching() {
        let cases: &[MatchCase] = &[
            ("", &[("x", "y")], true),
            ("x=y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x", &[("x", "z")], true),
            ("!x", &[("y", "z")], true),
            ("x>1", &[("x", "2")], true),
            ("x<1", &[("x", "0")], true),
            ("x=z", &[], false),
            ("x=y", &[("x", "z")], false),
            ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("x", &[("y", "z")], false),
            ("!x", &[("x", "z")], false),
            ("x>1", &[("x", "0")], false),
            ("x<1", &[("x", "2")], false),
            (
                "foo=bar,foobar=bar,baz=blah",
                &[("foo", "bar"), ("baz", "blah")],
                false,
            ),
            (
                "x in (foo),y notin (alpha)",
                &[("x", "foo"), ("y", "baz")],
                true,
            ),
            (
                "x in (foo),y in (alpha)",
                &[("x", "foo"), ("y", "baz")],
                false,
            ),
            ("x notin (),y", &[("y", "")], true),
            ("!x,y", &[("y", "")], true),
            ("x notin (),!y", &[("y", "")], false),
            ("x in ()", &[("y", "baz")], false),
            ("x in ()", &[("x", "")], true),
            ("z>1", &[("z", "2")], true),
            ("z>1", &[("z", "v2")], false),
            ("z<10", &[("z", "-3")], true),
            // Strict bounds.
            ("z>1", &[("z", "1")], false),
            ("z<1", &[("z", "1")], false),
            // Absent labels: `!=` and `notin` match, `in`, `=`, `>` do not.
            ("x!=a", &[], true),
            ("x notin (a,b)", &[], true),
            ("x in (a,b)", &[], false),
            ("x=", &[], false),
            ("x>0", &[], false),
            ("x=", &[("x", "")], true),
            (
                "app.kubernetes.io/name=web",
                &[("app.kubernetes.io/name", "web")],
                true,
            ),
            ("app.kubernetes.io/name=web", &[("name", "web")], false),
            ("v in (1.2_3-b,a)", &[("v", "1.2_3-b")], true),
        ];
        for (sel, labels, want) in cases {
            assert_eq!(parse(sel).matches(*labels), *want, "{sel:?} on {labels:?}");
        }
    }

    /// From labels `TestEverything`, with every `Labels` implementation.
    #[test]
    fn label_everything_and_label_sources() {
        let everything = LabelSelector::everything();
        assert!(everything.is_empty());
        assert!(parse("  ").is_empty());
        assert!(!parse("x").is_empty());
        assert!(everything.matches(&[("x", "y")]));

        let sel = parse("app=web,tier notin (db)");
        let btree: BTreeMap<String, String> = [("app", "web"), ("tier", "fe")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let hash: HashMap<String, String> = btree.clone().into_iter().collect();
        assert!(sel.matches(&btree));
        assert!(sel.matches(&hash));
        assert!(sel.matches(&[("app", "web")][..]));
        assert!(!sel.matches(&[("app", "web"), ("tier", "db")]));
    }

    /// From labels `TestRequirementConstructor`, `TestSelectorParse` and the parser's error
    /// branches: the messages apimachinery returns.
    #[test]
    fn label_error_messages() {
        let name_regex = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let value_regex = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let cases: Vec<(&str, String)> = vec![
            ("x=a b", "found 'b', expected: ',' or 'end of string'".into()),
            (
                "x in (a",
                "unable to parse requirement: found '', expected: ',' or ')'".into(),
            ),
            (
                "x in (a,",
                "unable to parse requirement: found '', expected: ',', or identifier".into(),
            ),
            (
                "x in a",
                "unable to parse requirement: found 'a' expected: '('".into(),
            ),
            (
                "a notin(",
                "unable to parse requirement: found '', expected: ',', ')' or identifier".into(),
            ),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'".into(),
            ),
            (",x", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("x,", "found '', expected: identifier after ','".into()),
            ("x,,y", "found ',', expected: identifier after ','".into()),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            (
                "x IN (a)",
                "unable to parse requirement: found 'IN', expected: in, notin, =, ==, !=, gt, lt"
                    .into(),
            ),
            (
                "x=!a",
                "unable to parse requirement: found '!', expected: identifier".into(),
            ),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x>",
                "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x>99999999999999999999",
                "unable to parse requirement: values[0]: Invalid value: \"99999999999999999999\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x>-1",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-1\": {value_regex}"),
            ),
            (
                "x>a_",
                format!("unable to parse requirement: [values[0]: Invalid value: \"a_\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"a_\": {value_regex}]"),
            ),
            (
                "x=a|b",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"a|b\": {value_regex}"),
            ),
            (
                "x in (ok,-bad)",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-bad\": {value_regex}"),
            ),
            (
                "a:=b",
                format!("unable to parse requirement: key: Invalid value: \"a:\": name part {name_regex}"),
            ),
            (
                "-x",
                format!("unable to parse requirement: key: Invalid value: \"-x\": name part {name_regex}"),
            ),
            (
                "/x",
                "unable to parse requirement: key: Invalid value: \"/x\": prefix part must be non-empty".into(),
            ),
            (
                "Example.com/x",
                "unable to parse requirement: key: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
            ),
            (
                "x/",
                format!("unable to parse requirement: key: Invalid value: \"x/\": name part must be non-empty; name part {name_regex}"),
            ),
            (
                "a/b/c",
                format!("unable to parse requirement: key: Invalid value: \"a/b/c\": a valid label key {name_regex} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_err(input), want, "{input:?}");
        }
    }

    /// From labels `TestRequirementConstructor`: key and value length limits.
    #[test]
    fn label_length_limits() {
        let name63 = "a".repeat(63);
        let prefix253 = format!("{}.{}", "b".repeat(126), "c".repeat(126));
        assert_eq!(prefix253.len(), 253);
        parse(&format!("{prefix253}/{name63}={name63}"));
        assert!(parse_err(&"a".repeat(64)).contains("name part must be no more than 63 bytes"));
        assert!(
            parse_err(&format!("{prefix253}d/x"))
                .contains("prefix part must be no more than 253 bytes")
        );
        let long = "v".repeat(64);
        assert_eq!(
            parse_err(&format!("x in (a,{long})")),
            format!(
                "unable to parse requirement: values[1][x]: Invalid value: \"{long}\": must be no more than 63 bytes"
            )
        );
    }

    /// Valid odd corners apimachinery accepts: `x==` is `x` equal to the empty string, keywords as
    /// keys and values, non-ASCII rejected only by validation.
    #[test]
    fn label_edge_cases() {
        assert_eq!(parse("x==").to_string(), "x==");
        assert!(parse("x==").matches(&[("x", "")]));
        assert_eq!(parse("in in (notin)").to_string(), "in in (notin)");
        assert_eq!(parse("x!=in").to_string(), "x!=in");
        assert_eq!(parse("x in (,)").to_string(), "x in ()");
        assert_eq!(parse("x in (a,,b)").to_string(), "x in (,a,b)");
        // apimachinery quirk kept: a doubled comma right before `)` is rejected.
        assert_eq!(
            parse_err("x in (a,,)"),
            "unable to parse requirement: found ')', expected: ',', or identifier"
        );
        // Go's ParseInt accepts a sign, but the label-value rule then rejects it.
        assert!(parse_err("x>+5").contains("values[0][x]"));
        assert_eq!(parse("x>05").to_string(), "x>05");
        assert!(parse("x>05").matches(&[("x", "6")]));
        // Bytes outside the grammar end up in identifiers and fail validation.
        assert!(parse_err("x=é").contains("Invalid value"));
        assert!(parse_err("ключ").contains("key: Invalid value"));
    }

    /// From labels `TestRequiresExactMatch`, extended to sets and contradictions.
    #[test]
    fn label_required_values() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            ("", "test", None),
            ("a in (b)", "test", None),
            ("test in (b)", "test", Some(&["b"])),
            ("test in ()", "test", Some(&[""])),
            ("test=b", "test", Some(&["b"])),
            ("test==b", "test", Some(&["b"])),
            ("test notin (b)", "test", None),
            ("test!=b", "test", None),
            ("test", "test", None),
            ("test,test in (b)", "test", Some(&["b"])),
            ("test in (c,a,b)", "test", Some(&["a", "b", "c"])),
            ("test in (a,b,c),test!=b", "test", Some(&["a", "c"])),
            ("test in (a,b),test in (b,c)", "test", Some(&["b"])),
            ("test=a,test=b", "test", Some(&[])),
            ("test=a,!test", "test", Some(&[])),
            ("test in (1,5,9),test>3", "test", Some(&["5", "9"])),
        ];
        for (sel, key, want) in cases {
            assert_eq!(
                parse(sel).required_values(key).as_deref(),
                *want,
                "{sel:?} / {key}"
            );
        }
    }

    const SUPPORTED: &[&str] = &["metadata.name", "metadata.namespace"];

    fn field(s: &str) -> FieldSelector {
        FieldSelector::parse(s, &["x", "y", "z", "a", "foo", "baz", "complex", "foobar"])
            .unwrap_or_else(|e| panic!("field parse({s:?}): {e}"))
    }

    /// From fields `TestSplitTerms` and `TestSplitTerm`.
    #[test]
    fn field_split() {
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            (
                "a=avalue,b==bvalue,c!=cvalue",
                &["a=avalue", "b==bvalue", "c!=cvalue"],
            ),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (s, want) in cases {
            assert_eq!(split_field_terms(s), *want, "{s:?}");
        }
        let terms: &[SplitCase] = &[
            ("a=value", Some(("a", true, "value"))),
            ("b==value", Some(("b", true, "value"))),
            ("c!=value", Some(("c", false, "value"))),
            ("", None),
            ("a", None),
            (r"k=\,", Some(("k", true, r"\,"))),
            (r"k=\=", Some(("k", true, r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", true, r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", true, "수"))),
        ];
        for (t, want) in terms {
            assert_eq!(split_field_term(t), *want, "{t:?}");
        }
    }

    /// From fields `TestEscapeValue`: unescaping, and invalid escape sequences.
    #[test]
    fn field_unescape() {
        for (escaped, plain) in [
            ("", ""),
            ("a", "a"),
            (r"\=", "="),
            (r"\,", ","),
            (r"\\", r"\"),
            (r"\\\=\\\,\\", r"\=\,\"),
        ] {
            assert_eq!(unescape_field_value(escaped).as_deref(), Ok(plain));
            let sel = field(&format!("a={escaped}"));
            assert_eq!(sel.to_string(), format!("a={escaped}"));
        }
        for bad in [r"\", r"\\\", r"\a"] {
            let err = unescape_field_value(bad).unwrap_err();
            assert!(err.contains("invalid escape sequence"), "{bad:?}: {err}");
        }
    }

    /// From fields `TestSelectorParse` and `TestDeterministicParse`.
    #[test]
    fn field_parse() {
        for s in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert_eq!(field(s).to_string(), s);
            assert_eq!(field(&field(s).to_string()), field(s));
        }
        assert_eq!(field("x=a,a=x").to_string(), field("a=x,x=a").to_string());
        assert_eq!(field("y==b,x=a").to_string(), "x=a,y=b");
        assert!(field("").is_empty());
        assert!(field(",").is_empty());
        for s in [
            "x=a||y=b",
            "x==a==b",
            "x=a,b",
            "x in (a)",
            "x in (a,b,c)",
            "x",
        ] {
            assert!(
                FieldSelector::parse(s, &["x", "y"]).is_err(),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn field_error_messages() {
        let cases = [
            (
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            (
                "metadata.name=a,b",
                "invalid selector: 'metadata.name=a,b'; can't understand 'b'",
            ),
            (
                "metadata.name==a==b",
                "invalid field selector: unescaped character in value: '='",
            ),
            (
                r"metadata.name=a\b",
                r"invalid field selector: invalid escape sequence: \b",
            ),
            (
                r"metadata.name=a\",
                r"invalid field selector: invalid escape sequence: \",
            ),
            (
                "spec.nodeName=n1",
                "field label not supported: spec.nodeName",
            ),
            (
                "metadata.name=a,status.phase!=Running",
                "field label not supported: status.phase",
            ),
            // No trimming: the field is "metadata.name ".
            (
                "metadata.name = a",
                "field label not supported: metadata.name ",
            ),
        ];
        for (s, want) in cases {
            let err = FieldSelector::parse(s, SUPPORTED).unwrap_err();
            assert_eq!(err.to_string(), want, "{s:?}");
        }
        assert_eq!(
            FieldSelector::parse("spec.nodeName=n1", SUPPORTED),
            Err(SelectorError::UnsupportedField("spec.nodeName".into()))
        );
    }

    /// From fields `TestSelectorMatches`: absent fields compare as "".
    #[test]
    fn field_matching() {
        let fields: BTreeMap<&str, &str> =
            [("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")]
                .into_iter()
                .collect();
        let get = |f: &str| fields.get(f).copied();
        let cases = [
            ("", true),
            ("foo=bar", true),
            ("baz=blah", true),
            ("foo=bar,baz=blah", true),
            (r"foo=bar,baz=blah,complex=\=value\\\,\\", true),
            ("foo==bar", true),
            ("foo!=blah", true),
            ("foo=blah", false),
            ("baz=bar", false),
            ("foo=bar,foobar=bar,baz=blah", false),
            ("foo!=bar", false),
            // Absent field is "": `=` with empty value matches, `!=` with a value matches.
            ("x=", true),
            ("x!=", false),
            ("x!=a", true),
            ("x=a", false),
        ];
        for (s, want) in cases {
            assert_eq!(field(s).matches(get), want, "{s:?}");
        }
    }

    /// From fields `TestRequiresExactMatch`.
    #[test]
    fn field_required_value() {
        let cases = [
            ("", "test", None),
            ("a=b", "test", None),
            ("test=b", "test", Some("b")),
            ("test==b", "test", Some("b")),
            ("test=", "test", Some("")),
            ("test!=b", "test", None),
            ("test!=", "test", None),
            ("a=x,test=b", "test", Some("b")),
            ("test!=a,test=b", "test", Some("b")),
        ];
        for (s, key, want) in cases {
            let sel = FieldSelector::parse(s, &["a", "test"]).unwrap();
            assert_eq!(sel.required_value(key), want, "{s:?}");
        }
        let ns = FieldSelector::parse("metadata.namespace=kube-system", SUPPORTED).unwrap();
        assert_eq!(ns.required_value("metadata.namespace"), Some("kube-system"));
        assert_eq!(ns.required_value("metadata.name"), None);
    }

    #[test]
    fn label_selector_object_matches_parse_to_label_selector() {
        let object =
            parse("tier in (b,a),app=web,!canary,x!=y,zone,app.kubernetes.io/name==my-app.v1")
                .to_object()
                .unwrap();
        assert_eq!(
            serde_json::to_value(&object).unwrap(),
            serde_json::json!({
                "matchLabels": {"app": "web", "app.kubernetes.io/name": "my-app.v1"},
                "matchExpressions": [
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "NotIn", "values": ["y"]},
                    {"key": "zone", "operator": "Exists"},
                ],
            })
        );
        assert_eq!(
            serde_json::to_value(parse("a=b").to_object().unwrap()).unwrap(),
            serde_json::json!({"matchLabels": {"a": "b"}})
        );
        let err = parse("n>3").to_object().unwrap_err().to_string();
        assert_eq!(err, r#""gt" isn't supported in label selectors"#);
    }
}
