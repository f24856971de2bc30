//! `value_template`s (Jinja, as Home Assistant evaluates them) compiled once per distinct source and
//! rendered per message with minijinja, bounded in time and output.
//!
//! Owned by the discovery state: a template is added when an entity announcing it is taken (a syntax
//! error refuses the announcement, as HA refuses it), released when the entity goes, and rendered for
//! every state or availability message. Decisions:
//! - One compiled template per distinct source, counted by the entities using it: a fleet announces the
//!   same few templates thousands of times (`{{ value_json.temperature }}`), and a compiled template
//!   costs kilobytes.
//! - A message's payload is parsed at most once (`Message`), however many entities read it. The state
//!   goes further for the `{{ value_json.a.b }}` templates of a topic's readers: it selects their values
//!   in one pass over the payload without building the document (`member_names`, `rules::scan`) and
//!   prints them here (`print`).
//! - The templates most devices announce, `{{ value_json.a }}`, `{{ value_json['a'].b }}` and
//!   `{{ value }}`, are read without the engine when the selected value is a string, number, boolean or
//!   null, printed as minijinja prints it (a test checks both give the same text); anything else
//!   (a missing key, an object, a payload that is not JSON) goes through minijinja, so its errors are the
//!   engine's.
//! - In scope: `value` (the payload as text) and `value_json` (the payload parsed, only when it is JSON),
//!   like HA's `async_render_with_possible_json_value`. The output is trimmed, as HA trims it.
//! - Filters: minijinja's built-ins cover what device announcements use (`float` and `int` with a
//!   default, erroring without one as HA's do; `round`, `default`, `lower`, `upper`, `replace`,
//!   `is defined`); `iif` is added here as HA defines it. No auto-escaping, whatever the source's text.
//! - Printing a missing key gives "" and indexing into one is an error (Jinja's default undefined, as
//!   in HA).
//! - Bounds: `fuel` caps the instructions one render may run (loops cannot block the session); output
//!   past `max_output` bytes stops the render with an error. A single string operation is capped by
//!   minijinja itself (100 MB for `"x" * n`).

use minijinja::value::Value as JValue;
use minijinja::{AutoEscape, Environment, Error, ErrorKind};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::io;

/// The compiled templates of one discovery block, by source.
pub struct Templates {
    env: Environment<'static>,
    max_output: usize,
    compiled: HashMap<Box<str>, Compiled>,
}

struct Compiled {
    /// Entities (and availability topics) using this source.
    uses: usize,
    fast: Option<Fast>,
}

/// A template read without the engine.
#[derive(Debug, Clone, PartialEq)]
enum Fast {
    /// `{{ value }}`.
    Value,
    /// `{{ value_json.a['b'] }}`: the member names in order.
    Member(Vec<String>),
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("max_output", &self.max_output)
            .field("sources", &self.compiled.len())
            .finish_non_exhaustive()
    }
}

/// One message's payload as the templates of every entity reading it see it: the text, and the JSON
/// document parsed on first use.
pub struct Message<'a> {
    text: Cow<'a, str>,
    json: OnceCell<Option<Json>>,
    jinja: OnceCell<Option<JValue>>,
}

impl<'a> Message<'a> {
    pub fn new(payload: &'a [u8]) -> Message<'a> {
        Message {
            text: String::from_utf8_lossy(payload),
            json: OnceCell::new(),
            jinja: OnceCell::new(),
        }
    }

    /// The payload as text (invalid UTF-8 replaced).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn json(&self) -> Option<&Json> {
        self.json
            .get_or_init(|| serde_json::from_str(&self.text).ok())
            .as_ref()
    }

    fn jinja(&self) -> Option<&JValue> {
        self.jinja
            .get_or_init(|| {
                self.json()
                    .map(|j| JValue::from(minijinja::value::Serde(j)))
            })
            .as_ref()
    }
}

/// HA's `iif(value, if_true=True, if_false=False, if_none=if_false)`.
fn iif(
    value: JValue,
    if_true: Option<JValue>,
    if_false: Option<JValue>,
    if_none: Option<JValue>,
) -> JValue {
    let if_false = if_false.unwrap_or(JValue::from(false));
    if value.is_none() || value.is_undefined() {
        return if_none.unwrap_or(if_false);
    }
    if value.is_true() {
        if_true.unwrap_or(JValue::from(true))
    } else {
        if_false
    }
}

