//! The subset of Go's `text/template` that prometheus-adapter's templates use, with its `<<` `>>`
//! delimiters: fields (`<<.Series>>`), a map value by key (`<<.LabelValuesByName.pod>>`,
//! `<<index .LabelValuesByName "pod">>`), a list element (`<<index .GroupBySlice 0>>`), a list
//! as Go prints it (`<<.GroupBySlice>>` → `[namespace pod]`), `<<range .GroupBySlice>>…<<.>>…
//! <<end>>`, comments and `<<-`/`->>` whitespace trimming. Anything else is refused when the
//! template is parsed, naming the action.

use std::collections::BTreeMap;

/// A value a template field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string, printed as is.
    Str(String),
    /// A list of strings (Go `[]string`).
    List(Vec<String>),
    /// A map of strings (Go `map[string]string`).
    Map(BTreeMap<String, String>),
}

/// What an action reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// `.Field`.
    Field(String),
    /// `.Field.key` or `index .Field "key"`.
    Key(String, String),
    /// `index .Field N`.
    Position(String, usize),
    /// `.` inside a `range`.
    Dot,
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Print(Operand),
    Range(String, Vec<Node>),
}

/// A parsed template over a fixed set of fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// The fields a template is rendered with, by name.
pub trait Fields {
    /// The value of field `name` (one of the names the template was parsed with).
    fn get(&self, name: &str) -> Value;
}

impl Fields for BTreeMap<&str, Value> {
    fn get(&self, name: &str) -> Value {
        BTreeMap::get(self, name)
            .cloned()
            .unwrap_or(Value::Str(String::new()))
    }
}

impl Template {
    /// Parses `text`, allowing the fields in `fields`.
    pub fn parse(text: &str, fields: &[&str]) -> Result<Template, String> {
        let mut parser = Parser {
            fields,
            stack: vec![(None, Vec::new())],
        };
        let mut rest = text;
        let mut trim_next = false;
        while let Some(start) = rest.find("<<") {
            let mut literal = &rest[..start];
            if trim_next {
                literal = literal.trim_start();
            }
            let after = &rest[start + 2..];
            let end = after
                .find(">>")
                .ok_or_else(|| format!("unclosed action `<<{}`", excerpt(after)))?;
            let mut action = &after[..end];
            if let Some(a) = action.strip_prefix("- ") {
                literal = literal.trim_end();
                action = a;
            }
            trim_next = false;
            if let Some(a) = action.strip_suffix(" -") {
                trim_next = true;
                action = a;
            }
            parser.text(literal);
            parser.action(action.trim())?;
            rest = &after[end + 2..];
        }
        parser.text(if trim_next { rest.trim_start() } else { rest });
        let (open, nodes) = parser.stack.pop().unwrap_or((None, Vec::new()));
        if let Some(field) = open {
            return Err(format!("`<<range .{field}>>` has no `<<end>>`"));
        }
        Ok(Template { nodes })
    }

    /// Renders with `fields`. A comma-separated list field that renders empty takes one
    /// adjacent comma with it, so `{<<.LabelMatchers>>,a="b"}` stays valid PromQL when there
    /// is nothing to match.
    pub fn render(&self, fields: &dyn Fields) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, fields, None, &mut out);
        out
    }
}

fn excerpt(s: &str) -> &str {
    let end = s.char_indices().nth(20).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

struct Parser<'f> {
    fields: &'f [&'f str],
    /// Open `range`s (field, nodes so far); the bottom entry is the template itself.
    stack: Vec<(Option<String>, Vec<Node>)>,
}

