//! Threshold expressions and the per-value colour state (hits and hysteresis).
//!
//! Fed by the config loader (`Cond::parse`, once) and by the rule instances (`ColourState::step`, per
//! sample). Decisions, following collectd's threshold plugin where it has an answer:
//! - Expressions: `> x`, `>= x`, `< x`, `<= x`, `== x`, `!= x`, `outside a..b` (v < a or v > b),
//!   `inside a..b` (a ≤ v ≤ b). Parsed once into `Cond`.
//! - Red is checked before yellow; a value matching neither is green.
//! - Hysteresis h: a colour already held stays while the value has not crossed back past the threshold
//!   by h (`> 32` with h = 0.5 stays red down to 31.5 exclusive, i.e. leaves at ≤ 31.5). It is applied to
//!   every threshold whose colour is at or below the current one, so red → yellow also uses it.
//!   `==`/`!=` hold while |v − x| ≤ h.
//! - Hits n: the shown colour changes only after n consecutive samples agree on the new colour (in both
//!   directions, so a recovery flapping around the threshold is damped too; collectd recovers at once,
//!   hysteresis is its tool for that). A new instance starts green (as collectd starts OKAY), so with
//!   `hits = 3` a single red sample at start-up does not turn the column red.

use crate::colour::Colour;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cond {
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Eq(f64),
    Ne(f64),
    Outside(f64, f64),
    Inside(f64, f64),
}

fn num(s: &str, whole: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{whole:?}: {:?} is not a number", s.trim()))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{whole:?}: the number must be finite"))
    }
}

impl Cond {
    pub fn parse(raw: &str) -> Result<Cond, String> {
        let s = raw.trim();
        let range = |rest: &str| -> Result<(f64, f64), String> {
            let (a, b) = rest
                .split_once("..")
                .ok_or_else(|| format!("{raw:?}: a range is written `LOW..HIGH`"))?;
            let (a, b) = (num(a, raw)?, num(b, raw)?);
            if a > b {
                return Err(format!("{raw:?}: the range is empty ({a} > {b})"));
            }
            Ok((a, b))
        };
        if let Some(rest) = s.strip_prefix("outside") {
            let (a, b) = range(rest)?;
            return Ok(Cond::Outside(a, b));
        }
        if let Some(rest) = s.strip_prefix("inside") {
            let (a, b) = range(rest)?;
            return Ok(Cond::Inside(a, b));
        }
        for (op, make) in [
            (">=", Cond::Ge as fn(f64) -> Cond),
            ("<=", Cond::Le),
            ("==", Cond::Eq),
            ("!=", Cond::Ne),
            (">", Cond::Gt),
            ("<", Cond::Lt),
        ] {
            if let Some(rest) = s.strip_prefix(op) {
                return Ok(make(num(rest, raw)?));
            }
        }
        Err(format!(
            "{raw:?} is not a threshold; write `> 28`, `>=`, `<`, `<=`, `==`, `!=`, `outside 5..35` or `inside 5..35`"
        ))
    }

    /// Whether `v` is in the condition; `hold` widens it by `h` (the colour is already held).
    pub fn holds(&self, v: f64, hold: bool, h: f64) -> bool {
        let h = if hold { h } else { 0.0 };
        match *self {
            Cond::Gt(x) => v > x - h,
            Cond::Ge(x) => v >= x - h,
            Cond::Lt(x) => v < x + h,
            Cond::Le(x) => v <= x + h,
            Cond::Eq(x) => (v - x).abs() <= h,
            Cond::Ne(x) => v != x,
            Cond::Outside(a, b) => v < a + h || v > b - h,
            Cond::Inside(a, b) => v >= a - h && v <= b + h,
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Gt(x) => write!(f, "> {x}"),
            Cond::Ge(x) => write!(f, ">= {x}"),
            Cond::Lt(x) => write!(f, "< {x}"),
            Cond::Le(x) => write!(f, "<= {x}"),
            Cond::Eq(x) => write!(f, "== {x}"),
            Cond::Ne(x) => write!(f, "!= {x}"),
            Cond::Outside(a, b) => write!(f, "outside {a}..{b}"),
            Cond::Inside(a, b) => write!(f, "inside {a}..{b}"),
        }
    }
}

/// The thresholds of one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub yellow: Option<Cond>,
    pub red: Option<Cond>,
    pub hits: u32,
    pub hysteresis: f64,
}

