//! graphs.cfg-format graph definitions, rendered to PNG by an `rrdtool graph` child.
//!
//! Fed by the repo's `graphs.d/*.cfg` (the same files Xymon's showgraph.cgi uses, so one
//! definition serves both). Read by the dashboard, which awaits [`render_graph`]. Lines are parsed the way showgraph does (§5.1): `[name]`
//! starts a graph, `TITLE`/`YAXIS` are keywords, every other line is one rrdgraph argument;
//! this renderer maps the arguments it supports (DEF, CDEF, VDEF, LINEn, AREA, GPRINT,
//! COMMENT, `-l N`, `-u N`, `--rigid`) onto the `rrd` crate's graph types and rejects the
//! rest with the file and line. Relative DEF files resolve against `<rrd_dir>/<host>/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rrd::ops::graph::elements::{
    self as el, AreaColor, ColorWithLegend, GraphElement, Legend, VarName,
};
use rrd::ops::graph::props::{GraphProps, ImageFormat, Labels, Limits, Size, TimeRange};
use rrd::ops::graph::Color;

use super::defs::Cf;
use super::{validate_host, RrdError};

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

fn to_elements(g: &GraphDef, host_dir: &Path) -> Result<Vec<GraphElement>, RrdError> {
    let bad = |m: String| RrdError::GraphParse {
        file: g.name.clone(),
        line: 0,
        message: m,
    };
    let vn = |v: &str| VarName::new(v).map_err(|e| bad(e.to_string()));
    let legend = |c: Option<Color>, l: &Option<String>| {
        c.map(|color| ColorWithLegend {
            color,
            legend: l.as_ref().map(Legend::new),
        })
    };
    g.items
        .iter()
        .map(|item| {
            Ok(match item {
                Item::Def {
                    vname,
                    file,
                    ds,
                    cf,
                } => {
                    let path: PathBuf = host_dir.join(file);
                    if path.to_string_lossy().contains(':') {
                        return Err(bad(format!("DEF file {} contains ':'", path.display())));
                    }
                    el::Def {
                        var_name: vn(vname)?,
                        rrd: path,
                        ds_name: ds.clone(),
                        consolidation_fn: cf.to_rrd(),
                        step: None,
                        start: None,
                        end: None,
                        reduce: None,
                    }
                    .into()
                }
                Item::CDef(v, rpn) => el::CDef {
                    var_name: vn(v)?,
                    rpn: rpn.clone(),
                }
                .into(),
                Item::VDef(v, rpn) => el::VDef {
                    var_name: vn(v)?,
                    rpn: rpn.clone(),
                }
                .into(),
                Item::Line {
                    width,
                    vname,
                    color,
                    legend: l,
                    stack,
                } => el::Line {
                    width: *width,
                    value: vn(vname)?,
                    color: legend(*color, l),
                    stack: *stack,
                    skip_scale: false,
                    dashes: None,
                }
                .into(),
                Item::Area {
                    vname,
                    color,
                    legend: l,
                    stack,
                } => el::Area {
                    value: vn(vname)?,
                    color: color.map(|c| ColorWithLegend {
                        color: AreaColor::Color(c),
                        legend: l.as_ref().map(Legend::new),
                    }),
                    stack: *stack,
                    skip_scale: false,
                }
                .into(),
                Item::GPrint(v, format) => el::GPrint {
                    var_name: vn(v)?,
                    format: format.clone(),
                }
                .into(),
                Item::Comment(text) => el::Comment { text: text.clone() }.into(),
            })
        })
        .collect()
}

/// How long an `rrdtool graph` child may take before it is killed. One graph reads one to a few RRD
/// files of about 100 kB; it takes milliseconds unless the disk stalls.
const RRDTOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// The program that draws: Debian's `rrdtool`, found on `PATH` (`/usr/bin/rrdtool`).
const RRDTOOL: &str = "rrdtool";

