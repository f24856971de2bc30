//! Rendering of a parsed graph definition: its items mapped onto the `rrd` crate's graph types, the
//! arguments of `rrdtool graph` built from them, and the child that draws the PNG.
//!
//! [`render_graph`] is re-exported as `crate::rrd::graph::render_graph` (and `crate::rrd::render_graph`);
//! the dashboard's graph handler awaits it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rrd::ops::graph::elements::{
    self as el, AreaColor, ColorWithLegend, GraphElement, Legend, VarName,
};
use rrd::ops::graph::props::{GraphProps, ImageFormat, Labels, Limits, Size, TimeRange};
use rrd::ops::graph::Color;

use super::{GraphDef, GraphPeriod, Item};
use crate::rrd::{validate_host, RrdError};

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
pub(super) fn graph_args(
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
