//! `value_template`s (Jinja, as Home Assistant evaluates them) compiled once per entity and rendered per
//! message with minijinja, bounded in time and output.
//!
//! Owned by the discovery state: a template is added when its entity is announced (a syntax error
//! refuses the announcement, as HA refuses it), removed with the entity, and rendered for every state
//! or availability message. Decisions:
//! - In scope: `value` (the payload as text) and `value_json` (the payload parsed, only when it is JSON),
//!   like HA's `async_render_with_possible_json_value`. The output is trimmed, as HA trims it.
//! - Filters: minijinja's built-ins cover what device announcements use (`float` and `int` with a
//!   default, erroring without one as HA's do; `round`, `default`, `lower`, `upper`, `replace`,
//!   `is defined`); `iif` is added here as HA defines it.
//! - Printing a missing key gives "" and indexing into one is an error (Jinja's default undefined, as
//!   in HA).
//! - Bounds: `fuel` caps the instructions one render may run (loops cannot block the collector);
//!   output past `max_output` bytes stops the render with an error. A single string operation is
//!   capped by minijinja itself (100 MB for `"x" * n`).

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error, ErrorKind};
use std::io;

/// The compiled templates of one discovery block.
pub struct Templates {
    env: Environment<'static>,
    max_output: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
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
        env.add_filter("iif", iif);
        env.add_function("iif", iif);
        Templates { env, max_output }
    }

    /// Compiles `source` under `name`, replacing what was there; a syntax error is the reason.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), String> {
        self.env
            .add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| reason(&e))
    }

    pub fn remove(&mut self, name: &str) {
        self.env.remove_template(name);
    }

    /// Renders the template `name` for one payload; the trimmed output, or why it failed.
    pub fn render(&self, name: &str, payload: &str) -> Result<String, String> {
        let t = self.env.get_template(name).map_err(|e| reason(&e))?;
        let value_json = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .map(|v| JValue::from(minijinja::value::Serde(v)));
        let ctx = match value_json {
            Some(j) => minijinja::context! { value => payload, value_json => j },
            None => minijinja::context! { value => payload },
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

    fn render(src: &str, payload: &str) -> Result<String, String> {
        let mut t = Templates::new(10_000, 256);
        t.add("e", src)?;
        t.render("e", payload)
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
    fn added_once_rendered_often_and_removed() {
        let mut t = Templates::new(1000, 64);
        assert_eq!(t.add("a", "{{ value }}!"), Ok(()));
        for i in 0..3 {
            assert_eq!(t.render("a", &i.to_string()), Ok(format!("{i}!")));
        }
        t.remove("a");
        assert!(t.render("a", "1").is_err());
    }
}
