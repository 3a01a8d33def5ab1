//! The process's log: `tracing` events as text or JSON lines on stdout,
//! each naming the node, with a level filter that a configuration reload
//! can replace.

use std::sync::Arc;

use quiver_config::{LogFormat, LoggingConfig};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};

use crate::LevelSetter;

/// Installs the global subscriber for `logging`, writing to `out`. Returns
/// what puts a new level filter into effect.
pub fn init<W>(logging: &LoggingConfig, node_id: &str, out: W) -> Result<Arc<LevelSetter>, String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_filter(&logging.level)?;
    let (filter, handle) = reload::Layer::new(filter);
    let json = logging.format == LogFormat::Json;
    let format = WithNode {
        node_id: node_id.to_string(),
        json,
        text: format::Format::default(),
        json_format: format::Format::default().json(),
    };
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(format)
        .with_writer(out);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        // Span fields recorded as JSON, as the JSON format expects.
        registry
            .with(output.fmt_fields(format::JsonFields::new()))
            .try_init()
    } else {
        registry.with(output).try_init()
    };
    installed.map_err(|e| e.to_string())?;
    Ok(Arc::new(move |level: &str| {
        let filter = parse_filter(level)?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// Whether `level` is a valid `[logging] level`.
pub(crate) fn check_level(level: &str) -> Result<(), String> {
    parse_filter(level).map(drop)
}

fn parse_filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("invalid logging.level {level:?}: {e}"))
}

/// Formats each event with tracing's own text or JSON format, then adds
/// the node id: as the first JSON field, or at the end of a text line.
struct WithNode {
    node_id: String,
    json: bool,
    text: format::Format<format::Full>,
    json_format: format::Format<format::Json>,
}

impl<S, N> FormatEvent<S, N> for WithNode
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        if self.json {
            self.json_format
                .format_event(ctx, Writer::new(&mut line), event)?;
            let node = serde_json::to_string(&self.node_id).map_err(|_| std::fmt::Error)?;
            match line.strip_prefix('{') {
                Some(rest) => write!(writer, "{{\"node_id\":{node},{rest}"),
                None => writer.write_str(&line),
            }
        } else {
            self.text.format_event(ctx, Writer::new(&mut line), event)?;
            let body = line.trim_end_matches('\n');
            writeln!(writer, "{body} node_id={}", self.node_id)
        }
    }
}
