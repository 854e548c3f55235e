//! Go `regexp` patterns (RE2 syntax, as prometheus-adapter compiles them) for Rust's `regex`.
//!
//! Both crates implement RE2 syntax, with differences that would silently change what a pattern
//! matches:
//! - Go's `\d`, `\w`, `\s`, `\b` are ASCII; Rust's are Unicode. They are rewritten to the ASCII
//!   classes Go means (`\s` is `[\t\n\f\r ]` in Go: no vertical tab).
//! - Inside a bracket class, Go reads `[` as a literal and has no set operations; Rust nests
//!   classes on `[` and reads `&&`, `--`, `~~` as operators. Such patterns are refused.
//!
//! What Go rejects (e.g. `\<`) cannot be in a working prometheus-adapter config; what Rust
//! rejects (e.g. `\Q…\E`, octal escapes) is refused with the compiler's message.

use regex::Regex;

/// Go's ASCII classes, as Rust class contents (without brackets).
fn ascii_class(c: char) -> Option<(&'static str, bool)> {
    match c {
        'd' => Some(("0-9", false)),
        'D' => Some(("0-9", true)),
        'w' => Some(("0-9A-Za-z_", false)),
        'W' => Some(("0-9A-Za-z_", true)),
        's' => Some(("\\t\\n\\f\\r ", false)),
        'S' => Some(("\\t\\n\\f\\r ", true)),
        _ => None,
    }
}

/// Compiles Go regexp `pattern` with Go's meaning, or says why it cannot.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    Regex::new(&translated).map_err(|e| {
        let message = e.to_string();
        // The compiler's message spans lines (pattern, caret, error); keep the last one.
        let last = message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("regex {pattern:?} is not supported: {}", last.trim())
    })
}

/// Rewrites Go-only meanings into Rust syntax, refusing constructs whose meaning differs.
fn translate(pattern: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("regex {pattern:?}: {why}"));
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // Whether the class was just opened (a `]` there is a literal, in Go as in Rust).
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return refuse("trailing backslash");
                };
                match ascii_class(next) {
                    Some((set, negated)) if in_class => {
                        if negated {
                            return refuse(&format!(
                                "`\\{next}` inside a bracket class is not supported"
                            ));
                        }
                        out.push_str(set);
                    }
                    Some((set, negated)) => {
                        out.push('[');
                        if negated {
                            out.push('^');
                        }
                        out.push_str(set);
                        out.push(']');
                    }
                    None if !in_class && (next == 'b' || next == 'B') => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' => {
                if chars.peek() == Some(&':') {
                    // `[:alpha:]`: the same ASCII classes in both.
                    out.push('[');
                    for c in chars.by_ref() {
                        out.push(c);
                        if c == ']' {
                            break;
                        }
                    }
                } else {
                    // Go: a literal `[`; Rust: a nested class.
                    out.push_str("\\[");
                }
            }
            ']' if in_class && !at_start => {
                in_class = false;
                out.push(']');
            }
            '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                // Go: two literals (or a range ending in one); Rust: a set operation.
                return refuse(&format!(
                    "`{c}{c}` inside a bracket class means a set operation in Rust, not in Go"
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

    #[test]
    fn ascii_classes_keep_go_meaning() {
        let digits = compile(r"^\d+$").unwrap();
        assert!(digits.is_match("123"));
        // Arabic-Indic digits: Unicode \d in Rust, not \d in Go.
        assert!(!digits.is_match("١٢٣"));
        let word = compile(r"^\w+$").unwrap();
        assert!(word.is_match("a_b9"));
        assert!(!word.is_match("é"));
        let space = compile(r"^a\sb$").unwrap();
        assert!(space.is_match("a b"));
        assert!(!space.is_match("a\u{0B}b"));
        let in_class = compile(r"^[\d.]+$").unwrap();
        assert!(in_class.is_match("1.2"));
        assert!(!in_class.is_match("١"));
        let not_digit = compile(r"^\D$").unwrap();
        assert!(not_digit.is_match("x"));
        let boundary = compile(r"\bfoo\b").unwrap();
        assert!(boundary.is_match("a foo b"));
        // Go: `é` is not a word character, so there are boundaries around `foo`.
        assert!(boundary.is_match("éfooé"));
    }

    #[test]
    fn go_literal_bracket_inside_a_class() {
        // Go reads `[[a]` as the class {'[', 'a'}.
        let re = compile(r"^[[a]+$").unwrap();
        assert!(re.is_match("[a["));
        let posix = compile(r"^[[:digit:]x]+$").unwrap();
        assert!(posix.is_match("1x2"));
        let close_first = compile(r"^[]a]+$").unwrap();
        assert!(close_first.is_match("]a"));
    }

    #[test]
    fn refuses_what_differs() {
        let err = compile(r"[a&&b]").unwrap_err();
        assert!(err.contains("set operation"), "{err}");
        let err = compile(r"[\D]").unwrap_err();
        assert!(err.contains("inside a bracket class"), "{err}");
        let err = compile(r"\Qa.b\E").unwrap_err();
        assert!(err.contains("is not supported"), "{err}");
        let err = compile(r"(a").unwrap_err();
        assert!(err.contains("\"(a\""), "{err}");
    }

    #[test]
    fn ordinary_patterns_pass_through() {
        let re = compile(r"^container_(.*)_seconds_total$").unwrap();
        let caps = re.captures("container_cpu_usage_seconds_total").unwrap();
        assert_eq!(&caps[1], "cpu_usage");
        assert!(
            compile(r"^(?i)Foo-[a-z]{2,3}\.bar$")
                .unwrap()
                .is_match("FOO-ab.bar")
        );
    }
}
