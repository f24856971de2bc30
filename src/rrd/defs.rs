//! RRD layouts (step, DS list, RRAs) loaded from `rrd-defs/*.toml`.
//!
//! Fed by the repo's `rrd-defs/` files, embedded at compile time as the built-in set, and
//! optionally by an override directory named in the daemon config. Read by the writer, which
//! creates files from a definition and compares existing files against it. One file per RRD
//! kind; the file stem is the definition name and the `.rrd` file stem, e.g.
//! `mqtt.broker.message.toml` → `<rrd_dir>/<host>/mqtt.broker.message.rrd`.
//!
//! ```toml
//! step = 300
//! ds = ["DS:Rcv:DERIVE:600:0:U", "DS:Xmt:DERIVE:600:0:U"]
//! rra = ["RRA:AVERAGE:0.5:1:576", "RRA:AVERAGE:0.5:6:576"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::RrdError;

/// The repo's `rrd-defs/` files, compiled in so the binary works wherever it is installed.
/// A unit test checks that every file in `rrd-defs/` is listed here.
const BUILTIN: &[(&str, &str)] = &[
    (
        "mqtt.broker.message.toml",
        include_str!("../../rrd-defs/mqtt.broker.message.toml"),
    ),
    (
        "mqtt.broker.octet.toml",
        include_str!("../../rrd-defs/mqtt.broker.octet.toml"),
    ),
    ("value.toml", include_str!("../../rrd-defs/value.toml")),
];

/// Data source type (`DS:name:TYPE:...`). `COMPUTE` is not supported: every DS gets a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsKind {
    Gauge,
    Counter,
    Derive,
    Absolute,
    DCounter,
    DDerive,
}

impl DsKind {
    /// The name librrd uses (and `rrdtool info` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            DsKind::Gauge => "GAUGE",
            DsKind::Counter => "COUNTER",
            DsKind::Derive => "DERIVE",
            DsKind::Absolute => "ABSOLUTE",
            DsKind::DCounter => "DCOUNTER",
            DsKind::DDerive => "DDERIVE",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GAUGE" => DsKind::Gauge,
            "COUNTER" => DsKind::Counter,
            "DERIVE" => DsKind::Derive,
            "ABSOLUTE" => DsKind::Absolute,
            "DCOUNTER" => DsKind::DCounter,
            "DDERIVE" => DsKind::DDerive,
            _ => return None,
        })
    }

    /// The `rrd` crate takes integer min/max for these types.
    pub(crate) fn integer_limits(self) -> bool {
        matches!(self, DsKind::Counter | DsKind::Derive | DsKind::Absolute)
    }
}

/// One `DS:name:TYPE:heartbeat:min:max` line; `None` limits are `U`.
#[derive(Debug, Clone, PartialEq)]
pub struct DsDef {
    pub name: String,
    pub kind: DsKind,
    pub heartbeat: u32,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Consolidation function of an RRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Average,
    Min,
    Max,
    Last,
}

impl Cf {
    /// The name librrd uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Cf::Average => "AVERAGE",
            Cf::Min => "MIN",
            Cf::Max => "MAX",
            Cf::Last => "LAST",
        }
    }

    pub(crate) fn to_rrd(self) -> rrd::ConsolidationFn {
        match self {
            Cf::Average => rrd::ConsolidationFn::Avg,
            Cf::Min => rrd::ConsolidationFn::Min,
            Cf::Max => rrd::ConsolidationFn::Max,
            Cf::Last => rrd::ConsolidationFn::Last,
        }
    }
}

/// One `RRA:CF:xff:steps:rows` line.
#[derive(Debug, Clone, PartialEq)]
pub struct RraDef {
    pub cf: Cf,
    pub xff: f64,
    pub steps: u32,
    pub rows: u32,
}

/// A validated RRD layout.
#[derive(Debug, Clone, PartialEq)]
pub struct RrdDef {
    /// Definition name = `.rrd` file stem, e.g. `mqtt.broker.message`.
    pub name: String,
    /// Base step in seconds.
    pub step: u32,
    pub ds: Vec<DsDef>,
    pub rra: Vec<RraDef>,
}

/// The set of known RRD layouts, keyed by name.
#[derive(Debug, Clone, Default)]
pub struct RrdDefs {
    defs: BTreeMap<String, RrdDef>,
    /// The layout of names with no definition of their own (discovered entities, whose file names are
    /// known only at run time); none: such a name is an error.
    fallback: Option<RrdDef>,
}

/// On-disk form; everything is validated into [`RrdDef`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefFile {
    step: u32,
    ds: Vec<String>,
    rra: Vec<String>,
}

impl RrdDefs {
    /// The definitions compiled in from the repo's `rrd-defs/`.
    ///
    /// # Errors
    /// Only if a built-in file is invalid, which the unit tests rule out.
    pub fn load_builtin() -> Result<RrdDefs, RrdError> {
        let mut defs = RrdDefs::default();
        for (file, text) in BUILTIN {
            defs.insert(parse_def(file, text)?);
        }
        Ok(defs)
    }

