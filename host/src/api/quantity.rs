//! Kubernetes `resource.Quantity`, formatted and parsed the way Go's
//! `k8s.io/apimachinery/pkg/api/resource` does it.
//!
//! A [`Quantity`] is an exact decimal number (an `i128` mantissa times a power of ten) plus the
//! [`Format`] it is written in. [`Display`](fmt::Display) gives the canonical form that
//! `Quantity.String()` and `MarshalJSON` produce, and [`FromStr`] follows `ParseQuantity`:
//!
//! - the exponent (or suffix) is as large as possible without fractional digits, and a multiple
//!   of 3 for `DecimalSI` and `DecimalExponent` (`1.5` → `1500m`, `1e4` → `10e3`);
//! - `BinarySI` uses `Ki`…`Ei` when the value is an integer of at least 1024, and falls back to
//!   decimal otherwise (`1000` bytes → `1k`, `1536` → `1536`, `2Ki` → `2Ki`, `1.5Ki` → `1536`);
//! - parsing rounds non-zero values finer than `1n` away from zero to the next nano, caps
//!   `BinarySI` values at `2^63-1` in magnitude, and keeps the format of the suffix it read.
//!
//! Where upstream has fixed bugs or pinned the intended output, this module follows the fixed
//! behaviour (kubernetes#140459: a `DecimalSI` exponent beyond `E` falls back to `e` notation;
//! kubernetes#138510: `Value`/`MilliValue` round negative values away from zero and saturate).
//! It always emits the canonical form: Go's `String()` echoes some parsed inputs verbatim
//! (`"1.500"`, `"+1"`, `"1E3"`; kubernetes#138165/#141166), which upstream tracks as a bug.
//! Values needing more than 38 significant digits, or a decimal exponent outside `i32`, are
//! rejected with [`ParseQuantityError::OutOfRange`] where Go would build an arbitrarily large
//! `inf.Dec`.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// The three ways a [`Quantity`] can be written; parsing remembers which one the suffix used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Decimal SI suffixes `n u m "" k M G T P E`, e.g. `12M` (12 × 10^6).
    #[default]
    DecimalSI,
    /// Binary SI suffixes `Ki Mi Gi Ti Pi Ei`, e.g. `12Mi` (12 × 2^20).
    BinarySI,
    /// A decimal exponent, e.g. `12e6`.
    DecimalExponent,
}

/// Why a string is not a quantity. The first three messages are Go's, word for word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseQuantityError {
    /// The text is not `<signed number><suffix>` (Go's `ErrFormatWrong`).
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    /// The number has no digits where Go needs some (Go's `ErrNumeric`).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not a known SI suffix or a decimal exponent (Go's `ErrSuffix`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value needs more than 38 significant digits or a decimal exponent outside `i32`.
    #[error("quantity is too large or too precise to represent")]
    OutOfRange,
}

/// A fixed-point number with the format it is written in, as Kubernetes' `resource.Quantity`.
///
/// Equality, ordering and hashing compare the numeric value only and ignore the format, like
/// Go's `Quantity.Equal`/`Cmp`: `1k` (DecimalSI) equals `1000` bytes (BinarySI) even though the
/// two print differently. The default is zero in `DecimalSI`, which prints as `0`.
#[derive(Clone, Copy, Default)]
pub struct Quantity {
    /// The value is `mantissa × 10^scale`; not necessarily free of trailing zeros.
    mantissa: i128,
    scale: i32,
    format: Format,
}

