//! The daemons' log: `tracing` events formatted as the original's lines
//! (`[YYYY-MM-DD HH:MM:SS] LEVEL - message`) or as JSON lines, written by a
//! [`LogFile`] thread to `base_path/logs/<role>d.log`, stdout or stderr.
//! The level and format can change while running (SIGHUP).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use fdfs_config::{LogFormat, LogRotation};
use fdfs_util::json::push_json_string;
use fdfs_util::logfile::{LogFile, Rotation, Sink};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Where the daemon's log goes.
pub enum Destination {
    /// `base_path/logs/<name>`, rotated; `mirror_stderr` also writes each
    /// line to stderr (a daemon in the foreground on a terminal).
    File {
        path: std::path::PathBuf,
        rotation: LogRotation,
        mirror_stderr: bool,
    },
    Stdout,
}

struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    json: &'static AtomicBool,
    /// Set when RUST_LOG chose the filter: log_level then changes nothing.
    env_override: bool,
    sinks: Vec<LogFile>,
    file: Option<LogFile>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();
static JSON: AtomicBool = AtomicBool::new(false);

/// The rotation of a log file as the writer thread applies it.
pub fn rotation(r: &LogRotation) -> Rotation {
    Rotation {
        daily_at: r.rotate_daily.then_some(r.rotate_time),
        max_bytes: r.rotate_size_bytes,
        keep_days: r.keep_days,
    }
}

/// The `EnvFilter` directive of a `log_level` value: one of the original's
/// names, or (for `--log-level` and RUST_LOG users) a filter directive.
/// Unknown names give info, as the original's do.
fn directive(level: &str) -> String {
    if let Some(l) = fdfs_config::log::tracing_level(level) {
        return l.to_string();
    }
    if !level.trim().is_empty() && EnvFilter::try_new(level).is_ok() && level.contains('=') {
        return level.to_string();
    }
    "info".to_string()
}

/// Installs the process's log. Later calls change nothing (tests start
/// several daemons in one process through other paths).
pub fn init(level: &str, format: LogFormat, dest: Destination) -> Result<(), String> {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let env_override = env.is_some();
    let filter = EnvFilter::new(env.unwrap_or_else(|| directive(level)));
    let (filter, handle) = reload::Layer::new(filter);
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let mut sinks = Vec::new();
    let mut file = None;
    match dest {
        Destination::File {
            path,
            rotation: r,
            mirror_stderr,
        } => {
            let log = LogFile::open(Sink::File {
                path: path.clone(),
                rotation: rotation(&r),
                header: None,
            })
            .map_err(|e| format!("cannot open log {}: {e}", path.display()))?;
            sinks.push(log.clone());
            file = Some(log);
            if mirror_stderr {
                sinks.push(LogFile::open(Sink::Stderr).map_err(|e| e.to_string())?);
            }
        }
        Destination::Stdout => sinks.push(LogFile::open(Sink::Stdout).map_err(|e| e.to_string())?),
    }
    let lines = LineLayer {
        sinks: sinks.clone(),
        json: &JSON,
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init()
        .is_err()
    {
        return Ok(());
    }
    let _ = HANDLES.set(Handles {
        filter: handle,
        json: &JSON,
        env_override,
        sinks,
        file,
    });
    Ok(())
}

/// Whether [`init`] installed the log.
pub fn active() -> bool {
    HANDLES.get().is_some()
}

/// Applies a new `log_level` (SIGHUP). Err names why it was not applied.
pub fn set_level(level: &str) -> Result<(), String> {
    let Some(h) = HANDLES.get() else {
        return Ok(());
    };
    if h.env_override {
        return Err("RUST_LOG is set and takes precedence over log_level".to_string());
    }
    h.filter
        .reload(EnvFilter::new(directive(level)))
        .map_err(|e| e.to_string())
}

/// Applies a new `log_format` (SIGHUP).
pub fn set_format(format: LogFormat) {
    if let Some(h) = HANDLES.get() {
        h.json.store(format == LogFormat::Json, Ordering::Relaxed);
    }
}

/// Applies new rotation settings to the error log file (SIGHUP).
pub fn set_rotation(r: &LogRotation) {
    if let Some(f) = HANDLES.get().and_then(|h| h.file.as_ref()) {
        f.set_rotation(rotation(r));
    }
}

/// Waits until every line logged so far is written (at exit).
pub fn flush() {
    if let Some(h) = HANDLES.get() {
        for s in &h.sinks {
            s.flush();
        }
    }
}

/// Formats every event that passes the filter into one line per sink.
struct LineLayer {
    sinks: Vec<LogFile>,
    json: &'static AtomicBool,
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = fdfs_util::now_secs();
        let level = *event.metadata().level();
        let line = if self.json.load(Ordering::Relaxed) {
            json_line(now, level, &fields)
        } else {
            text_line(now, level, &fields)
        };
        let bytes = line.into_bytes();
        for s in &self.sinks {
            s.write_line(bytes.clone());
        }
    }
}