    /// Every `*.toml` file in `dir` (other files are ignored), validated like the built-ins.
    ///
    /// # Errors
    /// The directory is missing or unreadable, holds no `*.toml`, or a file is invalid
    /// (the error names the file).
    pub fn load_dir(dir: &Path) -> Result<RrdDefs, RrdError> {
        let io = |source| RrdError::Io {
            path: dir.to_path_buf(),
            source,
        };
        if !dir.exists() {
            return Err(RrdError::Missing {
                what: "rrd-defs directory",
                path: dir.to_path_buf(),
            });
        }
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(RrdError::DefInvalid {
                file: dir.display().to_string(),
                message: "no *.toml files".into(),
            });
        }
        let mut defs = RrdDefs::default();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| RrdError::Io {
                path: path.clone(),
                source,
            })?;
            defs.insert(parse_def(&path.display().to_string(), &text)?);
        }
        Ok(defs)
    }

    /// Built-ins, then `dir`'s definitions replacing or adding by name.
    ///
    /// # Errors
    /// As [`RrdDefs::load_dir`].
    pub fn load_with_overrides(dir: Option<&Path>) -> Result<RrdDefs, RrdError> {
        let mut defs = Self::load_builtin()?;
        if let Some(dir) = dir {
            for def in Self::load_dir(dir)?.defs.into_values() {
                defs.insert(def);
            }
        }
        Ok(defs)
    }

    /// The definition named `name` (the `.rrd` file stem).
    pub fn get(&self, name: &str) -> Option<&RrdDef> {
        self.defs.get(name).or(self.fallback.as_ref())
    }

    /// Makes `from` the layout of every name without a definition. False when `from` is unknown.
    pub fn fallback_to(&mut self, from: &str) -> bool {
        self.fallback = self.defs.get(from).cloned();
        self.fallback.is_some()
    }

    /// Names of all definitions, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    fn insert(&mut self, def: RrdDef) {
        self.defs.insert(def.name.clone(), def);
    }

    /// Adds a definition `name` with the layout of `from` (rule tests: `<test>.<value>` files use the
    /// `value` GAUGE layout). False when `from` is unknown. An existing `name` (an override) is kept.
    pub fn alias(&mut self, name: &str, from: &str) -> bool {
        let Some(def) = self.defs.get(from).cloned() else {
            return false;
        };
        self.defs.entry(name.to_string()).or_insert(RrdDef {
            name: name.to_string(),
            ..def
        });
        true
    }
}

/// Parses and validates one definition file; `file` is used for the name and in errors.
fn parse_def(file: &str, text: &str) -> Result<RrdDef, RrdError> {
    let invalid = |message: String| RrdError::DefInvalid {
        file: file.to_string(),
        message,
    };
    let base = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    let name = base.strip_suffix(".toml").unwrap_or(base).to_string();
    super::validate_name(&name)
        .map_err(|_| invalid(format!("file name {name:?} is not a valid rrd name")))?;
    let raw: DefFile = toml::from_str(text).map_err(|e| RrdError::DefParse {
        file: file.to_string(),
        message: e.message().to_string(),
    })?;
    if raw.step == 0 {
        return Err(invalid("step must be > 0".into()));
    }
    if raw.ds.is_empty() || raw.rra.is_empty() {
        return Err(invalid("needs at least one ds and one rra".into()));
    }
    let ds = raw
        .ds
        .iter()
        .map(|l| parse_ds(l).map_err(|m| invalid(format!("{l:?}: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, d) in ds.iter().enumerate() {
        if ds[..i].iter().any(|o| o.name == d.name) {
            return Err(invalid(format!("duplicate DS name {:?}", d.name)));
        }
    }
    let rra = raw
        .rra
        .iter()
        .map(|l| parse_rra(l).map_err(|m| invalid(format!("{l:?}: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RrdDef {
        name,
        step: raw.step,
        ds,
        rra,
    })
}

fn parse_u32_pos(s: &str, what: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} must be a positive integer, got {s:?}")),
    }
}

fn parse_limit(s: &str, kind: DsKind, what: &str) -> Result<Option<f64>, String> {
    if s == "U" {
        return Ok(None);
    }
    if kind.integer_limits() {
        return s.parse::<u64>().map(|n| Some(n as f64)).map_err(|_| {
            format!(
                "{what} of a {} DS must be U or an integer >= 0",
                kind.as_str()
            )
        });
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("{what} must be U or a number, got {s:?}")),
    }
}

/// `DS:name:TYPE:heartbeat:min:max`, name `[A-Za-z0-9_]{1,19}` as rrdtool requires.
fn parse_ds(line: &str) -> Result<DsDef, String> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 6 || f[0] != "DS" {
        return Err("expected DS:name:TYPE:heartbeat:min:max".into());
    }
    let name = f[1];
    if name.is_empty()
        || name.len() > 19
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("DS name {name:?} must be 1-19 of [A-Za-z0-9_]"));
    }
    let kind = DsKind::parse(f[2]).ok_or_else(|| {
        format!(
            "DS type {:?} is not GAUGE, COUNTER, DERIVE, ABSOLUTE, DCOUNTER or DDERIVE",
            f[2]
        )
    })?;
    let heartbeat = parse_u32_pos(f[3], "heartbeat")?;
    let min = parse_limit(f[4], kind, "min")?;
    let max = parse_limit(f[5], kind, "max")?;
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo >= hi {
            return Err("min must be below max".into());
        }
    }
    Ok(DsDef {
        name: name.to_string(),
        kind,
        heartbeat,
        min,
        max,
    })
}

/// `RRA:CF:xff:steps:rows` with xff in [0, 1).
fn parse_rra(line: &str) -> Result<RraDef, String> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 5 || f[0] != "RRA" {
        return Err("expected RRA:CF:xff:steps:rows".into());
    }
    let cf = match f[1] {
        "AVERAGE" => Cf::Average,
        "MIN" => Cf::Min,
        "MAX" => Cf::Max,
        "LAST" => Cf::Last,
        other => return Err(format!("CF {other:?} is not AVERAGE, MIN, MAX or LAST")),
    };
    let xff = match f[2].parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => x,
        _ => return Err(format!("xff must be a number in [0, 1), got {:?}", f[2])),
    };
    Ok(RraDef {
        cf,
        xff,
        steps: parse_u32_pos(f[3], "steps")?,
        rows: parse_u32_pos(f[4], "rows")?,
    })
}

#[cfg(test)]
mod tests;
