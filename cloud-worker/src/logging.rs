//! Structured logging with `tracing`: human-readable text or one JSON object per line, on
//! standard error (standard output stays free for `--print-config`). Text lines are coloured
//! only when standard error is a terminal.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is not a valid `EnvFilter` directive list.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A global subscriber (or `log` logger) is already installed.
    #[error("logging is already initialized: {0}")]
    AlreadyInitialized(String),
}

fn parse_filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|error| LoggingError::InvalidFilter {
            filter: filter.to_owned(),
            reason: error.to_string(),
        })
}

/// A subscriber writing to `writer`, with ANSI colours in text lines if `ansi`.
fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_filter(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    Ok(match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        ),
    })
}

/// Installs the global subscriber: `format` lines on standard error, filtered by `filter`
/// (e.g. "info" or "info,flowcloud_worker=debug"). Also routes `log` records to it.
///
/// # Errors
///
/// [`LoggingError::InvalidFilter`], or [`LoggingError::AlreadyInitialized`] on a second call
/// (or when something else installed a subscriber first).
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let ansi = std::io::stderr().is_terminal();
    let subscriber = subscriber(format, filter, std::io::stderr, ansi)?;
    tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
        .map_err(|error| LoggingError::AlreadyInitialized(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_with(format: LogFormat, filter: &str) -> String {
        let capture = Capture::default();
        let sub = subscriber(format, filter, capture.clone(), false).unwrap();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("conn", stream = "cam-1");
            let _guard = span.enter();
            tracing::info!(frames = 3, "hello");
            tracing::debug!("hidden at info");
        });
        capture.text()
    }

    #[test]
    fn json_lines() {
        let out = log_with(LogFormat::Json, "info");
        let lines = out.lines().collect::<Vec<_>>();
        assert_eq!(lines.len(), 1, "{out}");
        let line = lines[0];
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        for part in [
            r#""level":"INFO""#,
            r#""message":"hello""#,
            r#""frames":3"#,
            r#""stream":"cam-1""#,
        ] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
    }

    #[test]
    fn text_lines_and_filter() {
        let out = log_with(LogFormat::Text, "info");
        assert!(
            out.contains("INFO") && out.contains("hello") && out.contains("frames=3"),
            "{out}"
        );
        assert!(!out.contains("hidden"), "{out}");
        let out = log_with(LogFormat::Text, "debug");
        assert!(out.contains("hidden at info"), "{out}");
        assert_eq!(log_with(LogFormat::Text, "warn"), "");
    }

    // The only test that touches the global subscriber.
    #[test]
    fn init_once() {
        let err = init(LogFormat::Text, "info,[[[").unwrap_err();
        assert!(matches!(err, LoggingError::InvalidFilter { .. }), "{err:?}");
        init(LogFormat::Json, "warn").unwrap();
        let err = init(LogFormat::Text, "info").unwrap_err();
        assert!(
            matches!(err, LoggingError::AlreadyInitialized(_)),
            "{err:?}"
        );
    }
}