/// Decimal SI suffixes by exponent, from 10^-9 to 10^18.
const SI_SUFFIXES: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
/// Binary SI suffixes by power of 1024.
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
/// Exactly representable powers of ten, for the exact `f64` fast path.
const F64_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Quantity {
    /// `value × 10^scale` in the given format (Go: `int64Amount{value, scale}` with a format).
    pub fn new(value: i64, scale: i32, format: Format) -> Quantity {
        Quantity {
            mantissa: i128::from(value),
            scale,
            format,
        }
    }

    /// CPU usage from nanocores, as metrics-server builds it:
    /// `resource.NewScaledQuantity(n, -9)` (DecimalSI), e.g. `500000000` → `500m`.
    ///
    /// Values above `i64::MAX` stay exact instead of wrapping as Go's `int64(n)` would.
    pub fn from_nanocores(nanocores: u64) -> Quantity {
        Quantity {
            mantissa: i128::from(nanocores),
            scale: -9,
            format: Format::DecimalSI,
        }
    }

    /// Memory from bytes, as metrics-server builds it: `resource.NewQuantity(b, BinarySI)`,
    /// e.g. `749785088` → `732212Ki`.
    ///
    /// Values above `i64::MAX` stay exact instead of wrapping as Go's `int64(b)` would.
    pub fn from_bytes(bytes: u64) -> Quantity {
        Quantity {
            mantissa: i128::from(bytes),
            scale: 0,
            format: Format::BinarySI,
        }
    }

    /// A custom-metric value as prometheus-adapter builds it:
    /// `resource.NewMilliQuantity(int64(v*1000), DecimalSI)`, truncating toward zero.
    ///
    /// `None` for NaN, infinities, and values whose thousandfold is outside `i64` (where Go's
    /// conversion is undefined).
    pub fn from_f64_milli(v: f64) -> Option<Quantity> {
        /// 2^63, exactly representable as an `f64`.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let milli = v * 1000.0;
        // Also false for NaN and the infinities.
        if !(-LIMIT..LIMIT).contains(&milli) {
            return None;
        }
        // In range, `as` truncates toward zero exactly like Go's int64(float64).
        Some(Quantity::new(milli as i64, -3, Format::DecimalSI))
    }

    /// The format this quantity is written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value as the nearest `f64` (correctly rounded; ±infinity or ±0 beyond its range).
    ///
    /// Go's `AsApproximateFloat64` multiplies by an inexact power of ten and can be one unit in
    /// the last place off; this agrees with `AsFloat64Slow`.
    pub fn as_f64(&self) -> f64 {
        let (m, scale) = (self.mantissa, self.scale);
        if scale == 0 {
            // A single rounding of an integer: correctly rounded.
            return m as f64;
        }
        if m.unsigned_abs() <= 1 << 53 && (-22..=22).contains(&scale) {
            // Both operands are exact, so the one operation rounds correctly.
            let pow = F64_POW10[scale.unsigned_abs() as usize];
            return if scale > 0 {
                m as f64 * pow
            } else {
                m as f64 / pow
            };
        }
        // Rust's float parser is correctly rounded and saturates huge exponents; the text is
        // always a valid float, so the NaN is never produced.
        format!("{m}e{scale}").parse().unwrap_or(f64::NAN)
    }

    /// The value rounded away from zero to an integer, saturating at the `i64` limits
    /// (Go: `Value()`).
    pub fn value(&self) -> i64 {
        self.scaled_i64(0)
    }

    /// The value in thousandths, rounded away from zero and saturating at the `i64` limits
    /// (Go: `MilliValue()`), e.g. `1500m` → 1500, `1n` → 1.
    pub fn milli_value(&self) -> i64 {
        self.scaled_i64(-3)
    }

    /// `self / 10^target` rounded away from zero, saturating at the `i64` limits.
    fn scaled_i64(&self, target: i32) -> i64 {
        let m = self.mantissa;
        if m == 0 {
            return 0;
        }
        let rail = if m < 0 { i64::MIN } else { i64::MAX };
        let shift = i64::from(self.scale) - i64::from(target);
        let scaled = if shift >= 0 {
            u32::try_from(shift)
                .ok()
                .and_then(|s| 10i128.checked_pow(s))
                .and_then(|p| m.checked_mul(p))
        } else {
            match u32::try_from(-shift)
                .ok()
                .and_then(|s| 10i128.checked_pow(s))
            {
                // |m| < 10^39 <= the divisor: a non-zero fraction, which rounds away to ±1.
                None => Some(m.signum()),
                Some(p) => {
                    let (q, r) = (m / p, m % p);
                    Some(if r == 0 { q } else { q + m.signum() })
                }
            }
        };
        scaled.and_then(|v| i64::try_from(v).ok()).unwrap_or(rail)
    }

    /// The value as `mantissa × 10^exponent` with no trailing zeros in the mantissa; `(0, 0)`
    /// for zero.
    fn normalized(&self) -> (i128, i64) {
        let (mut m, mut e) = (self.mantissa, i64::from(self.scale));
        if m == 0 {
            return (0, 0);
        }
        // Served values fit in 64 bits, where division is a machine instruction rather than a
        // 128-bit library call.
        if let Ok(mut small) = i64::try_from(m) {
            while small % 10 == 0 {
                small /= 10;
                e += 1;
            }
            return (i128::from(small), e);
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        (m, e)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, ea) = self.normalized();
        let (b, eb) = other.normalized();
        match a.signum().cmp(&b.signum()) {
            Ordering::Equal if a != 0 => {}
            unequal_or_both_zero => return unequal_or_both_zero,
        }
        let magnitude = cmp_magnitude(a.unsigned_abs(), ea, b.unsigned_abs(), eb);
        if a < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// Compares `x × 10^ex` with `y × 10^ey` for non-zero `x` and `y`.
fn cmp_magnitude(x: u128, ex: i64, y: u128, ey: i64) -> Ordering {
    // x × 10^ex lies in [10^top, 10^(top+1)) with top = ex + digits(x) - 1.
    let top_x = ex + i64::from(x.ilog10());
    let top_y = ey + i64::from(y.ilog10());
    if top_x != top_y {
        return top_x.cmp(&top_y);
    }
    // Same leading position: the exponents differ by at most 38, so align them.
    let (shorter, longer, shift, flip) = if ex >= ey {
        (x, y, ex - ey, false)
    } else {
        (y, x, ey - ex, true)
    };
    let aligned = u32::try_from(shift)
        .ok()
        .and_then(|s| 10u128.checked_pow(s))
        .and_then(|p| shorter.checked_mul(p));
    // An overflowing product exceeds every mantissa (which are at most i128::MAX).
    let ordering = aligned.map_or(Ordering::Greater, |v| v.cmp(&longer));
    if flip { ordering.reverse() } else { ordering }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quantity")
            .field("value", &format_args!("{self}"))
            .field("format", &self.format)
            .finish()
    }
}

/// Canonical form, identical to Go's `Quantity.String()` for a quantity that was not parsed
/// (and to the canonical form upstream intends for parsed ones).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, e) = self.normalized();
        if m == 0 {
            return f.write_str("0");
        }
        let sign = if m < 0 { "-" } else { "" };
        let magnitude = m.unsigned_abs();
        let mut format = self.format;
        if format == Format::BinarySI {
            if e < 0 || below_1024(magnitude, e) {
                // Fractions and small values print as DecimalSI rather than round.
                format = Format::DecimalSI;
            } else {
                // Powers of 1024 in the integer magnitude × 10^e: its factors of two over ten.
                let powers = (i64::from(magnitude.trailing_zeros()) + e) / 10;
                match usize::try_from(powers)
                    .ok()
                    .filter(|&k| k < BINARY_SUFFIXES.len())
                {
                    Some(k) => return write_binary(f, sign, magnitude, e, k),
                    // Past Ei there is no suffix: fall back to exponent notation.
                    None => format = Format::DecimalExponent,
                }
            }
        }
        // Lower the exponent to a multiple of three by padding the mantissa with zeros.
        let pad = e.rem_euclid(3);
        let exponent = e - pad;
        f.write_str(sign)?;
        write_magnitude(f, magnitude)?;
        f.write_str(&"00"[..pad as usize])?;
        let si = usize::try_from(exponent / 3 + 3)
            .ok()
            .and_then(|i| SI_SUFFIXES.get(i));
        match si {
            Some(suffix) if format == Format::DecimalSI => f.write_str(suffix),
            _ if exponent == 0 => Ok(()),
            _ => write!(f, "e{exponent}"),
        }
    }
}

/// Whether `magnitude × 10^e` (with `e >= 0`) is below 1024.
fn below_1024(magnitude: u128, e: i64) -> bool {
    e <= 3
        && magnitude
            .checked_mul(10u128.pow(e as u32))
            .is_some_and(|v| v < 1024)
}

/// Writes `magnitude × 10^e / 1024^k` followed by the `k`-th binary suffix; the caller has
/// checked that 1024^k divides the value.
fn write_binary(
    f: &mut fmt::Formatter<'_>,
    sign: &str,
    magnitude: u128,
    e: i64,
    k: usize,
) -> fmt::Result {
    let twos = 10 * k as u32;
    // Take the factors of two from the mantissa first, then from 10^e (10 = 2 × 5): each one
    // taken from 10^e leaves a factor of five behind.
    let from_mantissa = magnitude.trailing_zeros().min(twos);
    let fives = twos - from_mantissa;
    let base = magnitude >> from_mantissa;
    f.write_str(sign)?;
    if fives == 0 {
        write_magnitude(f, base)?;
    } else {
        let mut digits = to_le_digits(base);
        for _ in 0..fives {
            mul_digits(&mut digits, 5);
        }
        for &d in digits.iter().rev() {
            f.write_char(char::from(b'0' + d))?;
        }
    }
    for _ in 0..e - i64::from(fives) {
        f.write_char('0')?;
    }
    f.write_str(BINARY_SUFFIXES[k])
}

/// Writes `n` in decimal, in 64-bit arithmetic when it fits (128-bit division is a library
/// call, and this is on the serving path).
fn write_magnitude(f: &mut fmt::Formatter<'_>, n: u128) -> fmt::Result {
    match u64::try_from(n) {
        Ok(small) => write!(f, "{small}"),
        Err(_) => write!(f, "{n}"),
    }
}

/// The decimal digits of `n`, least significant first.
fn to_le_digits(mut n: u128) -> Vec<u8> {
    let mut digits = Vec::with_capacity(40);
    while n > 0 {
        digits.push((n % 10) as u8);
        n /= 10;
    }
    digits
}

/// Multiplies a number held as little-endian decimal digits by `factor`, in place.
fn mul_digits(digits: &mut Vec<u8>, factor: u32) {
    let mut carry = 0u64;
    for d in digits.iter_mut() {
        let v = u64::from(*d) * u64::from(factor) + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.push((carry % 10) as u8);
        carry /= 10;
    }
}

