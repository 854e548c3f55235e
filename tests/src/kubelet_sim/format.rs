//! Allocation-free writers for the two wire formats: Go's shortest `%g` float formatting (what
//! the Prometheus text encoder uses), label-value and JSON string escaping, and `metav1.Time`
//! (RFC 3339, whole seconds, UTC).

use std::fmt::Write as _;

use crate::cluster::Millis;

/// Writes the `# HELP` and `# TYPE` lines of metric family `name`; `help` is written part by
/// part (e.g. a stability marker, then the text).
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, help: &[&str], kind: &str) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    for part in help {
        out.extend_from_slice(part.as_bytes());
    }
    for part in ["\n# TYPE ", name, " ", kind, "\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// Appends `v` formatted as Go's `strconv.FormatFloat(v, 'g', -1, 64)` after the special cases
/// of the Prometheus text encoder (`0`, `1`, `-1`, `NaN`, `+Inf`, `-Inf`).
pub(crate) fn write_go_float(out: &mut Vec<u8>, v: f64) {
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's `-1` precision does;
    // only the layout differs.
    let mut sci = StackBuf::default();
    let _ = write!(sci, "{v:e}");
    let sci = sci.as_bytes();
    let (neg, sci) = match sci.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, sci),
    };
    let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let exp: i32 = std::str::from_utf8(&sci[e_at + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in sci[..e_at].iter().filter(|b| b.is_ascii_digit()) {
        digits[nd] = b;
        nd += 1;
    }
    let digits = &digits[..nd];
    if neg {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        write_u64(out, u64::from(e));
        return;
    }
    // Decimal point after `dp` digits (dp may be ≤ 0 for values below 1).
    let dp = exp + 1;
    if dp <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', dp.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else {
        let dp = dp as usize;
        if dp >= nd {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', dp - nd));
        } else {
            out.extend_from_slice(&digits[..dp]);
            out.push(b'.');
            out.extend_from_slice(&digits[dp..]);
        }
    }
}

/// Appends an unsigned decimal integer.
pub(crate) fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a signed decimal integer.
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Appends a Prometheus label value with `\`, `"` and newline escaped.
pub(crate) fn write_label_value(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
}

/// Appends `s` as a quoted JSON string, escaped as Go's `encoding/json` does (including the
/// HTML-safe `<`, `>`, `&`).
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 || b == b'<' || b == b'>' || b == b'&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends `"YYYY-MM-DDTHH:MM:SSZ"` (quoted), the JSON form of a `metav1.Time`: UTC, whole
/// seconds (the milliseconds are dropped, as Kubernetes does).
pub(crate) fn write_json_time(out: &mut Vec<u8>, ms: Millis) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut buf = StackBuf::default();
    let _ = write!(
        buf,
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z\"",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out.extend_from_slice(buf.as_bytes());
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A small fixed buffer for `write!` without allocating.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(v: f64) -> String {
        let mut out = Vec::new();
        write_go_float(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_match_go_shortest_g() {
        // Expected strings are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints.
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (10.0, "10"),
            (4.710169, "4.710169"),
            (357.35491, "357.35491"),
            (12_533_760.0, "1.253376e+07"),
            (1_616_273_408.0, "1.616273408e+09"),
            (1_624_396_248.302_091_6, "1.6243962483020916e+09"),
            (100_000.0, "100000"),
            (123_456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.000_012_5, "1.25e-05"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1.5e-300, "1.5e-300"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(go(v), want, "formatting {v:?}");
        }
    }

    #[test]
    fn floats_round_trip() {
        for v in [
            0.1,
            1.0 / 3.0,
            2.0f64.powi(60),
            7.123_456_789_012_345e-7,
            98_765.432_1,
        ] {
            assert_eq!(go(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn times_are_rfc3339_seconds() {
        let mut out = Vec::new();
        write_json_time(&mut out, 1_624_396_278_302);
        assert_eq!(out, b"\"2021-06-22T21:11:18Z\"");
        out.clear();
        write_json_time(&mut out, 951_782_400_999); // leap day 2000
        assert_eq!(out, b"\"2000-02-29T00:00:00Z\"");
        out.clear();
        write_json_time(&mut out, 0);
        assert_eq!(out, b"\"1970-01-01T00:00:00Z\"");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c<d>\u{1}");
        assert_eq!(out, br#""a\"b\\c\u003cd\u003e\u0001""#);
        out.clear();
        write_label_value(&mut out, "x\"y\\z\n");
        assert_eq!(out, br#"x\"y\\z\n"#);
    }
}
