//! `xymon-mqtt xymon-config --config F`: the graphs.d and xymonserver.d lines for per-value RRDs.
//!
//! Files are `<rrd_dir>/<host>/<test>.<value>.rrd` with one GAUGE DS `value` (rrd-defs/value.toml).
//! Following docs/xymon-protocol.md §5.3-5.5 (Xymon bug #31 in Debian 4.3.30): the column must be in TEST2RRD,
//! mapped to itself, which must not be an xymond_rrd handler (then xymond_rrd never writes for it), and
//! listed in GRAPHS; `GRAPHS_<test>` lists one graph per value, `[<test>-<value>]`; a `[<test>]` section
//! serves the host's trends page (the GRAPHS entry `<test>` matches every `<test>.*.rrd`).
//! The graph definitions use only what `rrd::render_graph` draws too, so the dashboard renders them.
//! Discovered sensors' files are `<host>/<column>.<object_id>.rrd`, same layout; their graph is one per
//! column with a line per file (FNPATTERN), in a file of their own (`discovery`).

use crate::discovery::select::Column;
use crate::plan::Plan;
use std::fmt::Write;

/// Column ids that xymond_rrd handles itself (TEST2RRD targets of the stock config): a rule test named
/// like one would make xymond_rrd write into our files' directory, so the output warns.
const XYMOND_RRD_HANDLERS: &[&str] = &[
    "cpu",
    "la",
    "disk",
    "inode",
    "qtree",
    "memory",
    "mdc",
    "mdstat",
    "conn",
    "tcp",
    "http",
    "dns",
    "ncv",
    "devmon",
    "trends",
    "ifstat",
    "netstat",
    "vmstat",
    "iostat",
    "procs",
    "ports",
    "temperature",
    "apache",
    "bind",
    "sendmail",
    "mailq",
    "nmailq",
    "bea",
    "iishealth",
    "citrix",
    "xymonnet",
    "xymongen",
    "xymonproxy",
    "xymond",
    "bbproxy",
    "hobbitd",
    "ntpstat",
    "clock",
    "lines",
];

const COLOURS: [&str; 6] = ["0000FF", "00CC00", "FF0000", "CC00CC", "FF9900", "009999"];

/// Both fragments, each headed by the file it belongs in.
pub fn generate(plan: &Plan) -> String {
    let mut server = String::new();
    let mut graphs = String::new();
    for rule in plan.rules.iter().map(|r| &r.rule) {
        let values: Vec<_> = rule.values.iter().filter(|v| v.rrd).collect();
        if values.is_empty() {
            continue;
        }
        let test = rule.test.as_str();
        if XYMOND_RRD_HANDLERS.contains(&test) {
            let _ = writeln!(
                server,
                "# WARNING: {test:?} is an xymond_rrd handler id; rename the test, or xymond_rrd will write RRDs for it too"
            );
        }
        let ids: Vec<String> = values
            .iter()
            .map(|v| format!("{test}-{}", v.name))
            .collect();
        let _ = writeln!(
            server,
            "# rule test {test:?} (topic {:?})",
            rule.filter.as_str()
        );
        let _ = writeln!(server, "TEST2RRD+=\",{test}={test}\"");
        let _ = writeln!(server, "GRAPHS+=\",{test}\"");
        let _ = writeln!(server, "GRAPHS_{test}=\"{}\"\n", ids.join(","));
        for (v, id) in values.iter().zip(&ids) {
            let _ = writeln!(graphs, "[{id}]");
            let _ = writeln!(graphs, "\tTITLE {}  ", v.name);
            let _ = writeln!(
                graphs,
                "\tYAXIS {}",
                if v.unit.is_empty() { "value" } else { &v.unit }
            );
            let _ = writeln!(graphs, "\tDEF:v={test}.{}.rrd:value:AVERAGE", v.name);
            let _ = writeln!(graphs, "\tLINE2:v#{}:{}", COLOURS[0], v.name);
            for (cf, label) in [("MIN", "Min"), ("MAX", "Max"), ("AVERAGE", "Avg")] {
                let _ = writeln!(graphs, "\tGPRINT:v:{cf}:{label} \\: %5.1lf");
            }
            let _ = writeln!(graphs, "\tGPRINT:v:LAST:Cur \\: %5.1lf\\n\n");
        }
        let _ = writeln!(
            graphs,
            "# host trends page: the GRAPHS entry {test:?} matches {test}.*.rrd\n[{test}]"
        );
        let _ = writeln!(graphs, "\tTITLE {test}  ");
        // showgraph.cgi passes YAXIS to rrdtool's -v unconditionally: without it the graph fails with
        // "option requires an argument -- 'v'". The shared unit when there is one.
        let first_unit = values.first().map_or("", |v| v.unit.as_str());
        let yaxis = if !first_unit.is_empty() && values.iter().all(|v| v.unit == first_unit) {
            first_unit
        } else {
            "value"
        };
        let _ = writeln!(graphs, "\tYAXIS {yaxis}");
        for (k, v) in values.iter().enumerate() {
            let _ = writeln!(graphs, "\tDEF:v{k}={test}.{}.rrd:value:AVERAGE", v.name);
        }
        for (k, v) in values.iter().enumerate() {
            let _ = writeln!(
                graphs,
                "\tLINE2:v{k}#{}:{}",
                COLOURS[k % COLOURS.len()],
                v.name
            );
        }
        graphs.push('\n');
    }
    let (d_server, d_graphs) = discovery(plan);
    if server.is_empty() && d_server.is_empty() {
        return "# no rule test has a value with `rrd = true` and no [[discovery]] block writes RRDs: nothing to install\n".into();
    }
    let mut out = String::new();
    if !server.is_empty() {
        out.push_str(&format!(
            "# ---- /etc/xymon/xymonserver.d/xymon-mqtt-rules.cfg ----\n{server}\
             {RULES_GRAPHS}{graphs}"
        ));
    }
    if !d_server.is_empty() {
        out.push_str(&format!(
            "# ---- /etc/xymon/xymonserver.d/xymon-mqtt-discovery.cfg ----\n{d_server}\
             {DISCOVERY_GRAPHS}{d_graphs}"
        ));
    }
    out.push_str("# then: systemctl reload xymon\n");
    out
}