/// Go's `ParseQuantity`.
impl FromStr for Quantity {
    type Err = ParseQuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseQuantityError::FormatWrong);
        }
        let parts = scan(s.as_bytes())?;
        let (suffix, format) = interpret_suffix(parts.suffix).ok_or(ParseQuantityError::Suffix)?;
        if !parts.has_digits {
            // Go reads a digit-less number ("", "-", ".") as 0 on its int64 fast path, which
            // it takes for a decimal exponent >= -9 and for Ki..Ti, and otherwise fails to parse
            // it as a decimal.
            let fast_path = match suffix {
                Suffix::Decimal(exponent) => exponent >= -9,
                Suffix::Binary(power) => power <= 40,
            };
            return if fast_path {
                Ok(Quantity {
                    mantissa: 0,
                    scale: 0,
                    format,
                })
            } else {
                Err(ParseQuantityError::Numeric)
            };
        }
        let digit = |c: &u8| c - b'0';
        let fraction_len = i64::try_from(parts.fraction.len()).unwrap_or(i64::MAX);
        let quantity = match suffix {
            Suffix::Decimal(exponent) => {
                let digits = parts.whole.iter().chain(parts.fraction).map(digit);
                let len = parts.whole.len() + parts.fraction.len();
                let rounded = round_to_nano(digits, len, i64::from(exponent) - fraction_len);
                let (magnitude, e) = rounded.ok_or(ParseQuantityError::OutOfRange)?;
                let scale = i32::try_from(e).map_err(|_| ParseQuantityError::OutOfRange)?;
                Quantity {
                    mantissa: magnitude,
                    scale,
                    format,
                }
            }
            Suffix::Binary(power) => {
                let mut digits: Vec<u8> = parts
                    .whole
                    .iter()
                    .chain(parts.fraction)
                    .rev()
                    .map(digit)
                    .collect();
                for _ in 0..power / 10 {
                    mul_digits(&mut digits, 1024);
                }
                let rounded =
                    round_to_nano(digits.iter().rev().copied(), digits.len(), -fraction_len);
                binary_from_rounded(rounded)
            }
        };
        Ok(if parts.negative {
            Quantity {
                mantissa: -quantity.mantissa,
                ..quantity
            }
        } else {
            quantity
        })
    }
}

/// A parsed `BinarySI` magnitude, capped at `i64::MAX` like Go and switched to `DecimalSI` when
/// below one; `None` means it overflowed `i128`, which is far above the cap.
fn binary_from_rounded(rounded: Option<(i128, i64)>) -> Quantity {
    let max = i128::from(i64::MAX);
    let capped = Quantity {
        mantissa: max,
        scale: 0,
        format: Format::BinarySI,
    };
    let Some((magnitude, e)) = rounded else {
        return capped;
    };
    // After rounding to nano, -9 <= e for any non-zero magnitude.
    let (above_max, below_one) = if e >= 0 {
        let value = u32::try_from(e)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .and_then(|p| magnitude.checked_mul(p));
        (value.is_none_or(|v| v > max), false)
    } else {
        let unit = 10i128.pow(e.unsigned_abs() as u32);
        (magnitude > max * unit, magnitude < unit)
    };
    if above_max {
        return capped;
    }
    let format = if magnitude != 0 && below_one {
        Format::DecimalSI
    } else {
        Format::BinarySI
    };
    // e is within -9..=18 here, so it fits.
    Quantity {
        mantissa: magnitude,
        scale: e as i32,
        format,
    }
}

/// What a suffix multiplies the number by.
#[derive(Clone, Copy)]
enum Suffix {
    /// 10^exponent.
    Decimal(i32),
    /// 2^power, a multiple of 10 from 10 to 60.
    Binary(u32),
}

/// The pieces of `<sign><digits>[.<digits>]<suffix>` as Go's `parseQuantityString` splits them.
struct Parts<'a> {
    negative: bool,
    /// Integer digits after leading zeros (may be empty).
    whole: &'a [u8],
    /// Fraction digits (may be empty).
    fraction: &'a [u8],
    /// Whether the number had any digit at all, leading zeros included.
    has_digits: bool,
    suffix: &'a str,
}

/// Splits a quantity like Go's `parseQuantityString`: sign, digits, an optional `.` and digits,
/// then suffix letters from `eEinumkKMGTP` with an optional signed integer.
fn scan(s: &[u8]) -> Result<Parts<'_>, ParseQuantityError> {
    let digits_end = |mut pos: usize| {
        while s.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        pos
    };
    let negative = s[0] == b'-';
    let mut pos = usize::from(negative || s[0] == b'+');
    let start = pos;
    while s.get(pos) == Some(&b'0') {
        pos += 1;
    }
    let whole_start = pos;
    pos = digits_end(pos);
    let whole = &s[whole_start..pos];
    let mut has_digits = pos > start;
    let mut fraction: &[u8] = &[];
    if s.get(pos) == Some(&b'.') {
        let fraction_start = pos + 1;
        pos = digits_end(fraction_start);
        fraction = &s[fraction_start..pos];
        has_digits |= !fraction.is_empty();
    }
    let suffix_start = pos;
    while s.get(pos).is_some_and(|c| b"eEinumkKMGTP".contains(c)) {
        pos += 1;
    }
    if matches!(s.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    if digits_end(pos) != s.len() {
        return Err(ParseQuantityError::FormatWrong);
    }
    // Everything from suffix_start on is ASCII, so this cannot fail.
    let suffix =
        std::str::from_utf8(&s[suffix_start..]).map_err(|_| ParseQuantityError::FormatWrong)?;
    Ok(Parts {
        negative,
        whole,
        fraction,
        has_digits,
        suffix,
    })
}

/// Go's suffix table plus decimal exponents (`e`/`E` and a signed 64-bit integer, truncated to
/// 32 bits as Go does: `1e4294967296` is `1`).
fn interpret_suffix(suffix: &str) -> Option<(Suffix, Format)> {
    let decimal = |exponent| Some((Suffix::Decimal(exponent), Format::DecimalSI));
    let binary = |power| Some((Suffix::Binary(power), Format::BinarySI));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?.parse::<i64>().ok()?;
            // Go: int32(parsed). The wrap is deliberate (upstream keeps it for stored data).
            Some((Suffix::Decimal(exponent as i32), Format::DecimalExponent))
        }
    }
}

/// Rounds the magnitude `digits × 10^exp` (digits most significant first, `len` of them) away
/// from zero to a multiple of 10^-9, as Go does for every parsed value.
///
/// Returns the mantissa without trailing zeros and its exponent, `(0, 0)` for zero, or `None`
/// if the mantissa does not fit in an `i128`. Only the digits down to 10^-9 are accumulated;
/// the rest only decide whether to round up, so huge or tiny exponents cost nothing.
fn round_to_nano(digits: impl Iterator<Item = u8>, len: usize, exp: i64) -> Option<(i128, i64)> {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    // Digit i weighs 10^(exp + len - 1 - i); keep those weighing at least 10^-9.
    let keep = exp.saturating_add(len_i).saturating_add(9).clamp(0, len_i) as usize;
    let mut acc: i128 = 0;
    // Zeros kept after the last non-zero digit, not yet multiplied into acc.
    let mut zeros: u32 = 0;
    let mut inexact = false;
    for (i, d) in digits.enumerate() {
        if i >= keep {
            if d != 0 {
                inexact = true;
                break;
            }
        } else if d == 0 {
            if acc != 0 {
                zeros = zeros.saturating_add(1);
            }
        } else {
            acc = acc
                .checked_mul(10i128.checked_pow(zeros.saturating_add(1))?)?
                .checked_add(i128::from(d))?;
            zeros = 0;
        }
    }
    let (mut acc, mut e) = if inexact {
        // Something was dropped, so the last kept digit weighs exactly 10^-9: bump it.
        (
            acc.checked_mul(10i128.checked_pow(zeros)?)?
                .checked_add(1)?,
            -9,
        )
    } else if acc == 0 {
        return Some((0, 0));
    } else {
        (acc, exp + len_i - keep as i64 + i64::from(zeros))
    };
    while acc % 10 == 0 {
        acc /= 10;
        e += 1;
    }
    Some((acc, e))
}

