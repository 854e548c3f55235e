//! The gateway's notion of "now", injectable so time-dependent logic is tested without sleeping.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A source of the current time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Millis + Send + Sync>);

impl Clock {
    /// The system wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as Millis)
                .unwrap_or(0)
        }))
    }

    /// A clock reading `f` (tests share a manual clock with the kubelet simulator this way).
    pub fn from_fn(f: impl Fn() -> Millis + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// Current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> Millis {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// Formats milliseconds since the epoch as RFC 3339 with second precision, as Kubernetes
/// serialises `metav1.Time` (`2022-01-27T18:48:33Z`).
pub fn rfc3339_seconds(ms: Millis) -> String {
    Rfc3339Seconds::new(ms).as_str().to_owned()
}

/// [`rfc3339_seconds`] on the stack: the API renders one per served value, so it neither
/// allocates nor goes through a general-purpose formatter. Times outside the years 0000–9999
/// (and past jiff's last instant, 9999-12-30T22:00:00Z) print as the epoch.
#[derive(Clone, Copy)]
pub struct Rfc3339Seconds([u8; 20]);

impl Rfc3339Seconds {
    /// The text of `ms`.
    pub fn new(ms: Millis) -> Rfc3339Seconds {
        let civil = jiff::Timestamp::from_second(ms.div_euclid(1000))
            .ok()
            .map(|ts| jiff::tz::Offset::UTC.to_datetime(ts))
            .filter(|t| t.year() >= 0)
            .unwrap_or(jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0));
        let mut buf = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, n: i16| {
            let mut n = n.unsigned_abs();
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, civil.year());
        put(5, 2, civil.month().into());
        put(8, 2, civil.day().into());
        put(11, 2, civil.hour().into());
        put(14, 2, civil.minute().into());
        put(17, 2, civil.second().into());
        Rfc3339Seconds(buf)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00Z")
    }
}

/// Formats a duration in milliseconds as Go's `time.Duration.String()` does for the values the
/// metrics APIs serve (`"30s"`, `"17.913s"`, `"1m0.5s"`, `"0s"`).
pub fn go_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let (h, m, s, frac) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if ms < 1000 {
        out.push_str(&format!("{ms}ms"));
        return out;
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_like_metav1_time() {
        assert_eq!(rfc3339_seconds(1_643_309_313_999), "2022-01-27T18:48:33Z");
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_seconds(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(253_402_207_200_999), "9999-12-30T22:00:00Z");
        assert_eq!(rfc3339_seconds(-62_167_219_200_000), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(-62_167_219_201_000), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(253_402_207_201_000), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(i64::MIN), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn stack_timestamps_agree_with_jiff_over_the_whole_range() {
        // Every day boundary ± a second over 1900–2200, and pseudo-random times in 0000–9999
        // (jiff ends on 9999-12-30).
        let mut secs: Vec<i64> = (-25_567..84_000)
            .flat_map(|d: i64| [d * 86_400 - 1, d * 86_400, d * 86_400 + 43_261])
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            secs.push(-62_167_219_200 + (x % 315_569_347_200) as i64);
        }
        for s in secs {
            let want = jiff::Timestamp::from_second(s)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(rfc3339_seconds(s * 1000 + 999), want, "{s} s");
        }
    }

    #[test]
    fn formats_durations_like_go() {
        // Expected strings are what Go's time.Duration.String() prints for these values.
        for (ms, want) in [
            (30_000, "30s"),
            (17_913, "17.913s"),
            (15_100, "15.1s"),
            (0, "0s"),
            (500, "500ms"),
            (60_000, "1m0s"),
            (60_500, "1m0.5s"),
            (3_600_000, "1h0m0s"),
            (3_723_040, "1h2m3.04s"),
        ] {
            assert_eq!(go_duration(ms), want, "{ms} ms");
        }
    }
}