impl Templates {
    pub fn new(fuel: u64, max_output: usize) -> Templates {
        let mut env = Environment::new();
        env.set_fuel(Some(fuel.max(1)));
        // Templates are named by their source, which must not switch escaping on (`... .html`).
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("iif", iif);
        env.add_function("iif", iif);
        Templates {
            env,
            max_output,
            compiled: HashMap::new(),
        }
    }

    /// Takes one more use of `source`, compiling it the first time; a syntax error is the reason (and
    /// takes no use).
    pub fn add(&mut self, source: &str) -> Result<(), String> {
        if let Some(c) = self.compiled.get_mut(source) {
            c.uses += 1;
            return Ok(());
        }
        self.env
            .add_template_owned(source.to_string(), source.to_string())
            .map_err(|e| reason(&e))?;
        self.compiled.insert(
            source.into(),
            Compiled {
                uses: 1,
                fast: fast(source),
            },
        );
        Ok(())
    }

    /// Gives back one use of `source`; the last one drops the compiled template.
    pub fn release(&mut self, source: &str) {
        let Some(c) = self.compiled.get_mut(source) else {
            return;
        };
        c.uses -= 1;
        if c.uses == 0 {
            self.compiled.remove(source);
            self.env.remove_template(source);
        }
    }

    /// The member names of `source` when it is `{{ value_json.a['b'] }}` (added before), so that a
    /// caller can select the value in one pass over many templates (`rules::scan`) and `print` it.
    pub fn member_names(&self, source: &str) -> Option<&[String]> {
        match self.compiled.get(source)?.fast.as_ref()? {
            Fast::Member(names) => Some(names),
            Fast::Value => None,
        }
    }

    /// Distinct sources compiled.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Renders the template `source` (added before) for one message; the trimmed output, or why it
    /// failed.
    pub fn render(&self, source: &str, message: &Message) -> Result<String, String> {
        let fast = self.compiled.get(source).and_then(|c| c.fast.as_ref());
        if let Some(out) = fast.and_then(|f| f.render(message)) {
            return Ok(out);
        }
        let t = self.env.get_template(source).map_err(|e| reason(&e))?;
        let ctx = match message.jinja() {
            Some(j) => minijinja::context! { value => message.text(), value_json => j.clone() },
            None => minijinja::context! { value => message.text() },
        };
        let mut out = Bounded {
            buf: Vec::new(),
            max: self.max_output,
        };
        t.render_captured_to(ctx, &mut out).map_err(|e| {
            if e.kind() == ErrorKind::WriteFailure {
                format!("output longer than {} bytes", self.max_output)
            } else {
                reason(&e)
            }
        })?;
        Ok(String::from_utf8_lossy(&out.buf).trim().to_string())
    }
}

impl Fast {
    /// The output, when it can be had without the engine; None sends the message to minijinja.
    fn render(&self, message: &Message) -> Option<String> {
        match self {
            Fast::Value => Some(message.text().trim().to_string()),
            Fast::Member(names) => {
                let mut v = message.json()?;
                for n in names {
                    v = v.as_object()?.get(n.as_str())?;
                }
                print(v)
            }
        }
    }
}

/// `v` as `{{ value_json.<path to v> }}` prints it (trimmed), when it is a string, number, boolean or
/// null; None for the rest, which only the engine prints.
pub fn print(v: &Json) -> Option<String> {
    let out = match v {
        Json::String(s) => s.trim().to_string(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) if f.is_finite() => {
                // minijinja's float display: Rust's, with ".0" when that has no point.
                let mut s = f.to_string();
                if !s.contains('.') {
                    s.push_str(".0");
                }
                s
            }
            _ => return None,
        },
        Json::Array(_) | Json::Object(_) => return None,
    };
    Some(out)
}

/// The fast form of `source`, when it is exactly `{{ value }}` or `{{ value_json<members> }}` between
/// optional spaces, members being `.name` (a Jinja identifier) or `['name']` / `["name"]` (no quote,
/// backslash or control character inside).
fn fast(source: &str) -> Option<Fast> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    // `{{-` and `-}}` trim differently; `{{{` is not an expression start.
    if inner.starts_with(['-', '+', '{']) || inner.ends_with(['-', '+', '}']) {
        return None;
    }
    let expr = inner.trim();
    if expr == "value" {
        return Some(Fast::Value);
    }
    let mut rest = expr.strip_prefix("value_json")?;
    let mut names = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            names.push(name.into());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let quote = r.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let r = &r[1..];
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains(['\\', '\'', '"']) || name.chars().any(char::is_control) {
                return None;
            }
            names.push(name.into());
            rest = r[end + 1..].strip_prefix(']')?;
        } else {
            return None;
        }
    }
    (!names.is_empty()).then_some(Fast::Member(names))
}

