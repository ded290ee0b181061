//! Latency recording (HDR histograms, one per worker, merged at the end) and the report: a
//! text table and a JSON document.

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::time::Duration;

/// The slowest latency recorded exactly, in microseconds (one hour); slower ones saturate.
const MAX_MICROS: u64 = 3_600_000_000;
/// How many error responses each scenario keeps for the report.
pub const ERROR_SAMPLES: usize = 3;

/// What one worker (or, merged, one scenario) saw.
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    errors: u64,
    samples: Vec<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder: latencies from 1 µs to one hour at 3 significant digits.
    pub fn new() -> Recorder {
        Recorder {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds: low 1, high > 2 × low, 3 significant digits"),
            errors: 0,
            samples: Vec::new(),
        }
    }

    /// Records a successful request's latency.
    pub fn ok(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(micros.max(1));
    }

    /// Records a failed request (a non-2xx status or a transport error) and keeps the first
    /// few descriptions.
    pub fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.samples.len() < ERROR_SAMPLES {
            self.samples.push(what());
        }
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        for s in &other.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }

    /// Successful requests.
    pub fn successes(&self) -> u64 {
        self.hist.len()
    }

    /// Failed requests.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The latency at quantile `q` (0..=1) of successful requests, in microseconds.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The slowest successful request, in microseconds.
    pub fn max_micros(&self) -> u64 {
        self.hist.max()
    }

    /// The mean latency of successful requests, in microseconds.
    pub fn mean_micros(&self) -> f64 {
        self.hist.mean()
    }

    /// The kept error descriptions.
    pub fn samples(&self) -> &[String] {
        &self.samples
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: String,
    /// What one request of it is, e.g. `GET /Users?startIndex=9901&count=100`.
    pub request: String,
    /// Latencies and errors.
    pub recorder: Recorder,
    /// The measured time: from the end of the warm-up to the last response.
    pub elapsed: Duration,
    /// Anything the reader must know (a pool ran dry, a scenario was skipped).
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.recorder.successes() as f64 / secs
        } else {
            0.0
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let r = &self.recorder;
        json!({
            "scenario": self.name,
            "request": self.request,
            "requests": r.successes() + r.errors(),
            "errors": r.errors(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rps": self.rate(),
            "latency_us": {
                "p50": r.quantile_micros(0.50),
                "p90": r.quantile_micros(0.90),
                "p99": r.quantile_micros(0.99),
                "max": r.max_micros(),
                "mean": r.mean_micros(),
            },
            "error_samples": r.samples(),
            "notes": self.notes,
        })
    }
}

/// A latency for humans: `0.18 ms`, `12.3 ms`, `1.20 s`.
pub fn format_micros(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// The report table, one line per scenario, then the notes and error samples.
pub fn table(reports: &[ScenarioReport]) -> String {
    let mut out = format!(
        "{:<18} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "scenario", "requests", "errors", "req/s", "p50", "p90", "p99", "max"
    );
    for rep in reports {
        let r = &rep.recorder;
        out.push_str(&format!(
            "{:<18} {:>9} {:>7} {:>10.1} {:>10} {:>10} {:>10} {:>10}\n",
            rep.name,
            r.successes() + r.errors(),
            r.errors(),
            rep.rate(),
            format_micros(r.quantile_micros(0.50)),
            format_micros(r.quantile_micros(0.90)),
            format_micros(r.quantile_micros(0.99)),
            format_micros(r.max_micros()),
        ));
    }
    for rep in reports {
        for note in &rep.notes {
            out.push_str(&format!("note: {}: {note}\n", rep.name));
        }
        for s in rep.recorder.samples() {
            out.push_str(&format!("error: {}: {s}\n", rep.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_successful_requests_only() {
        let mut r = Recorder::new();
        for ms in 1..=100u64 {
            r.ok(Duration::from_millis(ms));
        }
        r.error(|| "500 boom".into());
        assert_eq!(r.successes(), 100);
        assert_eq!(r.errors(), 1);
        // 3 significant digits: within 0.1 %.
        let p50 = r.quantile_micros(0.5);
        assert!((49_950..=50_050).contains(&p50), "{p50}");
        let p99 = r.quantile_micros(0.99);
        assert!((98_900..=99_100).contains(&p99), "{p99}");
        assert!((99_900..=100_100).contains(&r.max_micros()));
    }

    #[test]
    fn merging_adds_counts_and_keeps_few_error_samples() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.ok(Duration::from_micros(100));
        for i in 0..5 {
            b.ok(Duration::from_micros(300));
            b.error(|| format!("e{i}"));
        }
        a.merge(&b);
        assert_eq!(a.successes(), 6);
        assert_eq!(a.errors(), 5);
        assert_eq!(a.samples(), &["e0", "e1", "e2"]);
        assert_eq!(a.quantile_micros(0.1), 100);
        assert_eq!(a.quantile_micros(0.9), 300);
    }

    #[test]
    fn sub_microsecond_and_huge_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new();
        r.ok(Duration::from_nanos(10));
        r.ok(Duration::from_secs(10 * 3600));
        assert_eq!(r.successes(), 2);
        assert_eq!(r.quantile_micros(0.0), 1);
    }

    #[test]
    fn reports_rate_successes_over_elapsed_time_and_print_errors() {
        let mut r = Recorder::new();
        for _ in 0..50 {
            r.ok(Duration::from_micros(250));
        }
        r.error(|| "409 conflict".into());
        let rep = ScenarioReport {
            name: "get".into(),
            request: "GET /Users/{id}".into(),
            recorder: r,
            elapsed: Duration::from_millis(500),
            notes: vec!["a note".into()],
        };
        assert!((rep.rate() - 100.0).abs() < 1e-9);
        let text = table(std::slice::from_ref(&rep));
        assert!(text.lines().nth(1).unwrap().starts_with("get"));
        assert!(text.contains("error: get: 409 conflict"));
        assert!(text.contains("note: get: a note"));
        let j = rep.to_json();
        assert_eq!(j["requests"], 51);
        assert_eq!(j["errors"], 1);
        assert_eq!(j["latency_us"]["p50"], 250);
    }

    #[test]
    fn latencies_print_in_readable_units() {
        assert_eq!(format_micros(180), "0.18 ms");
        assert_eq!(format_micros(12_340), "12.3 ms");
        assert_eq!(format_micros(1_200_000), "1.20 s");
    }
}
