//! The check of a plan's message templates (`communication.templates.<event>`), shared by lint
//! (here, so that every way a plan is read catches a broken override) and by `backout-notify`,
//! which renders them. Compiling is pure; rendering, with its notices, stays in `backout-notify`.

use minijinja::{Environment, Error, ErrorKind};

/// The top-level names a template can use: the fields of a notice (`backout_notify::Notice`).
pub const NOTICE_FIELDS: [&str; 11] = [
    "event", "event_id", "at", "release", "plan", "verdict", "decision", "run", "deciders",
    "links", "summary",
];

/// Compiles an override with the syntax `backout-notify` renders it with (standard Jinja) and
/// checks that every top-level name it uses is a field of a notice or a built-in global.
/// Whether a nested name such as `run.duration` exists depends on the event, so only rendering
/// can tell. The error carries the line (and, for syntax errors, the byte range) in `source`.
pub fn check(source: &str) -> Result<(), Error> {
    let mut env = Environment::new();
    env.set_debug(true);
    let template = env.template_from_str(source)?;
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !NOTICE_FIELDS.contains(&name.as_str()))
        .filter(|name| env.globals().all(|(global, _)| global != name))
        .collect();
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(name) => Err(Error::new(
            ErrorKind::UndefinedError,
            format!(
                "`{name}` is not a field of a notice (fields: {})",
                NOTICE_FIELDS.join(", ")
            ),
        )),
    }
}