/// Renders `graph` for `host` over `period` ending now, as a PNG of `width`×`height` graph
/// pixels. The title is `"<host> <TITLE> <period label>"`, like showgraph's.
///
/// Drawn by an `rrdtool graph` child, as Xymon draws in showgraph.cgi: the daemon links only librrd's
/// create/update code (see build.rs), never its cairo/pango graph stack, and a graph that hangs or
/// crashes costs a child process, not the daemon. The child is killed after [`RRDTOOL_TIMEOUT`] or when
/// the returned future is dropped.
///
/// # Errors
/// Invalid host, an unsupported definition, rrdtool's error (e.g. a missing file), or rrdtool missing
/// or timing out.
pub async fn render_graph(
    rrd_dir: &Path,
    host: &str,
    graph: &GraphDef,
    period: GraphPeriod,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, RrdError> {
    validate_host(host)?;
    let args = graph_args(
        graph,
        rrd_dir,
        host,
        period,
        width,
        height,
        SystemTime::now(),
    )?;
    let child = tokio::process::Command::new(RRDTOOL)
        .args(["graph", "-"])
        .args(&args)
        // C number and time formats whatever the daemon's LANG, as in-process librrd had; UTF-8 so that a
        // label such as "°C" survives librrd's conversion of text to the locale.
        .env("LC_ALL", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            RrdError::RrdtoolRun(format!(
                "cannot run {RRDTOOL} (Debian package rrdtool): {e}"
            ))
        })?;
    let out = tokio::time::timeout(RRDTOOL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| RrdError::RrdtoolRun(format!("no graph after {RRDTOOL_TIMEOUT:?}; killed")))?
        .map_err(|e| RrdError::RrdtoolRun(e.to_string()))?;
    if out.status.code().is_none() {
        // Killed by a signal (out of memory, a crash): the server's trouble, not the request's.
        return Err(RrdError::RrdtoolRun(format!("rrdtool {}", out.status)));
    }
    if !out.status.success() || !out.stdout.starts_with(b"\x89PNG") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr.trim().trim_start_matches("ERROR: ");
        return Err(RrdError::Rrdtool {
            path: rrd_dir.join(host),
            message: if message.is_empty() {
                format!("{} without a PNG", out.status)
            } else {
                message.chars().take(500).collect()
            },
        });
    }
    Ok(out.stdout)
}