/// The original's level words.
fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// An event's message and its other fields, in order, each as text.
#[derive(Default)]
struct Fields {
    message: String,
    /// (name, value, value is a number or bool).
    others: Vec<(&'static str, String, bool)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.others.push((field.name(), text, false));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.others.push((field.name(), value.to_string(), false));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.others.push((field.name(), value.to_string(), true));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.others.push((field.name(), value.to_string(), true));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.others.push((field.name(), value.to_string(), true));
    }
}

/// Control characters escaped, so one event stays one line whatever text a
/// peer managed to get into it.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn text_line(now: i64, level: Level, f: &Fields) -> String {
    let mut out = String::with_capacity(64 + f.message.len());
    let _ = write!(
        out,
        "[{}] {} - ",
        fdfs_util::localtime::format_datetime(now),
        level_word(level)
    );
    push_escaped(&mut out, &f.message);
    for (name, value, _) in &f.others {
        out.push_str(if out.ends_with("- ") { "" } else { ", " });
        out.push_str(name);
        out.push_str(": ");
        push_escaped(&mut out, value);
    }
    out.push('\n');
    out
}

fn json_line(now: i64, level: Level, f: &Fields) -> String {
    let mut out = String::with_capacity(96 + f.message.len());
    out.push_str("{\"time\":");
    push_json_string(&mut out, &fdfs_util::localtime::format_datetime(now));
    out.push_str(",\"level\":");
    push_json_string(&mut out, level_word(level));
    out.push_str(",\"message\":");
    push_json_string(&mut out, &f.message);
    for (name, value, plain) in &f.others {
        if matches!(*name, "time" | "level" | "message") {
            continue;
        }
        out.push(',');
        push_json_string(&mut out, name);
        out.push(':');
        if *plain {
            out.push_str(value);
        } else {
            push_json_string(&mut out, value);
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            message: "connection refused\nforged".to_string(),
            others: vec![
                ("peer", "10.0.0.1".to_string(), false),
                ("held_back", "3".to_string(), true),
            ],
        }
    }

    #[test]
    fn text_lines_look_like_the_original() {
        let line = text_line(0, Level::WARN, &fields());
        let (stamp, rest) = line.split_at(22);
        assert!(stamp.starts_with('[') && stamp.ends_with("] "), "{line}");
        assert_eq!(
            rest,
            "WARNING - connection refused\\nforged, peer: 10.0.0.1, held_back: 3\n"
        );
    }

    #[test]
    fn json_lines_are_objects() {
        let line = json_line(0, Level::INFO, &fields());
        assert!(line.starts_with("{\"time\":\""), "{line}");
        assert!(line.ends_with(
            ",\"level\":\"INFO\",\"message\":\"connection refused\\nforged\",\"peer\":\"10.0.0.1\",\"held_back\":3}\n"
        ), "{line}");
    }

    #[test]
    fn level_names_map_to_filters() {
        assert_eq!(directive("crit"), "error");
        assert_eq!(directive("notice"), "info");
        assert_eq!(directive("nonsense"), "info");
        assert_eq!(directive("fdfs_storage=debug"), "fdfs_storage=debug");
    }
}
