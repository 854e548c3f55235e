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
    match jiff::Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
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