/// Why a value wants its colour: it is in that colour's condition, it is held there by hysteresis, or it
/// is in no condition (green).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Hit,
    Held,
    Ok,
}

impl Thresholds {
    /// The colour `v` calls for, given the colour currently held, and why (`explain` words it).
    pub fn judge(&self, v: f64, held: Colour) -> (Colour, Why) {
        for (colour, cond) in [(Colour::Red, self.red), (Colour::Yellow, self.yellow)] {
            let Some(cond) = cond else { continue };
            if cond.holds(v, false, 0.0) {
                return (colour, Why::Hit);
            }
            if held >= colour && self.hysteresis > 0.0 && cond.holds(v, true, self.hysteresis) {
                return (colour, Why::Held);
            }
        }
        (Colour::Green, Why::Ok)
    }

    /// The reason `judge`'s answer is shown with.
    pub fn explain(&self, colour: Colour, why: Why) -> String {
        let cond = match colour {
            Colour::Red => self.red,
            Colour::Yellow => self.yellow,
            _ => None,
        };
        match (why, cond) {
            (Why::Hit, Some(cond)) => format!("{colour}: {cond}"),
            (Why::Held, Some(cond)) => {
                format!("{colour}: {cond}, held by hysteresis {}", self.hysteresis)
            }
            _ => self.describe_ok(),
        }
    }

    fn describe_ok(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.yellow {
            parts.push(format!("yellow {c}"));
        }
        if let Some(c) = self.red {
            parts.push(format!("red {c}"));
        }
        if parts.is_empty() {
            "ok: no thresholds".into()
        } else {
            format!("ok: not {}", parts.join(", not "))
        }
    }
}

/// The colour shown for one value, and the streak of samples that want another.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourState {
    pub colour: Colour,
    pending: Option<(Colour, u32)>,
}

impl Default for ColourState {
    fn default() -> Self {
        ColourState {
            colour: Colour::Green,
            pending: None,
        }
    }
}

/// The outcome of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub colour: Colour,
    pub reason: String,
}

/// The outcome of one sample without the words, as the rule state keeps it: it shows the reason only
/// in the statuses it sends (`reason`). Rebuilt from a `ColourState` and the sample's `Why`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The colour shown.
    pub colour: Colour,
    /// The colour the sample called for, and why.
    want: Colour,
    why: Why,
    /// Samples so far that agree on `want` when it is not shown yet (`hits`).
    streak: Option<u32>,
}

impl Step {
    /// The reason shown with `colour`, for the value's thresholds `t`.
    pub fn reason(&self, t: &Thresholds) -> String {
        let why = t.explain(self.want, self.why);
        match self.streak {
            None => why,
            Some(n) => format!("{why}; {n} of {} samples, still {}", t.hits, self.colour),
        }
    }
}

impl ColourState {
    pub fn step(&mut self, t: &Thresholds, v: f64) -> Verdict {
        let why = self.advance(t, v);
        let s = self.last_step(why);
        Verdict {
            colour: s.colour,
            reason: s.reason(t),
        }
    }

    /// Takes one sample without writing the reason; returns why its colour was wanted.
    pub fn advance(&mut self, t: &Thresholds, v: f64) -> Why {
        let (want, why) = t.judge(v, self.colour);
        if want == self.colour {
            self.pending = None;
            return why;
        }
        let n = match self.pending {
            Some((c, n)) if c == want => n + 1,
            _ => 1,
        };
        if n >= t.hits.max(1) {
            self.colour = want;
            self.pending = None;
        } else {
            self.pending = Some((want, n));
        }
        why
    }

