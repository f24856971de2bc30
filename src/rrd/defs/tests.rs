//! Tests of `crate::rrd::defs`: the built-in RRD layouts and the parsing and validation of layout files.

use super::*;

const RRAS: &str = r#"rra = ["RRA:AVERAGE:0.5:1:576"]"#;

#[test]
fn builtin_set_has_the_xymond_rrd_layout() {
    let defs = RrdDefs::load_builtin().unwrap();
    assert_eq!(
        defs.names().collect::<Vec<_>>(),
        ["mqtt.broker.message", "mqtt.broker.octet", "value"]
    );
    for name in ["mqtt.broker.message", "mqtt.broker.octet"] {
        let d = defs.get(name).unwrap();
        assert_eq!(d.step, 300);
        let ds: Vec<_> =
            d.ds.iter()
                .map(|d| (d.name.as_str(), d.kind, d.heartbeat, d.min, d.max))
                .collect();
        assert_eq!(
            ds,
            [
                ("Rcv", DsKind::Derive, 600, Some(0.0), None),
                ("Xmt", DsKind::Derive, 600, Some(0.0), None)
            ]
        );
        let rra: Vec<_> = d
            .rra
            .iter()
            .map(|r| (r.cf, r.xff, r.steps, r.rows))
            .collect();
        assert_eq!(
            rra,
            [1, 6, 24, 288].map(|s| (Cf::Average, 0.5, s, 576)).to_vec()
        );
    }
    let v = defs.get("value").unwrap();
    assert_eq!(v.ds[0].kind, DsKind::Gauge);
    assert_eq!((v.ds[0].min, v.ds[0].max), (None, None));
}

/// Every file in the repo's rrd-defs/ is compiled in (nobody forgot BUILTIN).
#[test]
fn every_repo_file_is_builtin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rrd-defs");
    let from_dir = RrdDefs::load_dir(&dir).unwrap();
    let builtin = RrdDefs::load_builtin().unwrap();
    assert_eq!(from_dir.defs, builtin.defs);
}

#[test]
fn parse_cases() {
    struct Case {
        name: &'static str,
        file: &'static str,
        text: String,
        want_err: Option<&'static str>,
    }
    let ok_ds = r#"ds = ["DS:a:GAUGE:600:U:U"]"#;
    let ds = |l: &str| format!("step = 300\nds = [\"{l}\"]\n{RRAS}");
    let rra = |l: &str| format!("step = 300\n{ok_ds}\nrra = [\"{l}\"]");
    let cases = [
        Case {
            name: "valid",
            file: "x.toml",
            text: ds("DS:a_1:DERIVE:600:0:U"),
            want_err: None,
        },
        Case {
            name: "gauge float limits",
            file: "x.toml",
            text: ds("DS:t:GAUGE:600:-40.5:125"),
            want_err: None,
        },
        Case {
            name: "bad toml",
            file: "x.toml",
            text: "step = ".into(),
            want_err: Some("rrd-defs x.toml:"),
        },
        Case {
            name: "unknown key",
            file: "x.toml",
            text: format!("step=300\n{ok_ds}\n{RRAS}\nfoo=1"),
            want_err: Some("unknown field `foo`"),
        },
        Case {
            name: "missing rra",
            file: "x.toml",
            text: format!("step=300\n{ok_ds}"),
            want_err: Some("missing field `rra`"),
        },
        Case {
            name: "step 0",
            file: "x.toml",
            text: format!("step=0\n{ok_ds}\n{RRAS}"),
            want_err: Some("step must be > 0"),
        },
        Case {
            name: "empty ds",
            file: "x.toml",
            text: format!("step=300\nds=[]\n{RRAS}"),
            want_err: Some("at least one ds"),
        },
        Case {
            name: "ds field count",
            file: "x.toml",
            text: ds("DS:a:GAUGE:600:U"),
            want_err: Some("expected DS:name"),
        },
        Case {
            name: "ds name long",
            file: "x.toml",
            text: ds("DS:abcdefghijklmnopqrst:GAUGE:600:U:U"),
            want_err: Some("1-19"),
        },
        Case {
            name: "ds name char",
            file: "x.toml",
            text: ds("DS:a-b:GAUGE:600:U:U"),
            want_err: Some("1-19"),
        },
        Case {
            name: "ds type",
            file: "x.toml",
            text: ds("DS:a:COMPUTE:600:U:U"),
            want_err: Some(r#"DS type "COMPUTE""#),
        },
        Case {
            name: "heartbeat",
            file: "x.toml",
            text: ds("DS:a:GAUGE:0:U:U"),
            want_err: Some("heartbeat must be a positive"),
        },
        Case {
            name: "derive neg min",
            file: "x.toml",
            text: ds("DS:a:DERIVE:600:-1:U"),
            want_err: Some("integer >= 0"),
        },
        Case {
            name: "min >= max",
            file: "x.toml",
            text: ds("DS:a:GAUGE:600:5:5"),
            want_err: Some("min must be below max"),
        },
        Case {
            name: "dup ds",
            file: "x.toml",
            text: format!("step=300\nds=[\"DS:a:GAUGE:600:U:U\",\"DS:a:GAUGE:600:U:U\"]\n{RRAS}"),
            want_err: Some("duplicate DS name"),
        },
        Case {
            name: "rra cf",
            file: "x.toml",
            text: rra("RRA:MEDIAN:0.5:1:576"),
            want_err: Some("CF \"MEDIAN\""),
        },
        Case {
            name: "rra xff",
            file: "x.toml",
            text: rra("RRA:AVERAGE:1:1:576"),
            want_err: Some("xff must be"),
        },
        Case {
            name: "rra rows",
            file: "x.toml",
            text: rra("RRA:AVERAGE:0.5:1:0"),
            want_err: Some("rows must be"),
        },
        Case {
            name: "rra fields",
            file: "x.toml",
            text: rra("RRA:AVERAGE:0.5:1"),
            want_err: Some("expected RRA:CF"),
        },
        Case {
            name: "bad file name",
            file: "../x.toml",
            text: ds("DS:a:GAUGE:600:U:U"),
            want_err: None,
        },
        Case {
            name: "leading dot name",
            file: ".x.toml",
            text: ds("DS:a:GAUGE:600:U:U"),
            want_err: Some("not a valid rrd name"),
        },
    ];
    for c in cases {
        let got = parse_def(c.file, &c.text);
        match (c.want_err, got) {
            (None, Ok(_)) => {}
            (Some(want), Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{}: {msg:?} lacks {want:?}", c.name);
                assert!(
                    msg.contains(c.file),
                    "{}: {msg:?} does not name the file",
                    c.name
                );
            }
            (w, g) => panic!("{}: want err {w:?}, got {g:?}", c.name),
        }
    }
}

#[test]
fn override_dir_replaces_by_name_and_adds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("value.toml"),
        "step = 60\nds = [\"DS:value:GAUGE:120:0:100\"]\nrra = [\"RRA:MAX:0:1:10\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README"), "ignored").unwrap();
    let defs = RrdDefs::load_with_overrides(Some(dir.path())).unwrap();
    assert_eq!(defs.get("value").unwrap().step, 60);
    assert!(defs.get("mqtt.broker.octet").is_some());

    std::fs::write(dir.path().join("bad.toml"), "step = 1").unwrap();
    let err = RrdDefs::load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.toml"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(RrdDefs::load_dir(empty.path()).is_err());
    assert!(RrdDefs::load_dir(&empty.path().join("nope")).is_err());
}