/// The arguments after `rrdtool graph -`, built by the `rrd` crate from the definition; relative DEF
/// files are in `<rrd_dir>/<host>/`.
fn graph_args(
    graph: &GraphDef,
    rrd_dir: &Path,
    host: &str,
    period: GraphPeriod,
    width: u32,
    height: u32,
    end: SystemTime,
) -> Result<Vec<String>, RrdError> {
    let host_dir = rrd_dir.join(host);
    let elements = to_elements(graph, &host_dir)?;
    let props = GraphProps {
        time_range: TimeRange {
            start: Some(end - Duration::from_secs(period.seconds())),
            end: Some(end),
            step_seconds: None,
        },
        labels: Labels {
            title: Some(format!("{host} {} {}", graph.title, period.label())),
            vertical_label: graph.yaxis.clone(),
        },
        size: Size {
            width: Some(width),
            height: Some(height),
            ..Size::default()
        },
        limits: Limits {
            lower_limit: graph.lower_limit,
            upper_limit: graph.upper_limit,
            rigid: graph.rigid,
            ..Limits::default()
        },
        ..GraphProps::default()
    };
    rrd::ops::graph::graph_args(Some(ImageFormat::Png), &props, &elements).map_err(|source| {
        RrdError::Librrd {
            op: "graph arguments",
            path: host_dir.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_graphs_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs.d/mqtt.cfg");
        let graphs = load_graphs_file(&path).unwrap();
        let names: Vec<_> = graphs.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["mqtttm", "mqttto", "mqtt"]);
        for g in &graphs {
            assert!(
                g.title.ends_with("  ") && !g.title.ends_with("   "),
                "{:?}",
                g.title
            );
            assert_eq!(g.lower_limit, Some(0.0));
        }
        let tm = &graphs[0];
        assert_eq!(tm.yaxis.as_deref(), Some("Throughput [p/s]"));
        assert!(tm.items.contains(&Item::Def {
            vname: "mr".into(),
            file: "mqtt.broker.message.rrd".into(),
            ds: "Rcv".into(),
            cf: Cf::Average
        }));
        let to = &graphs[1];
        assert!(to.items.contains(&Item::CDef("br".into(), "or,8,*".into())));
        // MIN/MAX/AVG/CUR for ingress and egress in both detailed graphs.
        for g in &graphs[..2] {
            for cf in ["MIN", "MAX", "AVERAGE", "LAST"] {
                let n = g
                    .items
                    .iter()
                    .filter(|i| matches!(i, Item::GPrint(_, f) if f.starts_with(&format!("{cf}:"))))
                    .count();
                assert_eq!(n, 2, "{} {cf}", g.name);
            }
        }
    }

    #[test]
    fn rrdtool_arguments_name_the_host_files_period_and_size() {
        let g = &parse_graphs_cfg(
            "t.cfg",
            "[g]\n\tTITLE Temp\n\tYAXIS C\n\tDEF:a=env.rrd:v:AVERAGE\n\tLINE2:a#00FF00:in\n\t-l 0\n",
        )
        .unwrap()[0];
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let args =
            graph_args(g, Path::new("/r"), "h1", GraphPeriod::Days12, 576, 120, end).unwrap();
        let at = |flag: &str| {
            let i = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("{flag}: {args:?}"));
            args[i + 1].as_str()
        };
        assert_eq!(at("--imgformat"), "PNG");
        assert_eq!(at("--title"), "h1 Temp Last 12 Days");
        assert_eq!(at("--vertical-label"), "C");
        assert_eq!(at("--width"), "576");
        assert_eq!(at("--height"), "120");
        assert_eq!(at("--lower-limit"), "0");
        assert_eq!(at("--end"), "1800000000");
        assert_eq!(at("--start"), (1_800_000_000 - 12 * 86_400).to_string());
        assert!(
            args.contains(&"DEF:a=/r/h1/env.rrd:v:AVERAGE".to_string()),
            "{args:?}"
        );
        assert!(
            args.iter().any(|a| a.starts_with("LINE2:a#00FF00")),
            "{args:?}"
        );
    }

    #[test]
    fn parse_cases() {
        let hdr = "[g]\n\tDEF:a=x.rrd:v:AVERAGE\n";
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("minimal", "", None),
            ("title keeps trailing spaces", "\tTITLE  Foo  \n", None),
            ("line legend", "\tLINE2:a#00FF00:in\\: x\n", None),
            ("line stack", "\tLINE1:a#00FF00:in:STACK\n", None),
            ("area", "\tAREA:a#00FF0080:in\n", None),
            ("gprint", "\tGPRINT:a:MAX:Max \\: %5.1lf %sb/s\\n\n", None),
            ("comment", "\tCOMMENT:hello\\: world\n", None),
            ("limits", "\t-l 0\n\t-u 100\n\t--rigid\n", None),
            ("comment line", "# LINE9:bogus\n", None),
            ("fnpattern", "\tFNPATTERN ^mqtt\n", Some("not supported")),
            ("title exec", "\tTITLE exec:/bin/x\n", Some("exec")),
            ("bad color", "\tLINE2:a#GG0000:x\n", Some("bad color")),
            (
                "bad legend escape",
                "\tLINE2:a#000000:x\\n\n",
                Some("escapes"),
            ),
            (
                "legend without color",
                "\tLINE2:a:x\n",
                Some("needs a color"),
            ),
            ("bad def", "\tDEF:b=x.rrd:v\n", Some("DEF:vname")),
            ("bad cf", "\tDEF:b=x.rrd:v:MEDIAN\n", Some("bad CF")),
            ("bad vname", "\tCDEF:b c=a\n", Some("variable name")),
            ("bad limit", "\t-l zero\n", Some("not a number")),
            ("unknown", "\tHRULE:5#FF0000\n", Some("not supported")),
        ];
        for (name, body, want) in cases {
            let got = parse_graphs_cfg("t.cfg", &format!("{hdr}{body}"));
            match (want, got) {
                (None, Ok(g)) => assert_eq!(g.len(), 1, "{name}"),
                (Some(w), Err(e)) => {
                    let m = e.to_string();
                    assert!(m.contains(w) && m.contains("t.cfg:"), "{name}: {m}");
                }
                (w, g) => panic!("{name}: want {w:?}, got {g:?}"),
            }
        }
        let g = &parse_graphs_cfg("t.cfg", &format!("{hdr}\tTITLE  Foo  \n")).unwrap()[0];
        assert_eq!(g.title, "Foo  ");
        assert!(parse_graphs_cfg("t.cfg", "DEF:a=x.rrd:v:AVERAGE\n").is_err());
        assert!(
            parse_graphs_cfg("t.cfg", "[g]\n\tLINE1:a#000000\n").is_err(),
            "no DEF"
        );
    }

    #[test]
    fn periods_match_xymon() {
        assert_eq!(GraphPeriod::Hours48.seconds(), 48 * 3600);
        assert_eq!(GraphPeriod::Days576.seconds(), 576 * 86400);
        assert_eq!(GraphPeriod::Days12.label(), "Last 12 Days");
    }
}