    /// The step that left the state as it is, the sample's colour having been wanted for `why`.
    pub fn last_step(&self, why: Why) -> Step {
        Step {
            colour: self.colour,
            want: self.pending.map_or(self.colour, |(c, _)| c),
            why,
            streak: self.pending.map(|(_, n)| n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Colour::*;

    #[test]
    fn parse_table() {
        for (raw, want) in [
            ("> 28", Some(Cond::Gt(28.0))),
            (">28", Some(Cond::Gt(28.0))),
            (">= -5.5", Some(Cond::Ge(-5.5))),
            ("< 0", Some(Cond::Lt(0.0))),
            ("<= 1e3", Some(Cond::Le(1000.0))),
            ("== 0", Some(Cond::Eq(0.0))),
            ("!= 1", Some(Cond::Ne(1.0))),
            ("outside 5..35", Some(Cond::Outside(5.0, 35.0))),
            ("inside -1..1", Some(Cond::Inside(-1.0, 1.0))),
            ("outside 35..5", None),
            ("outside 5", None),
            ("> x", None),
            ("28", None),
            ("=> 3", None),
            ("> inf", None),
            ("", None),
        ] {
            assert_eq!(Cond::parse(raw).ok(), want, "{raw:?}");
        }
        assert_eq!(
            Cond::parse("outside 5..35").unwrap().to_string(),
            "outside 5..35"
        );
    }

    #[test]
    fn holds_table() {
        for (cond, v, hold, h, want) in [
            ("> 32", 32.0, false, 0.5, false),
            ("> 32", 32.1, false, 0.5, true),
            ("> 32", 31.6, true, 0.5, true),
            ("> 32", 31.5, true, 0.5, false),
            ("< 5", 5.4, true, 0.5, true),
            ("< 5", 5.5, true, 0.5, false),
            ("outside 5..35", 4.0, false, 0.0, true),
            ("outside 5..35", 36.0, false, 0.0, true),
            ("outside 5..35", 20.0, false, 0.0, false),
            ("outside 5..35", 34.6, true, 0.5, true),
            ("inside 5..35", 5.0, false, 0.0, true),
            ("inside 5..35", 4.6, true, 0.5, true),
            ("== 0", 0.0, false, 0.0, true),
            ("== 0", 0.4, true, 0.5, true),
            ("!= 1", 0.0, false, 0.0, true),
            ("!= 1", 1.0, false, 0.0, false),
        ] {
            assert_eq!(
                Cond::parse(cond).unwrap().holds(v, hold, h),
                want,
                "{cond} {v} hold={hold}"
            );
        }
    }

    /// Sequences of samples and the colours shown, as a collectd user would expect them.
    #[test]
    fn hits_and_hysteresis() {
        let t = |hits, hysteresis| Thresholds {
            yellow: Some(Cond::Gt(28.0)),
            red: Some(Cond::Gt(32.0)),
            hits,
            hysteresis,
        };
        struct Case {
            name: &'static str,
            t: Thresholds,
            samples: &'static [f64],
            want: &'static [Colour],
        }
        let cases = [
            Case {
                name: "plain",
                t: t(1, 0.0),
                samples: &[20.0, 29.0, 33.0, 29.0, 20.0],
                want: &[Green, Yellow, Red, Yellow, Green],
            },
            Case {
                name: "hits 3: a spike does not count",
                t: t(3, 0.0),
                samples: &[33.0, 20.0, 33.0, 33.0, 33.0, 33.0],
                want: &[Green, Green, Green, Green, Red, Red],
            },
            Case {
                name: "hits 3: the streak must agree on one colour",
                t: t(3, 0.0),
                samples: &[29.0, 33.0, 29.0, 29.0, 29.0],
                want: &[Green, Green, Green, Green, Yellow],
            },
            Case {
                name: "hits 2 also on recovery",
                t: t(2, 0.0),
                samples: &[33.0, 33.0, 20.0, 20.0],
                want: &[Green, Red, Red, Green],
            },
            Case {
                name: "hysteresis holds red just below",
                t: t(1, 0.5),
                samples: &[33.0, 31.8, 31.5, 28.0, 27.6, 27.5],
                want: &[Red, Red, Yellow, Yellow, Yellow, Green],
            },
            Case {
                name: "hysteresis does not help to enter",
                t: t(1, 0.5),
                samples: &[31.9, 32.0],
                want: &[Yellow, Yellow],
            },
        ];
        for c in cases {
            let mut s = ColourState::default();
            let got: Vec<Colour> = c.samples.iter().map(|v| s.step(&c.t, *v).colour).collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn reasons() {
        let t = Thresholds {
            yellow: Some(Cond::Gt(28.0)),
            red: Some(Cond::Gt(32.0)),
            hits: 3,
            hysteresis: 0.5,
        };
        let mut s = ColourState::default();
        assert_eq!(s.step(&t, 20.0).reason, "ok: not yellow > 28, not red > 32");
        assert_eq!(
            s.step(&t, 33.0).reason,
            "red: > 32; 1 of 3 samples, still green"
        );
    }
}
