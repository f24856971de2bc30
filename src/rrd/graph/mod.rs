//! graphs.cfg-format graph definitions, rendered to PNG by an `rrdtool graph` child.
//!
//! Fed by the repo's `graphs.d/*.cfg` (the same files Xymon's showgraph.cgi uses, so one
//! definition serves both). Read by the dashboard, which awaits [`render_graph`]. Lines are parsed
//! the way showgraph does (§5.1): `[name]` starts a graph, `TITLE`/`YAXIS` are keywords, every
//! other line is one rrdgraph argument; this renderer maps the arguments it supports (DEF, CDEF,
//! VDEF, LINEn, AREA, GPRINT, COMMENT, `-l N`, `-u N`, `--rigid`) onto the `rrd` crate's graph
//! types and rejects the rest with the file and line. Relative DEF files resolve against
//! `<rrd_dir>/<host>/`.
//!
//! This file holds the types and the parser; `render` maps a definition onto `rrdtool graph`
//! arguments and runs the child.

mod render;

pub use render::render_graph;

use std::path::Path;

use rrd::ops::graph::elements::VarName;
use rrd::ops::graph::Color;

use super::defs::Cf;
use super::RrdError;

/// The four periods of Xymon's graphs (one per default RRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphPeriod {
    Hours48,
    Days12,
    Days48,
    Days576,
}

impl GraphPeriod {
    /// Length in seconds.
    pub fn seconds(self) -> u64 {
        let day = 86_400;
        match self {
            GraphPeriod::Hours48 => 2 * day,
            GraphPeriod::Days12 => 12 * day,
            GraphPeriod::Days48 => 48 * day,
            GraphPeriod::Days576 => 576 * day,
        }
    }

    /// showgraph's title suffix.
    pub fn label(self) -> &'static str {
        match self {
            GraphPeriod::Hours48 => "Last 48 Hours",
            GraphPeriod::Days12 => "Last 12 Days",
            GraphPeriod::Days48 => "Last 48 Days",
            GraphPeriod::Days576 => "Last 576 Days",
        }
    }
}

/// One drawing/data argument, with DEF files kept relative until rendering.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Def {
        vname: String,
        file: String,
        ds: String,
        cf: Cf,
    },
    CDef(String, String),
    VDef(String, String),
    Line {
        width: f64,
        vname: String,
        color: Option<Color>,
        legend: Option<String>,
        stack: bool,
    },
    Area {
        vname: String,
        color: Option<Color>,
        legend: Option<String>,
        stack: bool,
    },
    GPrint(String, String),
    Comment(String),
}

/// One `[name]` section of a graphs.cfg file.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphDef {
    /// Section name = showgraph `service=`.
    pub name: String,
    /// TITLE text, trailing spaces kept (they separate it from the period in the title).
    pub title: String,
    /// YAXIS text (vertical label).
    pub yaxis: Option<String>,
    /// The pass-through lines as written (one rrdgraph argument each).
    pub args: Vec<String>,
    items: Vec<Item>,
    lower_limit: Option<f64>,
    upper_limit: Option<f64>,
    rigid: bool,
}

/// Parses a graphs.cfg-format text; `file` names it in errors.
///
/// # Errors
/// [`RrdError::GraphParse`] with file and line for anything this renderer cannot draw.
pub fn parse_graphs_cfg(file: &str, text: &str) -> Result<Vec<GraphDef>, RrdError> {
    let mut out: Vec<GraphDef> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| RrdError::GraphParse {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let line = raw.trim_start();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.trim_end().strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| err("section header without ]".into()))?;
            out.push(GraphDef {
                name: name.to_string(),
                title: String::new(),
                yaxis: None,
                args: Vec::new(),
                items: Vec::new(),
                lower_limit: None,
                upper_limit: None,
                rigid: false,
            });
            continue;
        }
        let g = out
            .last_mut()
            .ok_or_else(|| err("line before the first [section]".into()))?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("TITLE") {
            g.title = line[5..].trim_start().to_string();
            if g.title.starts_with("exec:") {
                return Err(err("TITLE exec: is not supported".into()));
            }
        } else if upper.starts_with("YAXIS") {
            g.yaxis = Some(line[5..].trim().to_string());
        } else if ["FNPATTERN", "EXFNPATTERN", "NOVZOOM", "GRAPHOPTIONS"]
            .iter()
            .any(|k| upper.starts_with(k))
        {
            return Err(err(format!("{line:?} is not supported by this renderer")));
        } else {
            parse_arg(g, line.trim_end_matches(['\r', '\n'])).map_err(err)?;
            g.args.push(line.to_string());
        }
    }
    for g in &out {
        if !g.items.iter().any(|i| matches!(i, Item::Def { .. })) {
            return Err(RrdError::GraphParse {
                file: file.to_string(),
                line: 0,
                message: format!("[{}] has no DEF", g.name),
            });
        }
    }
    Ok(out)
}

