//! What every scenario returns ([`Outcome`]: its rows and its JSON details) and the line of the result
//! table it is made of ([`Row`]), with the two ways `bench/main.rs` prints rows: the table on stdout and the
//! `rows` array of the JSON.

use serde_json::{json, Value};

/// One line of the result table.
pub struct Row {
    /// The scenario's number; the harness sets it from the scenario list (`bench/scenario/mod.rs`).
    pub scenario: u8,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    /// (what, figure) measured in the same run.
    pub baseline: Option<(String, f64)>,
    pub target: String,
    /// None when the row has no target of its own.
    pub met: Option<bool>,
}

impl Row {
    /// A figure with no baseline and no target.
    pub fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            scenario: 0,
            metric: metric.into(),
            value,
            unit,
            baseline: None,
            target: String::new(),
            met: None,
        }
    }

    /// The same-run baseline: what it is and its figure.
    pub fn against(mut self, what: impl Into<String>, figure: f64) -> Row {
        self.baseline = Some((what.into(), figure));
        self
    }

    /// The target as the table shows it (may be empty) and whether this run met it.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .filter(|(_, b)| *b > 0.0)
            .map(|(_, b)| self.value / b)
    }

    /// The row as an element of the JSON's `rows`.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline.as_ref().map(|(w, v)| json!({"what": w, "value": v})),
            "ratio": self.ratio(),
            "target": self.target,
            "met": self.met,
        })
    }
}

/// What one scenario returns.
pub struct Outcome {
    /// Its lines of the result table.
    pub rows: Vec<Row>,
    /// Per-run figures for the JSON's `details`, under `{number}_{name}`.
    pub details: Value,
    /// The bridge's ingest rate: only scenario 1 sets it, and scenarios 6 and 8 are handed it.
    pub ingest_rate: Option<f64>,
}

impl Outcome {
    pub fn new(rows: Vec<Row>, details: Value) -> Outcome {
        Outcome {
            rows,
            details,
            ingest_rate: None,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

pub fn print_table(rows: &[Row]) {
    println!(
        "\n{:<2} {:<44} {:>12} {:<6} {:>12} {:<30} {:>7} {:<18} met",
        "#", "metric", "value", "unit", "baseline", "baseline is", "ratio", "target"
    );
    for r in rows {
        let (bw, bv) = r
            .baseline
            .as_ref()
            .map_or((String::new(), String::new()), |(w, v)| {
                (w.clone(), fmt_num(*v))
            });
        let ratio = r.ratio().map_or(String::new(), |x| format!("{x:.2}x"));
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<2} {:<44} {:>12} {:<6} {:>12} {:<30} {:>7} {:<18} {}",
            r.scenario,
            r.metric,
            fmt_num(r.value),
            r.unit,
            bv,
            bw,
            ratio,
            r.target,
            met
        );
    }
}