impl Parser<'_> {
    fn push(&mut self, node: Node) {
        if let Some((_, nodes)) = self.stack.last_mut() {
            nodes.push(node);
        }
    }

    fn text(&mut self, text: &str) {
        if !text.is_empty() {
            self.push(Node::Text(text.to_owned()));
        }
    }

    fn field(&self, word: &str) -> Result<String, String> {
        let name = word
            .strip_prefix('.')
            .ok_or_else(|| format!("`{word}` is not a field (fields start with `.`)"))?;
        if self.fields.contains(&name) {
            Ok(name.to_owned())
        } else {
            Err(format!(
                "field `.{name}` does not exist (fields: {})",
                self.fields
                    .iter()
                    .map(|f| format!(".{f}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    fn action(&mut self, action: &str) -> Result<(), String> {
        if action.starts_with("/*") && action.ends_with("*/") {
            return Ok(());
        }
        let words = split_words(action)?;
        match words.as_slice() {
            [] => Err("empty action `<<>>`".to_owned()),
            [w] if w == "." => {
                if self.stack.len() < 2 {
                    return Err("`<<.>>` is only supported inside `<<range>>`".to_owned());
                }
                self.push(Node::Print(Operand::Dot));
                Ok(())
            }
            [w] if w == "end" => match self.stack.pop() {
                Some((Some(field), nodes)) => {
                    self.push(Node::Range(field, nodes));
                    Ok(())
                }
                _ => Err("`<<end>>` without `<<range>>`".to_owned()),
            },
            [w] if w.starts_with('.') => {
                let mut parts = w[1..].splitn(2, '.');
                let field = self.field(&format!(".{}", parts.next().unwrap_or("")))?;
                let operand = match parts.next() {
                    Some(key) => Operand::Key(field, key.to_owned()),
                    None => Operand::Field(field),
                };
                self.push(Node::Print(operand));
                Ok(())
            }
            [w, target, key] if w == "index" => {
                let field = self.field(target)?;
                let operand = if let Some(k) = unquote(key) {
                    Operand::Key(field, k)
                } else if let Ok(n) = key.parse::<usize>() {
                    Operand::Position(field, n)
                } else {
                    return Err(format!(
                        "`index` takes a quoted key or a number, not `{key}`"
                    ));
                };
                self.push(Node::Print(operand));
                Ok(())
            }
            [w, target] if w == "range" => {
                let field = self.field(target)?;
                self.stack.push((Some(field), Vec::new()));
                Ok(())
            }
            [w, ..] if is_keyword(w) => Err(format!("template action `{w}` is not supported")),
            [w, ..] if w.starts_with('.') || w.starts_with('$') || w.starts_with('"') => {
                Err(format!("template action `<<{action}>>` is not supported"))
            }
            [w, ..] => Err(format!("template function {w:?} is not supported")),
        }
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "if" | "else" | "with" | "define" | "template" | "block" | "break" | "continue" | "range"
    )
}

/// Splits an action into words, keeping quoted strings whole.
fn split_words(action: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '`' {
            word.push(c);
            chars.next();
            let mut closed = false;
            while let Some(d) = chars.next() {
                word.push(d);
                if d == '\\' && c == '"' {
                    if let Some(e) = chars.next() {
                        word.push(e);
                    }
                } else if d == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(format!("unterminated string in `<<{action}>>`"));
            }
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                if matches!(d, '(' | ')' | '|') {
                    return Err(format!(
                        "template action `<<{action}>>` is not supported (pipelines and parentheses)"
                    ));
                }
                word.push(d);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// A Go string literal's value (`"a\"b"` or a raw `` `a` ``).
fn unquote(word: &str) -> Option<String> {
    if let Some(raw) = word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
        return Some(raw.to_owned());
    }
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn print(value: &Value, out: &mut String) {
    match value {
        Value::Str(s) => out.push_str(s),
        // Go prints a []string as `[a b]` and a map as `map[k:v]`.
        Value::List(items) => {
            out.push('[');
            out.push_str(&items.join(" "));
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            out.push_str(&pairs.join(" "));
            out.push(']');
        }
    }
}

fn render_nodes(nodes: &[Node], fields: &dyn Fields, dot: Option<&str>, out: &mut String) {
    // Set after an empty list field: the next text drops its leading comma.
    let mut absorb_comma = false;
    for node in nodes {
        match node {
            Node::Text(text) => {
                let text = match text.strip_prefix(',') {
                    Some(rest) if absorb_comma => rest,
                    _ => text.as_str(),
                };
                absorb_comma = false;
                out.push_str(text);
            }
            Node::Print(operand) => {
                let value = match operand {
                    Operand::Field(f) => fields.get(f),
                    Operand::Key(f, key) => match fields.get(f) {
                        Value::Map(map) => Value::Str(map.get(key).cloned().unwrap_or_default()),
                        other => other,
                    },
                    Operand::Position(f, n) => match fields.get(f) {
                        Value::List(items) => {
                            Value::Str(items.get(*n).cloned().unwrap_or_default())
                        }
                        other => other,
                    },
                    Operand::Dot => Value::Str(dot.unwrap_or_default().to_owned()),
                };
                if value == Value::Str(String::new()) {
                    // An empty list: drop the comma before it, or else the one after it.
                    if out.ends_with(',') {
                        out.pop();
                    } else {
                        absorb_comma = true;
                    }
                }
                print(&value, out);
            }
            Node::Range(f, body) => {
                if let Value::List(items) = fields.get(f) {
                    for item in &items {
                        render_nodes(body, fields, Some(item), out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &[
        "Series",
        "LabelMatchers",
        "GroupBy",
        "GroupBySlice",
        "LabelValuesByName",
    ];

    fn args() -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            ("Series", Value::Str("http_requests_total".into())),
            (
                "LabelMatchers",
                Value::Str(r#"namespace!="",pod!="""#.into()),
            ),
            ("GroupBy", Value::Str("namespace,pod".into())),
            (
                "GroupBySlice",
                Value::List(vec!["namespace".into(), "pod".into()]),
            ),
            (
                "LabelValuesByName",
                Value::Map(BTreeMap::from([
                    ("namespace".into(), ".+".into()),
                    ("pod".into(), ".+".into()),
                ])),
            ),
        ])
    }

    fn render(text: &str) -> String {
        Template::parse(text, FIELDS).unwrap().render(&args())
    }

    #[test]
    fn fields_keys_positions_and_ranges() {
        assert_eq!(
            render(
                r#"sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[2m])) by (<<.GroupBy>>)"#
            ),
            r#"sum(rate(http_requests_total{namespace!="",pod!="",container!="POD"}[2m])) by (namespace,pod)"#
        );
        assert_eq!(
            render(
                r#"x{pod=~"<<index .LabelValuesByName "pod">>"} <<.LabelValuesByName.namespace>>"#
            ),
            r#"x{pod=~".+"} .+"#
        );
        assert_eq!(render("<<index .GroupBySlice 1>>"), "pod");
        assert_eq!(render("<<.GroupBySlice>>"), "[namespace pod]");
        assert_eq!(
            render("by (<<range .GroupBySlice>><<.>>;<<end>>)"),
            "by (namespace;pod;)"
        );
        assert_eq!(render("a <<- /* c */ ->>  b"), "ab");
    }

    #[test]
    fn empty_list_takes_one_comma() {
        let mut empty = args();
        empty.insert("LabelMatchers", Value::Str(String::new()));
        let t = Template::parse(
            r#"x{<<.LabelMatchers>>,a="b"} y{a="b",<<.LabelMatchers>>} z{<<.LabelMatchers>>}"#,
            FIELDS,
        )
        .unwrap();
        assert_eq!(t.render(&empty), r#"x{a="b"} y{a="b"} z{}"#);
    }

    #[test]
    fn refusals_name_the_construct() {
        let err = |t: &str| Template::parse(t, FIELDS).unwrap_err();
        assert_eq!(
            err("<<foo .Series>>"),
            r#"template function "foo" is not supported"#
        );
        assert_eq!(
            err("<<printf \"%s\" .Series>>"),
            r#"template function "printf" is not supported"#
        );
        assert_eq!(
            err("<<if .Series>>x<<end>>"),
            "template action `if` is not supported"
        );
        assert!(err("<<.Nope>>").contains("field `.Nope` does not exist"));
        assert!(err("<<.Series").contains("unclosed action"));
        assert!(err("<<range .GroupBySlice>>").contains("no `<<end>>`"));
        assert!(err("<<end>>").contains("without `<<range>>`"));
        assert!(err("<<.Series | printf>>").contains("pipelines"));
    }
}
