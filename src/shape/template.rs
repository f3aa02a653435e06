//! `shape = "template"`: the operator's minijinja template renders the outgoing JSON.
//!
//! Templates are input, so they run in a box: no loader (nothing to include,
//! import or extend), a fuel budget per render (bounds the work), a cap on the
//! source and on the output, and a low recursion limit. Values print as JSON
//! (`AutoEscape::Json`), so an attacker-controlled string in a payload cannot
//! break out of the document; the output must parse as JSON.
//!
//! None of that bounds memory or time: the engine folds constant expressions while
//! it compiles (`"x" * 100000000` is a 100 MB string before any render), `~` and `+`
//! copy without a limit, captures (`{% set %}…{% endset %}`, macros) grow unchecked,
//! and one step of fuel can copy megabytes. So this engine runs only inside the
//! sandbox process (`super::sandbox`), which bounds both.

use std::io;

use bytes::Bytes;
use minijinja::{AutoEscape, Environment, Error, ErrorKind};
use serde_json::Value;

use super::{
    error::ShapeError,
    limits::{MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL},
};
use crate::domain::event::to_sorted_json;

const RECURSION_LIMIT: usize = 64;
const NAME: &str = "template";

/// A compiled template with the environment that runs it.
#[derive(Debug)]
pub struct Compiled {
    env: Environment<'static>,
}

impl Compiled {
    pub fn new(source: &str) -> Result<Self, ShapeError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(ShapeError::TemplateTooLarge { size: source.len() });
        }
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Json);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        // Debug info would copy the render context into every error.
        env.set_debug(false);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| ShapeError::Syntax {
                line: e.line(),
                message: describe(&e),
            })?;
        Ok(Self { env })
    }

    /// Render one event from its envelope body, whose fields (`id`, `topic`, `ts`,
    /// `type`, `payload`, `v`) are the template's variables.
    pub fn render(&self, envelope: &[u8]) -> Result<Bytes, ShapeError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| ShapeError::Render {
                line: e.line(),
                message: describe(&e),
            })?;
        let ctx: Value = serde_json::from_slice(envelope).map_err(|e| ShapeError::Render {
            line: None,
            message: format!("the event is not JSON: {e}"),
        })?;
        let mut out = Capped::default();
        if let Err(e) = template.render_captured_to(&ctx, &mut out) {
            return Err(match e.kind() {
                _ if out.overflowed => ShapeError::OutputTooLarge,
                ErrorKind::OutOfFuel => ShapeError::OutOfFuel,
                _ => ShapeError::Render {
                    line: e.line(),
                    message: describe(&e),
                },
            });
        }
        let value: Value =
            serde_json::from_slice(&out.buf).map_err(|e| ShapeError::NotJson(e.to_string()))?;
        Ok(Bytes::from(to_sorted_json(&value)))
    }
}

/// `kind: detail` (just the detail for a syntax error, which the variant already
/// says), without minijinja's `(in template:N)` suffix: the line is reported on
/// its own.
fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) if e.kind() == ErrorKind::SyntaxError => detail.to_owned(),
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A buffer that refuses to grow past `MAX_OUTPUT_BYTES`.
#[derive(Default)]
struct Capped {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use serde_json::json;

    fn event() -> Event {
        Event::new(
            "e1".into(),
            "attacker.observed".into(),
            "2026-04-24T10:00:00+00:00".into(),
            "first_sighting".into(),
            json!({"attacker_ip": "203.0.113.7", "ua": "a \"quoted\"\n</x>"}),
        )
    }

    fn render(source: &str) -> Result<String, ShapeError> {
        let body = Compiled::new(source)?.render(&event().body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn values_print_as_json_and_output_is_sorted_compact() {
        let out = render("{\n  \"ua\": {{ payload.ua }},\n  \"at\": {{ ts }}, \"v\": {{ v }}\n}")
            .unwrap();
        assert_eq!(
            out,
            r#"{"at":"2026-04-24T10:00:00+00:00","ua":"a \"quoted\"\n</x>","v":1}"#
        );
        assert_eq!(
            render("{{ payload }}").unwrap(),
            r#"{"attacker_ip":"203.0.113.7","ua":"a \"quoted\"\n</x>"}"#
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Compiled::new("{\n\"a\": {{ id }},\n\"b\": {% if %}\n}").unwrap_err();
        assert!(
            matches!(err, ShapeError::Syntax { line: Some(3), .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("template syntax error on line 3: unexpected"),
            "{err}"
        );
        let err = Compiled::new("{{ id ").unwrap_err();
        assert_eq!(err.line(), Some(1), "{err}");
    }

    #[test]
    fn output_that_is_not_json_is_an_error() {
        let err = render("hello {{ id }}").unwrap_err();
        assert!(matches!(err, ShapeError::NotJson(_)), "{err:?}");
        // Quoting a value prints its JSON inside quotes: not JSON either.
        assert!(matches!(
            render("\"{{ id }}\""),
            Err(ShapeError::NotJson(_))
        ));
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let src =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}1";
        assert_eq!(render(src).unwrap_err(), ShapeError::OutOfFuel);
    }

    #[test]
    fn oversize_output_is_refused() {
        let src = "[{% for i in range(200) %}{{ \"x\" * 2000 }},{% endfor %}0]";
        assert_eq!(render(src).unwrap_err(), ShapeError::OutputTooLarge);
    }

    #[test]
    fn oversize_source_is_refused() {
        let src = " ".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(
            Compiled::new(&src),
            Err(ShapeError::TemplateTooLarge { .. })
        ));
    }

    #[test]
    fn nothing_can_be_included() {
        let err = render("{% include \"other\" %}").unwrap_err();
        assert!(
            matches!(err, ShapeError::Render { line: Some(1), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn runtime_errors_name_the_line() {
        let err = render("{\n\"x\": {{ payload.nope.deeper }}\n}").unwrap_err();
        assert!(
            matches!(err, ShapeError::Render { line: Some(2), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn missing_fields_print_null_and_can_be_guarded() {
        assert_eq!(
            render("[{{ payload.nope }}, {{ (payload.nope or {}).deeper }}]").unwrap(),
            "[null,null]"
        );
    }
}