/// Reads and parses a graphs.cfg-format file.
///
/// # Errors
/// I/O errors, or as [`parse_graphs_cfg`].
pub fn load_graphs_file(path: &Path) -> Result<Vec<GraphDef>, RrdError> {
    let text = std::fs::read_to_string(path).map_err(|source| RrdError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_graphs_cfg(&path.display().to_string(), &text)
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))
}

/// Splits on `:` not preceded by a backslash; unescapes `\:` in the parts.
fn split_colons(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&':') => {
                chars.next();
                cur.push(':');
            }
            ':' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn vname_color(s: &str) -> Result<(String, Option<Color>), String> {
    let (v, c) = match s.split_once('#') {
        Some((v, c)) => (
            v,
            Some(
                format!("#{c}")
                    .parse::<Color>()
                    .map_err(|_| format!("bad color #{c}"))?,
            ),
        ),
        None => (s, None),
    };
    VarName::new(v).map_err(|_| format!("bad variable name {v:?}"))?;
    Ok((v.to_string(), c))
}

/// LINEn / AREA: `vname[#color[:legend]][:STACK]`.
fn parse_draw(rest: &str) -> Result<(String, Option<Color>, Option<String>, bool), String> {
    let mut parts = split_colons(rest);
    let stack = parts.last().is_some_and(|p| p == "STACK");
    if stack {
        parts.pop();
    }
    if parts.len() > 2 {
        return Err("only vname#color:legend[:STACK] is supported".into());
    }
    let (vname, color) = vname_color(&parts[0])?;
    let legend = parts.get(1).cloned();
    if let Some(l) = &legend {
        if l.contains('\\') {
            return Err("escapes other than \\: are not supported in legends".into());
        }
        if color.is_none() {
            return Err("a legend needs a color".into());
        }
    }
    Ok((vname, color, legend, stack))
}

fn assignment(rest: &str) -> Result<(String, String), String> {
    let (v, rhs) = rest.split_once('=').ok_or("expected vname=...")?;
    VarName::new(v).map_err(|_| format!("bad variable name {v:?}"))?;
    Ok((v.to_string(), rhs.to_string()))
}

fn parse_arg(g: &mut GraphDef, line: &str) -> Result<(), String> {
    let item = if let Some(rest) = line.strip_prefix("DEF:") {
        let (vname, rhs) = assignment(rest)?;
        let f: Vec<&str> = rhs.split(':').collect();
        let [file, ds, cf] = f[..] else {
            return Err("expected DEF:vname=file.rrd:DS:CF".into());
        };
        let cf = match cf {
            "AVERAGE" => Cf::Average,
            "MIN" => Cf::Min,
            "MAX" => Cf::Max,
            "LAST" => Cf::Last,
            _ => return Err(format!("bad CF {cf:?}")),
        };
        Item::Def {
            vname,
            file: file.to_string(),
            ds: ds.to_string(),
            cf,
        }
    } else if let Some(rest) = line.strip_prefix("CDEF:") {
        let (v, rpn) = assignment(rest)?;
        Item::CDef(v, rpn)
    } else if let Some(rest) = line.strip_prefix("VDEF:") {
        let (v, rpn) = assignment(rest)?;
        Item::VDef(v, rpn)
    } else if let Some(rest) = line.strip_prefix("LINE") {
        let (w, rest) = rest.split_once(':').ok_or("expected LINEn:vname...")?;
        let width = number(w).map_err(|e| format!("line width: {e}"))?;
        let (vname, color, legend, stack) = parse_draw(rest)?;
        Item::Line {
            width,
            vname,
            color,
            legend,
            stack,
        }
    } else if let Some(rest) = line.strip_prefix("AREA:") {
        let (vname, color, legend, stack) = parse_draw(rest)?;
        Item::Area {
            vname,
            color,
            legend,
            stack,
        }
    } else if let Some(rest) = line.strip_prefix("GPRINT:") {
        let (v, format) = rest.split_once(':').ok_or("expected GPRINT:vname:format")?;
        VarName::new(v).map_err(|_| format!("bad variable name {v:?}"))?;
        Item::GPrint(v.to_string(), format.to_string())
    } else if let Some(rest) = line.strip_prefix("COMMENT:") {
        let parts = split_colons(rest);
        if parts.len() != 1 || rest.replace("\\:", "").contains('\\') {
            return Err("only plain COMMENT text (with \\:) is supported".into());
        }
        Item::Comment(parts.concat())
    } else if let Some(v) = line.strip_prefix("-l") {
        g.lower_limit = Some(number(v)?);
        return Ok(());
    } else if let Some(v) = line.strip_prefix("-u") {
        g.upper_limit = Some(number(v)?);
        return Ok(());
    } else if line.trim() == "--rigid" || line.trim() == "-r" {
        g.rigid = true;
        return Ok(());
    } else {
        return Err(format!("{line:?} is not supported by this renderer"));
    };
    g.items.push(item);
    Ok(())
}

#[cfg(test)]
mod tests;