/// A JSON string with the canonical form, like Go's `MarshalJSON`.
impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Like Go's `UnmarshalJSON`: a string (surrounding whitespace ignored), a bare number, or
/// `null` for zero. Numbers arrive as `f64`/`i64` from serde, so `1e3` reads as `1000`
/// (DecimalSI) where Go would keep DecimalExponent.
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// Serde visitor accepting the shapes Go's `UnmarshalJSON` accepts.
struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes quantity such as \"500m\" or \"1Gi\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        v.trim()
            .parse()
            .map_err(|err| E::custom(format_args!("invalid quantity {v:?}: {err}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity::new(v, 0, Format::DecimalSI))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Ok(Quantity {
            mantissa: i128::from(v),
            scale: 0,
            format: Format::DecimalSI,
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        // Rust prints the shortest decimal that reads back as v, i.e. the JSON text in
        // practice.
        self.visit_str(&v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Quantity, E> {
        Ok(Quantity::default())
    }
}

#[cfg(test)]
mod tests {
    use super::Format::{BinarySI, DecimalExponent, DecimalSI};
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse()
            .unwrap_or_else(|err| panic!("{s:?} should parse: {err}"))
    }

    // --- The values the gateway serves -------------------------------------------------------

    #[test]
    fn served_cpu_from_nanocores() {
        for (nanocores, want) in [
            (487_558_164, "487558164n"),
            (500_000_000, "500m"),
            (1_000_000_000, "1"),
            (0, "0"),
            (1_500_000_000, "1500m"),
            (1, "1n"),
            (10, "10n"),
            (1000, "1u"),
            (1_000_000, "1m"),
            (2_000_000_000_000, "2k"),
            (u64::MAX, "18446744073709551615n"),
        ] {
            let quantity = Quantity::from_nanocores(nanocores);
            assert_eq!(quantity.to_string(), want, "{nanocores} nanocores");
            assert_eq!(quantity.format(), DecimalSI);
            assert_eq!(q(want), quantity, "{want} parses back");
        }
    }

    #[test]
    fn served_memory_from_bytes() {
        for (bytes, want) in [
            (749_785_088, "732212Ki"),
            (12_533_760, "12240Ki"),
            // Below 1024 BinarySI prints as DecimalSI.
            (1000, "1k"),
            (1023, "1023"),
            (1, "1"),
            (0, "0"),
            // At least 1024 but not a multiple of it: a plain integer, no decimal suffix.
            (1024, "1Ki"),
            (1025, "1025"),
            (1536, "1536"),
            (2000, "2000"),
            (1_048_576, "1Mi"),
            (1_610_612_736, "1536Mi"),
            (1 << 60, "1Ei"),
            (u64::MAX, "18446744073709551615"),
        ] {
            let quantity = Quantity::from_bytes(bytes);
            assert_eq!(quantity.to_string(), want, "{bytes} bytes");
            assert_eq!(quantity.value(), i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    #[test]
    fn custom_metric_values_from_f64() {
        for (v, want) in [
            (0.5, "500m"),
            (1.0, "1"),
            (0.0, "0"),
            (-2.5, "-2500m"),
            (0.0015, "1m"),   // int64(1.5) truncates
            (-0.0015, "-1m"), // toward zero
            (0.0001, "0"),
            (1234.0, "1234"),
            (1e15, "1P"),
            (0.29, "290m"),
        ] {
            let quantity = Quantity::from_f64_milli(v).expect("in range");
            assert_eq!(quantity.to_string(), want, "{v}");
            assert_eq!(quantity.format(), DecimalSI);
        }
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e16,
            -1e16,
            9.3e15,
        ] {
            assert_eq!(Quantity::from_f64_milli(v), None, "{v}");
        }
        // -2^63 milli is exactly i64::MIN, still in range.
        assert!(Quantity::from_f64_milli(-9_223_372_036_854_775.808).is_some());
    }

    #[test]
    fn parse_format_round_trips() {
        for (input, want, format) in [
            ("100m", "100m", DecimalSI),
            ("1.5Gi", "1536Mi", BinarySI),
            ("0.1", "100m", DecimalSI),
            ("1e3", "1e3", DecimalExponent),
            ("-5", "-5", DecimalSI),
            ("5E", "5E", DecimalSI),
            (".5", "500m", DecimalSI),
            ("1Gi", "1Gi", BinarySI),
            ("487558164n", "487558164n", DecimalSI),
            ("732212Ki", "732212Ki", BinarySI),
        ] {
            let quantity = q(input);
            assert_eq!(quantity.to_string(), want, "{input}");
            assert_eq!(quantity.format(), format, "{input}");
            let again = q(want);
            assert_eq!(again.to_string(), want, "{want} is canonical");
            assert_eq!(again, quantity);
        }
    }

    // --- quantity_test.go: TestQuantityParse -------------------------------------------------

    /// (input, mantissa, exponent, format) from TestQuantityParse's table.
    const PARSE_TABLE: &[(&str, i64, i32, Format)] = &[
        ("0", 0, 0, DecimalSI),
        ("0n", 0, 0, DecimalSI),
        ("0u", 0, 0, DecimalSI),
        ("0m", 0, 0, DecimalSI),
        ("0Ki", 0, 0, BinarySI),
        ("0k", 0, 0, DecimalSI),
        ("0Mi", 0, 0, BinarySI),
        ("0M", 0, 0, DecimalSI),
        ("0Gi", 0, 0, BinarySI),
        ("0G", 0, 0, DecimalSI),
        ("0Ti", 0, 0, BinarySI),
        ("0T", 0, 0, DecimalSI),
        // Quantity-less numbers are allowed.
        ("1", 1, 0, DecimalSI),
        // Binary suffixes.
        ("1Ki", 1024, 0, BinarySI),
        ("8Ki", 8 * 1024, 0, BinarySI),
        ("7Mi", 7 << 20, 0, BinarySI),
        ("6Gi", 6 << 30, 0, BinarySI),
        ("5Ti", 5 << 40, 0, BinarySI),
        ("4Pi", 4 << 50, 0, BinarySI),
        ("3Ei", 3 << 60, 0, BinarySI),
        ("10Ti", 10 << 40, 0, BinarySI),
        ("100Ti", 100 << 40, 0, BinarySI),
        // Decimal suffixes.
        ("5n", 5, -9, DecimalSI),
        ("4u", 4, -6, DecimalSI),
        ("3m", 3, -3, DecimalSI),
        ("9", 9, 0, DecimalSI),
        ("8k", 8, 3, DecimalSI),
        ("50k", 5, 4, DecimalSI),
        ("7M", 7, 6, DecimalSI),
        ("6G", 6, 9, DecimalSI),
        ("5T", 5, 12, DecimalSI),
        ("40T", 4, 13, DecimalSI),
        ("300T", 3, 14, DecimalSI),
        ("2P", 2, 15, DecimalSI),
        ("1E", 1, 18, DecimalSI),
        // Decimal exponents.
        ("1E-3", 1, -3, DecimalExponent),
        ("1e3", 1, 3, DecimalExponent),
        ("1E6", 1, 6, DecimalExponent),
        ("1e9", 1, 9, DecimalExponent),
        ("1E12", 1, 12, DecimalExponent),
        ("1e15", 1, 15, DecimalExponent),
        ("1E18", 1, 18, DecimalExponent),
        // Nonstandard but still parsable.
        ("1e14", 1, 14, DecimalExponent),
        ("1e13", 1, 13, DecimalExponent),
        ("100.035k", 100_035, 0, DecimalSI),
        // Things that look like floating point.
        ("0.001", 1, -3, DecimalSI),
        ("0.0005k", 5, -1, DecimalSI),
        ("0.005", 5, -3, DecimalSI),
        ("0.05", 5, -2, DecimalSI),
        ("0.5", 5, -1, DecimalSI),
        ("0.00050k", 5, -1, DecimalSI),
        ("0.00500", 5, -3, DecimalSI),
        ("0.05000", 5, -2, DecimalSI),
        ("0.50000", 5, -1, DecimalSI),
        ("0.5e0", 5, -1, DecimalExponent),
        ("0.5e-1", 5, -2, DecimalExponent),
        ("0.5e-2", 5, -3, DecimalExponent),
        ("10.035M", 10_035, 3, DecimalSI),
        ("1.2e3", 12, 2, DecimalExponent),
        ("1.3E+6", 13, 5, DecimalExponent),
        ("1.40e9", 14, 8, DecimalExponent),
        ("1.53E12", 153, 10, DecimalExponent),
        ("1.6e15", 16, 14, DecimalExponent),
        ("1.7E18", 17, 17, DecimalExponent),
        ("9.01", 901, -2, DecimalSI),
        ("8.1k", 81, 2, DecimalSI),
        ("7.123456M", 7_123_456, 0, DecimalSI),
        ("6.987654321G", 6_987_654_321, 0, DecimalSI),
        ("5.444T", 5444, 9, DecimalSI),
        ("40.1T", 401, 11, DecimalSI),
        ("300.2T", 3002, 11, DecimalSI),
        ("2.5P", 25, 14, DecimalSI),
        ("1.01E", 101, 16, DecimalSI),
        // Things that saturate/round.
        ("3.001n", 4, -9, DecimalSI),
        ("1.1E-9", 2, -9, DecimalExponent),
        ("0.0000000001", 1, -9, DecimalSI),
        ("0.0000000005", 1, -9, DecimalSI),
        ("0.00000000050", 1, -9, DecimalSI),
        ("0.5e-9", 1, -9, DecimalExponent),
        ("0.9n", 1, -9, DecimalSI),
        ("0.00000012345", 124, -9, DecimalSI),
        ("0.00000012354", 124, -9, DecimalSI),
        ("9Ei", i64::MAX, 0, BinarySI),
        ("9223372036854775807Ki", i64::MAX, 0, BinarySI),
        ("12E", 12, 18, DecimalSI),
        // Fractional binary values.
        ("100.035Ki", 10_243_584, -2, BinarySI),
        ("0.5Mi", 1 << 19, 0, BinarySI),
        ("0.05Gi", 536_870_912, -1, BinarySI),
        ("0.025Ti", 274_877_906_944, -1, BinarySI),
        // Things written by trolls.
        ("0.000000000001Ki", 2, -9, DecimalSI), // rounds up, changes format
        (".001", 1, -3, DecimalSI),
        (".0001k", 100, -3, DecimalSI),
        ("1.", 1, 0, DecimalSI),
        ("1.G", 1, 9, DecimalSI),
    ];

    #[test]
    fn parse_table_from_quantity_test_go() {
        for &(input, mantissa, scale, format) in PARSE_TABLE {
            let want = Quantity::new(mantissa, scale, format);
            for (signed, expect) in [
                (input.to_owned(), want),
                (format!("+{input}"), want),
                (format!("-{input}"), Quantity::new(-mantissa, scale, format)),
            ] {
                let got = q(&signed);
                assert_eq!(got, expect, "{signed}");
                assert_eq!(got.format(), format, "{signed}");
            }
        }
    }

    #[test]
    fn parse_rejects_invalid_input_from_quantity_test_go() {
        use ParseQuantityError::{FormatWrong, Suffix};
        for (input, want) in [
            ("", FormatWrong),
            ("1.1.M", FormatWrong),
            ("1+1.0M", FormatWrong),
            ("0.1mi", Suffix),
            ("0.1am", FormatWrong),
            ("aoeu", FormatWrong),
            (".5i", Suffix),
            ("1i", Suffix),
            ("-3.01i", Suffix),
            ("-3.01e-", Suffix),
            // Surrounding whitespace is forbidden.
            (" 1", FormatWrong),
            ("1 ", FormatWrong),
            ("Non-Numeric", FormatWrong),
            // Not suffixes: K alone, "e" without digits, exponents beyond i64.
            ("1K", Suffix),
            ("1e", Suffix),
            ("1ee3", Suffix),
            ("1Ki3", Suffix),
            ("1e9223372036854775808", Suffix),
            ("1µ", FormatWrong),
        ] {
            assert_eq!(input.parse::<Quantity>(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn parse_reproduces_go_leniency() {
        // parseQuantityString reads a number without digits as 0 when Go's int64 fast path
        // applies; otherwise inf.Dec rejects it (upstream keeps this for stored data).
        for (input, format) in [
            ("-", DecimalSI),
            ("+", DecimalSI),
            (".", DecimalSI),
            ("-.", DecimalSI),
            ("e3", DecimalExponent),
            ("-e3", DecimalExponent),
            ("m", DecimalSI),
            ("Ki", BinarySI),
            ("Ti", BinarySI),
            ("e-9", DecimalExponent),
        ] {
            let got = q(input);
            assert!(got.is_zero(), "{input}");
            assert_eq!(got.format(), format, "{input}");
        }
        for input in ["Pi", "Ei", ".Ei", "-Pi", "e-10", ".e-12"] {
            assert_eq!(
                input.parse::<Quantity>(),
                Err(ParseQuantityError::Numeric),
                "{input}"
            );
        }
        // A decimal exponent is truncated to 32 bits (kubernetes#142395, frozen upstream).
        assert_eq!(q("1e4294967296").to_string(), "1");
        assert_eq!(q("1e4294967297").to_string(), "10");
        // Leading zeros and a trailing dot are accepted.
        assert_eq!(q("007").to_string(), "7");
        assert_eq!(q("7.").to_string(), "7");
        assert_eq!(q("-0").to_string(), "0");
    }

    // --- quantity_test.go: TestQuantityString and TestQuantityParseEmit ----------------------

    #[test]
    fn string_table_from_quantity_test_go() {
        for (mantissa, scale, format, want, alternate) in [
            (1 << 30, 0, BinarySI, "1Gi", "1024Mi"),
            (300 << 20, 0, BinarySI, "300Mi", "307200Ki"),
            (6 << 10, 0, BinarySI, "6Ki", ""),
            (1001 << 30, 0, BinarySI, "1001Gi", "1025024Mi"),
            (1 << 40, 0, BinarySI, "1Ti", "1024Gi"),
            (5, 0, BinarySI, "5", "5000m"),
            (500, -3, BinarySI, "500m", "0.5"),
            (1, 9, DecimalSI, "1G", "1000M"),
            (1000, 6, DecimalSI, "1G", "0.001T"),
            (1_000_000, 3, DecimalSI, "1G", ""),
            (1_000_000_000, 0, DecimalSI, "1G", ""),
            (1, -3, DecimalSI, "1m", "1000u"),
            (80, -3, DecimalSI, "80m", ""),
            (1080, -3, DecimalSI, "1080m", "1.08"),
            (108, -2, DecimalSI, "1080m", "1080000000n"),
            (10800, -4, DecimalSI, "1080m", ""),
            (300, 6, DecimalSI, "300M", ""),
            (1, 12, DecimalSI, "1T", ""),
            (1_234_567, 6, DecimalSI, "1234567M", ""),
            (1_234_567, -3, BinarySI, "1234567m", ""),
            (3, 3, DecimalSI, "3k", ""),
            (1025, 0, BinarySI, "1025", ""),
            (0, 0, DecimalSI, "0", ""),
            (0, 0, BinarySI, "0", ""),
            (1, 9, DecimalExponent, "1e9", ".001e12"),
            (1, -3, DecimalExponent, "1e-3", "0.001e0"),
            (1, -9, DecimalExponent, "1e-9", "1000e-12"),
            (80, -3, DecimalExponent, "80e-3", ""),
            (300, 6, DecimalExponent, "300e6", ""),
            (1, 12, DecimalExponent, "1e12", ""),
            (1, 3, DecimalExponent, "1e3", ""),
            (3, 3, DecimalExponent, "3e3", ""),
            (0, 0, DecimalExponent, "0", "00"),
            (1, -9, DecimalSI, "1n", ""),
            (80, -9, DecimalSI, "80n", ""),
            (1080, -9, DecimalSI, "1080n", ""),
            (108, -8, DecimalSI, "1080n", ""),
            (10800, -10, DecimalSI, "1080n", ""),
            (1, -6, DecimalSI, "1u", ""),
            (80, -6, DecimalSI, "80u", ""),
            (1080, -6, DecimalSI, "1080u", ""),
        ] {
            let quantity = Quantity::new(mantissa, scale, format);
            assert_eq!(quantity.to_string(), want, "{quantity:?}");
            if mantissa != 0 {
                let negative = Quantity::new(-mantissa, scale, format);
                assert_eq!(negative.to_string(), format!("-{want}"));
            }
            assert_eq!(q(want).to_string(), want, "{want} parses to itself");
            if !alternate.is_empty() {
                assert_eq!(q(alternate).to_string(), want, "alternate {alternate}");
            }
        }
    }

    #[test]
    fn parse_emit_table_from_quantity_test_go() {
        for (input, want) in [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
        ] {
            assert_eq!(q(input).to_string(), want, "{input}");
            assert_eq!(
                q(&format!("-{input}")).to_string(),
                format!("-{want}"),
                "-{input}"
            );
        }
    }

    // --- quantity_test.go: TestNewSet, TestMilliNewSet, TestNewScaledSet, TestScaledValue ----

    #[test]
    fn constructor_tables_from_quantity_test_go() {
        for (value, format, want) in [
            (1, DecimalSI, "1"),
            (1000, DecimalSI, "1k"),
            (1_234_000, DecimalSI, "1234k"),
            (1024, BinarySI, "1Ki"),
            (1 << 20, BinarySI, "1Mi"),
        ] {
            let quantity = Quantity::new(value, 0, format);
            assert_eq!(quantity.to_string(), want);
            assert_eq!(q(want).value(), value);
        }
        for (milli, format, want) in [
            (1, DecimalSI, "1m"),
            (1000, DecimalSI, "1"),
            (1_234_000, DecimalSI, "1234"),
            (1024, BinarySI, "1024m"),
            (1 << 20, BinarySI, "1048576m"),
        ] {
            let quantity = Quantity::new(milli, -3, format);
            assert_eq!(quantity.to_string(), want);
            assert_eq!(q(want).milli_value(), milli);
        }
        for (value, scale, want) in [
            (1, -9, "1n"),
            (1000, -9, "1u"),
            (1, -6, "1u"),
            (1000, -6, "1m"),
            (1, -3, "1m"),
            (1000, -3, "1"),
            (1, 0, "1"),
            (0, -9, "0"),
            (0, -6, "0"),
            (0, -3, "0"),
            (0, 0, "0"),
        ] {
            assert_eq!(Quantity::new(value, scale, DecimalSI).to_string(), want);
        }
        // TestScaledValue: 1 × 10^from read at milli and unit scale rounds up.
        for (from, milli, unit) in [
            (-9, 1, 1),
            (-6, 1, 1),
            (-3, 1, 1),
            (0, 1000, 1),
            (2, 100_000, 100),
        ] {
            let quantity = Quantity::new(1, from, DecimalSI);
            assert_eq!(
                (quantity.milli_value(), quantity.value()),
                (milli, unit),
                "1e{from}"
            );
        }
    }

    // --- quantity_test.go: TestParseQuantity (values beyond int64) --------------------------

    #[test]
    fn parse_values_beyond_int64_from_quantity_test_go() {
        for (input, canonical) in [
            ("999999999999999999", ""),
            ("999999999999999999.0", "999999999999999999"),
            ("999999999999999999.1", "999999999999999999100m"),
            ("9999999999999999999", ""),
            ("1E", ""),
            ("1000000000000000000", "1E"),
            ("9999999999999999999.0", "9999999999999999999"),
            ("1.0E", "1E"),
            ("1000000000000000000.0", "1E"),
            ("9999999999999999999000m", "9999999999999999999"),
            ("9999999999999999999.1", "9999999999999999999100m"),
            ("1.0000000000000000001E", "1000000000000000000100m"),
            ("1000000000000000000.1", "1000000000000000000100m"),
            ("1.000000000000000001E", "1000000000000000001"),
            ("1000000000000000001", ""),
            ("10E", ""),
            ("10000000000000000000", "10E"),
            ("10.0E", "10E"),
            ("10000000000000000000.0", "10E"),
            ("10000000000000000000000m", "10E"),
            ("10.0000000000000000001E", "10000000000000000000100m"),
            ("10000000000000000000.1", "10000000000000000000100m"),
            ("10.000000000000000001E", "10000000000000000001"),
            ("10000000000000000001", ""),
            ("9223372036854775806", ""),
            ("9223372036854775806.0", "9223372036854775806"),
            ("9223372036854775806000m", "9223372036854775806"),
            ("9223372036854775806.1", "9223372036854775806100m"),
            ("9223372036854775807", ""),
            ("9223372036854775807.0", "9223372036854775807"),
            ("9223372036854775807000m", "9223372036854775807"),
            ("9223372036854775807.1", "9223372036854775807100m"),
            ("9223372036854775808", ""),
            ("9223372036854775808.0", "9223372036854775808"),
            ("9223372036854775808000m", "9223372036854775808"),
            ("9223372036854775808.1", "9223372036854775808100m"),
            ("9223372036854775809.1", "9223372036854775809100m"),
        ] {
            let want = if canonical.is_empty() {
                input
            } else {
                canonical
            };
            assert_eq!(q(input).to_string(), want, "{input}");
            assert_eq!(
                q(&format!("-{input}")).to_string(),
                format!("-{want}"),
                "-{input}"
            );
        }
    }

    // --- quantity_golden_test.go and quantity_subnano_test.go (upstream master) -------------

    #[test]
    fn golden_serialization_from_quantity_golden_test_go() {
        let cases = [
            (Quantity::default(), "0"),
            (q("1"), "1"),
            (q("-1"), "-1"),
            (q("1Ki"), "1Ki"),
            (q("1024Mi"), "1Gi"),
            (q("1000M"), "1G"),
            (q("1e3"), "1e3"),
            (q("0.1"), "100m"),
            (Quantity::new(1441, -3, DecimalSI), "1441m"),
            (q("0.000000000000001"), "1n"),
            // Upstream's agreed canonical form (Go 1.37 still echoes the input, #138165).
            (q("1.441"), "1441m"),
            (q("1.000001"), "1000001u"),
            (q("1.000000001"), "1000000001n"),
            (q("1.5"), "1500m"),
            (q("9223372036854775807"), "9223372036854775807"),
            (
                Quantity::new(i64::MIN, 0, DecimalSI),
                "-9223372036854775808",
            ),
            (q("9223372036854775808"), "9223372036854775808"),
            (q("18446744073709551616"), "18446744073709551616"),
            (
                Quantity::new(i64::MAX, 1, DecimalSI),
                "92233720368547758070",
            ),
            // Above the largest SI suffix (kubernetes#140459).
            (q("1E"), "1E"),
            (q("100E"), "100E"),
            (q("1000E"), "1e21"),
            (q("1e100"), "10e99"),
            (Quantity::new(1, 21, DecimalSI), "1e21"),
            // BinarySI is capped at parse time.
            (q("8Ei"), "9223372036854775807"),
            (q("-20Ei"), "-9223372036854775807"),
            (q("-9.5Gi"), "-9728Mi"),
            (q("-9.5000000001Gi"), "-10200547328107374183n"),
        ];
        for (quantity, want) in cases {
            assert_eq!(quantity.to_string(), want, "{quantity:?}");
            let json = serde_json::to_string(&quantity).expect("serializes");
            assert_eq!(json, format!("\"{want}\""));
            let back: Quantity = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(
                serde_json::to_string(&back).expect("serializes"),
                json,
                "byte stable"
            );
        }
    }

    #[test]
    fn sub_nano_rounds_away_from_zero_from_quantity_subnano_test_go() {
        for (input, want) in [
            ("1e-2147483647", "1n"),
            ("-1e-2147483647", "-1n"),
            ("1e-2147483648", "1n"),
            ("1e-100", "1n"),
            ("-1e-100", "-1n"),
            ("1e-10", "1n"),
            ("9e-10", "1n"),
            ("-9e-10", "-1n"),
            ("1e-9", "1n"),
            ("-1e-9", "-1n"),
            ("2e-9", "2n"),
            ("15e-10", "2n"),
            ("1000000000000000000000e-30", "1n"),
            ("1000000000000000000001e-30", "2n"),
            ("999999999999999999999e-30", "1n"),
            ("0e-2147483647", "0"),
            ("0.0e-100", "0"),
            ("0.00000000000000000000001Ki", "1n"),
            ("1.01n", "2n"),
            ("10.1n", "11n"),
            ("999.9999999999", "1k"),
            ("0.9999999999", "1"),
        ] {
            assert_eq!(q(input), q(want), "{input}");
        }
        assert_eq!(q("1e-100").to_string(), "1e-9");
        assert_eq!(q("1e-100").format(), DecimalExponent);
        assert_eq!(q("-0.0000000000001").to_string(), "-1n");
        assert_eq!(q("0.00000000000000000000001Ki").format(), DecimalSI);
        // Constructed values below 1n keep their precision and print in e notation.
        assert_eq!(Quantity::new(7, -18, DecimalSI).to_string(), "7e-18");
        assert_eq!(Quantity::new(-7, -400, DecimalSI).to_string(), "-700e-402");
    }

    #[test]
    fn binary_si_beyond_ei_falls_back_to_decimal() {
        // The exact model upstream (internal/exact/format.go): k <= 6 powers of 1024 get a
        // suffix, more print in decimal exponent form.
        assert_eq!(Quantity::new(1, 70, BinarySI).to_string(), "10e69");
        assert_eq!(
            Quantity::new(1, 30, BinarySI).to_string(),
            "931322574615478515625Gi"
        );
        assert_eq!(
            Quantity::new(3, 20, BinarySI).to_string(),
            "286102294921875Mi"
        );
        assert_eq!(
            Quantity::new(1, 60, BinarySI).to_string(),
            "867361737988403547205962240695953369140625Ei"
        );
        assert_eq!(Quantity::new(1024, 3, BinarySI).to_string(), "1000Ki");
        assert_eq!(
            Quantity::new(-1, 2_000_000_000, BinarySI).to_string(),
            "-100e1999999998"
        );
        // Ten factors of two come out of 10^10, leaving 5^10 behind.
        let fives = u128::from(i64::MAX.unsigned_abs()) * 5u128.pow(10);
        assert_eq!(
            Quantity::new(i64::MAX, 10, BinarySI).to_string(),
            format!("{fives}Ki")
        );
    }

    // --- checked_accessors_test.go: Value and MilliValue -------------------------------------

    #[test]
    fn value_and_milli_value_round_away_from_zero_and_saturate() {
        for (mantissa, scale, value, milli) in [
            (95, -1, 10, 9500),
            (-95, -1, -10, -9500),
            (100, -1, 10, 10_000),
            (1, -3, 1, 1),
            (-1, -3, -1, -1),
            (1, -9, 1, 1),
            (-1500, -3, -2, -1500),
            (i64::MAX, 1, i64::MAX, i64::MAX),
            (i64::MIN, 1, i64::MIN, i64::MIN),
            (i64::MAX, 0, i64::MAX, i64::MAX),
            (i64::MIN, 0, i64::MIN, i64::MIN),
            (7, 2_000_000_000, i64::MAX, i64::MAX),
            (-7, 2_000_000_000, i64::MIN, i64::MIN),
            (7, -2_000_000_000, 1, 1),
            (-7, -2_000_000_000, -1, -1),
            (7, i32::MIN, 1, 1),
            (0, i32::MAX, 0, 0),
        ] {
            let quantity = Quantity::new(mantissa, scale, DecimalSI);
            assert_eq!(
                (quantity.value(), quantity.milli_value()),
                (value, milli),
                "{mantissa}e{scale}"
            );
        }
        assert_eq!(q("1e100").value(), i64::MAX);
        assert_eq!(q("-1e100").value(), i64::MIN);
        assert_eq!(q("-9223372036854775808").value(), i64::MIN);
        assert_eq!(q("9223372036854775808").value(), i64::MAX);
        assert_eq!(q("-.1Ki").value(), -103); // kubernetes#110654
        assert_eq!(q("487558164n").milli_value(), 488);
    }

    // --- quantity_test.go: TestQuantityAsFloat64Slow, TestStringQuantityAsFloat64Slow --------

    #[test]
    fn as_f64_table_from_quantity_test_go() {
        let seven_mi = 7 * 1024 * 1024;
        for format in [DecimalSI, BinarySI, DecimalExponent] {
            for (mantissa, scale, want) in [
                (0, 0, 0.0),
                (1, 0, 1.0),
                (1024, 0, 1024.0),
                (8 * 1024, 0, 8192.0),
                (seven_mi, 0, 7_340_032.0),
                (seven_mi, 1, 73_400_320.0),
                (seven_mi, 4, 73_400_320_000.0),
                (seven_mi, 8, 734_003_200_000_000.0),
                (seven_mi, -1, 7_340_032.0 / 10.0),
                (seven_mi, -8, 7_340_032.0 / 100_000_000.0),
                (i64::MAX, 0, 9_223_372_036_854_775_807.0),
                (12, 18, 1.2e19),
                (12, 500, f64::INFINITY),
                (-12, 500, f64::NEG_INFINITY),
                (1, -400, 0.0),
                (123_456_789, -30, 1.234_567_89e-22),
                (1, i32::MAX, f64::INFINITY),
            ] {
                let got = Quantity::new(mantissa, scale, format).as_f64();
                assert_eq!(got, want, "{mantissa}e{scale}");
            }
        }
        for (input, want) in [
            ("2Ki", 2048.0),
            ("1.1Ki", 1126.4),
            ("1Mi", 1_048_576.0),
            ("2Gi", 2_147_483_648.0),
            ("500m", 0.5),
            ("487558164n", 0.487_558_164),
        ] {
            assert_eq!(q(input).as_f64(), want, "{input}");
        }
    }

    // --- Equality, ordering, serde -----------------------------------------------------------

    #[test]
    fn equality_and_order_compare_values_not_formats() {
        use std::collections::HashSet;
        assert_eq!(q("1k"), Quantity::from_bytes(1000));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(
            Quantity::new(10, 0, DecimalSI),
            Quantity::new(1, 1, DecimalExponent)
        );
        let set: HashSet<Quantity> = ["1", "1000m", "1e0", "0.001k"].into_iter().map(q).collect();
        assert_eq!(set.len(), 1);
        // TestQuantityCmp and TestQuantityCmpInt64AndDec.
        assert!(q("100m") > q("50m"));
        assert!(q("10000T") > q("100Gi"));
        assert!(Quantity::new(90, -1, DecimalSI) < Quantity::new(901, -2, DecimalSI));
        assert!(Quantity::new(800, -3, DecimalSI) < q("1"));
        assert!(Quantity::new(800, -3, DecimalSI) > Quantity::new(79, -2, DecimalSI));
        assert!(Quantity::new(i64::MAX, 0, DecimalSI) > Quantity::new(1, -1, DecimalSI));
        assert!(Quantity::new(i64::MAX, -16, DecimalSI) < Quantity::new(1, 3, DecimalSI));
        assert!(Quantity::new(i64::MIN, -18, DecimalSI) < q("-1"));
        assert!(Quantity::new(i64::MIN, -19, DecimalSI) > q("-1"));
        assert!(q("-1") < q("0") && q("0") < q("1n"));
        assert!(q("-2") < q("-1"));
        let big = q("170141183460469231731687303715884105727"); // i128::MAX
        assert!(big > Quantity::new(9, 37, DecimalSI));
        assert!(Quantity::new(9, 38, DecimalSI) > big);
        assert_eq!(
            Quantity::new(0, 5, DecimalSI).cmp(&Quantity::new(0, -5, BinarySI)),
            Ordering::Equal
        );
    }

    #[test]
    fn serde_matches_go_json() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Usage {
            cpu: Quantity,
            memory: Quantity,
        }
        let usage = Usage {
            cpu: Quantity::from_nanocores(487_558_164),
            memory: Quantity::from_bytes(749_785_088),
        };
        let json = serde_json::to_string(&usage).expect("serializes");
        assert_eq!(json, r#"{"cpu":"487558164n","memory":"732212Ki"}"#);
        assert_eq!(
            serde_json::from_str::<Usage>(&json).expect("deserializes"),
            usage
        );
        // TestJSONWhitespace, plus null and bare numbers as Go's UnmarshalJSON accepts them.
        for (json, want) in [
            (r#"" 1""#, "1"),
            (r#""1 ""#, "1"),
            ("1", "1"),
            (" 1", "1"),
            ("1 ", "1"),
            ("10", "10"),
            ("-1", "-1"),
            (" -1", "-1"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("18446744073709551615", "18446744073709551615"),
            ("null", "0"),
        ] {
            let got: Quantity =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(got.to_string(), want, "{json}");
        }
        let err = serde_json::from_str::<Quantity>(r#""1.1.M""#).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("quantities must match the regular expression"),
            "{err}"
        );
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<Quantity>(r#""""#).is_err());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        // Over 38 significant digits down to 1n, and an exponent beyond i32 after normalisation.
        assert_eq!(
            "999999999999999999999999999999999999999".parse::<Quantity>(),
            Err(ParseQuantityError::OutOfRange)
        );
        assert_eq!(
            "-923456789012345678901234567890.123456789".parse::<Quantity>(),
            Err(ParseQuantityError::OutOfRange)
        );
        assert_eq!(
            "10e2147483647".parse::<Quantity>(),
            Err(ParseQuantityError::OutOfRange)
        );
        assert_eq!(q("1e2147483647").to_string(), "10e2147483646");
        // i128::MAX is the largest mantissa; one more overflows on the last digit.
        assert_eq!(
            q("170141183460469231731687303715884105727").to_string(),
            "170141183460469231731687303715884105727"
        );
        assert_eq!(
            "170141183460469231731687303715884105728".parse::<Quantity>(),
            Err(ParseQuantityError::OutOfRange)
        );
        // 38 digits fit; trailing zeros cost nothing.
        assert_eq!(
            q("12345678901234567890123456789012345678").to_string(),
            "12345678901234567890123456789012345678"
        );
        assert_eq!(
            q("1000000000000000000000000000000000000000000000000000").to_string(),
            "1e51"
        );
        // BinarySI saturates instead.
        assert_eq!(
            q("123456789012345678901234567890123456789012345Ei").to_string(),
            "9223372036854775807"
        );
    }

    /// A tiny xorshift generator, so the randomized check needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn randomized_display_parse_round_trip() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let bits = rng.next();
            // Mix full-width mantissas with small ones so suffix boundaries are hit.
            let mantissa = match bits % 4 {
                0 => rng.next() as i64,
                1 => (rng.next() % 2048) as i64 - 1024,
                2 => ((rng.next() % 1024) as i64) << (10 * (rng.next() % 6)),
                _ => (rng.next() % 1_000_000) as i64 * 1000,
            };
            let format = [DecimalSI, BinarySI, DecimalExponent][(bits >> 8) as usize % 3];
            // Sub-nano values and BinarySI above 2^63 do not survive Go's parse either.
            let scale = match format {
                BinarySI => -(((bits >> 16) % 10) as i32),
                _ => ((bits >> 16) % 40) as i32 - 9,
            };
            let quantity = Quantity::new(mantissa, scale, format);
            let text = quantity.to_string();
            let back = q(&text);
            assert_eq!(back, quantity, "{text} from {mantissa}e{scale} {format:?}");
            // A plain integer reads back as DecimalSI, which may print differently; otherwise
            // the text must be a fixed point.
            if back.format() == format {
                assert_eq!(back.to_string(), text, "{text} is canonical");
            }
            let again = back.to_string();
            assert_eq!(q(&again).to_string(), again, "{again} is canonical");
            let json = serde_json::to_string(&quantity).expect("serializes");
            assert_eq!(
                serde_json::from_str::<Quantity>(&json).expect("deserializes"),
                quantity
            );
        }
    }
}