const RULES_GRAPHS: &str = "# ---- /etc/xymon/graphs.d/xymon-mqtt-rules.cfg ----\n";
const DISCOVERY_GRAPHS: &str = "# ---- /etc/xymon/graphs.d/xymon-mqtt-discovery.cfg ----\n";

/// The lines for the columns of `[[discovery]]` blocks that write RRDs. Their entities are known only at
/// run time, so each column gets one graph with a line per `<column>.<object_id>.rrd` of the host
/// (showgraph's FNPATTERN, as Xymon's own `[disk]` graph does); with `column = "{device_class}"` the
/// columns are the `rrd_classes` (with `rrd = true` and no classes listed, no column can be named).
fn discovery(plan: &Plan) -> (String, String) {
    let mut columns: Vec<String> = Vec::new();
    let mut server = String::new();
    for (i, (_, d)) in plan.discovery.iter().enumerate() {
        if !d.rrd.any() {
            continue;
        }
        let named: Vec<String> = match &d.selector.column {
            Column::Fixed(t) => vec![t.as_str().to_string()],
            Column::ByClass => d.rrd.classes.clone(),
        };
        if named.is_empty() {
            let _ = writeln!(
                server,
                "# discovery[{i}]: column = \"{{device_class}}\" with rrd = true: list the classes in rrd_classes to get their graph lines"
            );
        }
        for c in named {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
    }
    let mut graphs = String::new();
    for c in &columns {
        if XYMOND_RRD_HANDLERS.contains(&c.as_str()) {
            let _ = writeln!(
                server,
                "# WARNING: {c:?} is an xymond_rrd handler id; use another column, or xymond_rrd will write RRDs for it too"
            );
        }
        let _ = writeln!(server, "# discovered sensors: <host>/{c}.<object_id>.rrd");
        let _ = writeln!(server, "TEST2RRD+=\",{c}={c}\"");
        let _ = writeln!(server, "GRAPHS+=\",{c}\"\n");
        let _ = writeln!(graphs, "[{c}]");
        let _ = writeln!(
            graphs,
            "\tFNPATTERN ^{}\\.(.+)\\.rrd$",
            c.replace('.', "\\.")
        );
        let _ = writeln!(graphs, "\tTITLE {c}  ");
        let _ = writeln!(graphs, "\tYAXIS value");
        let _ = writeln!(graphs, "\tDEF:v@RRDIDX@=@RRDFN@:value:AVERAGE");
        let _ = writeln!(graphs, "\tLINE2:v@RRDIDX@#@COLOR@:@RRDPARAM@");
        let _ = writeln!(graphs, "\tGPRINT:v@RRDIDX@:LAST:Cur \\: %5.1lf\\n\n");
    }
    (server, graphs)
}

/// Only the graphs.d part (for `rrd::graph::parse_graphs_cfg` and the dashboard).
/// The discovery graphs (FNPATTERN, which the dashboard does not draw) are left out.
pub fn graphs_part(plan: &Plan) -> String {
    let all = generate(plan);
    match all.split_once(RULES_GRAPHS) {
        Some((_, g)) => g
            .split_once("# ---- /etc/xymon/xymonserver.d/xymon-mqtt-discovery.cfg")
            .map_or(g, |(g, _)| g)
            .to_string(),
        None => String::new(),
    }
}