/// The error in one line, without minijinja's template name and line (the template is one line).
fn reason(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if e.kind() == ErrorKind::OutOfFuel {
        s = "too much work (the template ran out of fuel)".into();
    }
    s
}

/// A writer that refuses to grow past `max` bytes.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl io::Write for Bounded {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() + b.len() > self.max {
            return Err(io::Error::other("template output too long"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders through the fast path when the template has one, and checks the engine alone says the
    /// same.
    fn render(src: &str, payload: &str) -> Result<String, String> {
        let mut t = Templates::new(10_000, 256);
        t.add(src)?;
        let message = Message::new(payload.as_bytes());
        let out = t.render(src, &message);
        t.compiled.get_mut(src).unwrap().fast = None;
        let engine = t.render(src, &Message::new(payload.as_bytes()));
        assert_eq!(
            out, engine,
            "{src} on {payload}: fast path and engine differ"
        );
        out
    }

    /// The templates ESPHome, Zigbee2MQTT and Tasmota put in their announcements, and the filters HA
    /// users add to them.
    #[test]
    fn what_devices_announce() {
        let z2m = r#"{"battery":97,"humidity":41.6,"linkquality":120,"temperature":21.3,"contact":false}"#;
        let tas = r#"{"Time":"2024-05-04T10:11:12","BME280":{"Temperature":21.4,"Humidity":48.2}}"#;
        for (src, payload, want) in [
            (r#"{{ value_json["temperature"] }}"#, z2m, "21.3"),
            ("{{ value_json.temperature }}", z2m, "21.3"),
            // Booleans print as Python prints them, so they compare with HA's `payload_on: false` ("False").
            ("{{ value_json.contact }}", z2m, "False"),
            ("{{value_json['BME280']['Temperature']}}", tas, "21.4"),
            ("{{value_json['BME280'].Humidity}}", tas, "48.2"),
            ("{{ value_json.state }}", r#"{"state":"online"}"#, "online"),
            ("{{ value | float * 10 }}", "2.5", "25.0"),
            ("{{ value | float(0) }}", "n/a", "0"),
            ("{{ value | int }}", "42", "42"),
            ("{{ (value | float) | round(1) }}", "21.46", "21.5"),
            ("{{ value_json.missing | default('none') }}", z2m, "none"),
            ("{{ value | lower }}", "ON", "on"),
            ("{{ value | upper }}", "on", "ON"),
            ("{{ value | replace(',', '.') }}", "21,5", "21.5"),
            (
                "{{ 'yes' if value_json.battery is defined else 'no' }}",
                z2m,
                "yes",
            ),
            (
                "{{ value_json.contact | iif('closed', 'open') }}",
                z2m,
                "open",
            ),
            ("{{ iif(value == 'ON', 'on', 'off') }}", "ON", "on"),
            ("{{ value_json.missing }}", z2m, ""),
            ("  {{ value }}  ", "7", "7"),
        ] {
            assert_eq!(render(src, payload).as_deref(), Ok(want), "{src}");
        }
    }

    #[test]
    fn failures_are_reasons() {
        let z2m = r#"{"temperature":21.3}"#;
        let err = |src: &str, payload: &str| render(src, payload).unwrap_err();
        assert!(
            err("{{ value | float }}", "n/a").contains("invalid"),
            "{}",
            err("{{ value | float }}", "n/a")
        );
        assert!(err("{{ value_json.a.b }}", z2m).contains("undefined"));
        assert!(err("{{ value_json.temperature }}", "not json").contains("undefined"));
        assert!(err("{% for i in range(100000) %}{% endfor %}", "").contains("fuel"));
        assert!(err("{{ 'x' * 1000 }}", "").contains("longer than 256 bytes"));
        assert!(err("{{ value_json[ }}", "").contains("syntax"));
    }

    #[test]
    fn compiled_once_per_source_and_dropped_with_its_last_use() {
        let mut t = Templates::new(1000, 64);
        let src = "{{ value }}!";
        assert_eq!(t.add(src), Ok(()));
        assert_eq!(t.add(src), Ok(()));
        assert_eq!(t.add("{{ value_json.a }}"), Ok(()));
        assert_eq!(t.len(), 2);
        for i in 0..3 {
            let m = Message::new(i.to_string().into_bytes().leak());
            assert_eq!(t.render(src, &m), Ok(format!("{i}!")));
        }
        t.release(src);
        assert_eq!(t.render(src, &Message::new(b"1")), Ok("1!".into()));
        t.release(src);
        assert_eq!(t.len(), 1);
        assert!(t.render(src, &Message::new(b"1")).is_err());
        // A syntax error takes no use.
        assert!(t.add("{{ value_json[ }}").is_err());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_fast_forms() {
        for (src, want) in [
            ("{{ value }}", Some(Fast::Value)),
            ("  {{value}} ", Some(Fast::Value)),
            (
                "{{ value_json.temperature }}",
                Some(Fast::Member(vec!["temperature".into()])),
            ),
            (
                r#"{{value_json['BME280']["Temperature"]}}"#,
                Some(Fast::Member(vec!["BME280".into(), "Temperature".into()])),
            ),
            (
                "{{ value_json['a b'].c_1 }}",
                Some(Fast::Member(vec!["a b".into(), "c_1".into()])),
            ),
            ("{{ value_json }}", None),
            ("{{ value_json.a | float }}", None),
            ("{{- value_json.a }}", None),
            ("{{ value_json.a -}}", None),
            ("{{ value_json.1a }}", None),
            ("{{ value_json['a\\'b'] }}", None),
            ("{{ value_json.a }}{{ value_json.b }}", None),
            ("x{{ value_json.a }}", None),
            ("{{ value_json.a }} °C", None),
            ("{{ value_json[0] }}", None),
        ] {
            assert_eq!(fast(src), want, "{src}");
        }
    }

    /// Every value a payload may hold, printed by the fast path as minijinja prints it (`render` checks
    /// the two agree), and the engine's answer whenever the fast path steps aside.
    #[test]
    fn the_fast_path_prints_as_the_engine() {
        let payload = r#"{"i":42,"neg":-7,"big":18446744073709551615,"huge":100000000000000000000,
            "f":21.3,"g":21.0,"e":1e-7,"z":-0.0,"t":true,"n":null,"s":" on ","u":"\u00e9\u0000",
            "o":{"a":{"b":1.5}},"l":[1,2],"x":"<b>&amp;</b>.html"}"#;
        for (path, want) in [
            ("i", "42"),
            ("neg", "-7"),
            ("big", "18446744073709551615"),
            ("huge", "100000000000000000000.0"),
            ("f", "21.3"),
            ("g", "21.0"),
            ("e", "0.0000001"),
            ("z", "-0.0"),
            ("t", "True"),
            ("n", "None"),
            ("s", "on"),
            ("u", "é\u{0}"),
            ("o.a.b", "1.5"),
            ("l", "[1, 2]"),
            ("x", "<b>&amp;</b>.html"),
            ("missing", ""),
        ] {
            let src = format!("{{{{ value_json.{path} }}}}");
            assert_eq!(render(&src, payload).as_deref(), Ok(want), "{src}");
        }
        assert!(render("{{ value_json.o.missing.b }}", payload)
            .unwrap_err()
            .contains("undefined"));
        assert!(render("{{ value_json.i.b }}", payload).is_ok());
        assert_eq!(render("{{ value_json.a }}", "[1]").as_deref(), Ok(""));
        assert_eq!(
            render("{{ value_json.a }}.html", r#"{"a":"<"}"#).as_deref(),
            Ok("<.html")
        );
        assert_eq!(render("{{ value }}", " \u{0}x ").as_deref(), Ok("\u{0}x"));
    }

    /// One parse per message, however many templates read it.
    #[test]
    fn a_message_is_parsed_once() {
        let mut t = Templates::new(1000, 64);
        for src in ["{{ value_json.a }}", "{{ value_json.a | float * 2 }}"] {
            t.add(src).unwrap();
        }
        let m = Message::new(br#"{"a":1}"#);
        assert_eq!(t.render("{{ value_json.a }}", &m).as_deref(), Ok("1"));
        let parsed = m.json().unwrap() as *const Json;
        assert_eq!(
            t.render("{{ value_json.a | float * 2 }}", &m).as_deref(),
            Ok("2.0")
        );
        assert_eq!(m.json().unwrap() as *const Json, parsed);
    }
}
