//! Tests of `crate::rrd::graph`: the repo's graphs.cfg, the parser's accepted and rejected lines,
//! the `rrdtool graph` arguments and the periods.

use super::render::graph_args;
use super::*;
use std::time::{Duration, SystemTime};

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
    let args = graph_args(g, Path::new("/r"), "h1", GraphPeriod::Days12, 576, 120, end).unwrap();
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
