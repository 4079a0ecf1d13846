//! One error type for the whole of weir, so the binary can print a cause chain, choose an exit code and the scheduler
//! can decide on a retry without ever matching on message strings.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who has to act on an error, and so whether running the same work again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The pipeline or project file, the command line or a query is wrong: fix it and run again.
    Configuration,
    /// The input data cannot be read as declared or breaks a rule the pipeline states.
    Data,
    /// A service or storage outside weir failed (network, a database, object storage, a command's exit): it may
    /// work on a retry.
    External,
    /// A bug in weir: please report it.
    Internal,
}

impl Domain {
    /// Why an error of this domain is not retried, for logs.
    pub fn not_retried_because(self) -> &'static str {
        match self {
            Domain::Configuration => "a configuration error fails the same way every time",
            Domain::Data => "the input data fails the same way every time until it is corrected",
            Domain::External => "the failure says that running it again cannot help",
            Domain::Internal => "an internal error (a bug in weir; please report it) fails the same way every time",
        }
    }
}

/// Whether running the same work again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    Never,
    Retryable,
}

/// Where in a file an error happened. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                write!(f, "{}:{}", file.display(), line)?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
                Ok(())
            }
            (Some(file), None) => write!(f, "{}", file.display()),
            (None, Some(line)) => write!(f, "line {line}"),
            (None, None) => Ok(()),
        }
    }
}

/// `file:line: ` before a message, or nothing when the place is unknown.
fn prefix(location: &Location) -> String {
    let text = location.to_string();
    if text.is_empty() {
        text
    } else {
        format!("{text}: ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem (pipeline or project file); `weir validate` reports these.
    #[error("{}{message}", prefix(.location))]
    Config { location: Location, message: String },

    /// Input data that cannot be read as declared: names the file, line, column (field) and value.
    #[error("{}{message}", prefix(.location))]
    Data { location: Location, message: String },

    /// A SQL statement or expression that does not plan or does not run.
    #[error("{context}: {message}")]
    Sql { context: String, message: String },

    /// File system or object store failure.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A failure inside an engine (DataFusion, Arrow, Parquet) that is not the user's data.
    #[error("{context}: {message}")]
    Engine { context: String, message: String, retry: RetryHint },

    /// A system or program outside weir failed (a shell command's exit status, a webhook's answer, a timeout, a
    /// database, object storage or an HTTP service); `retry` says whether trying again may help.
    #[error("{context}: {message}")]
    External { context: String, message: String, retry: RetryHint },

    /// A task was not run because an upstream task failed.
    #[error("not run: upstream task `{upstream}` failed")]
    UpstreamFailed { upstream: String },
}

impl Error {
    pub fn config(location: Location, message: impl Into<String>) -> Self {
        Error::Config { location, message: message.into() }
    }

    pub fn data(location: Location, message: impl Into<String>) -> Self {
        Error::Data { location, message: message.into() }
    }

    pub fn sql(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Sql { context: context.into(), message: message.into() }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// A system outside weir failed in a way that may pass (a timeout, a refused connection, a 503).
    pub fn external(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::External { context: context.into(), message: message.into(), retry: RetryHint::Retryable }
    }

    /// A system outside weir refused the work in a way that a retry cannot change (a 401, a missing bucket).
    pub fn external_final(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::External { context: context.into(), message: message.into(), retry: RetryHint::Never }
    }

    /// An internal failure: a bug in weir, never retried.
    pub fn engine(context: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Engine { context: context.into(), message: message.to_string(), retry: RetryHint::Never }
    }

    pub fn domain(&self) -> Domain {
        match self {
            Error::Config { .. } | Error::Sql { .. } => Domain::Configuration,
            Error::Data { .. } => Domain::Data,
            Error::Io { .. } | Error::External { .. } | Error::UpstreamFailed { .. } => Domain::External,
            Error::Engine { .. } => Domain::Internal,
        }
    }

    /// Whether the same work may succeed when run again: what the scheduler, `weir run`, the stream supervisor and
    /// the REST client decide retries from.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => RetryHint::Never,
                _ => RetryHint::Retryable,
            },
            Error::Engine { retry, .. } | Error::External { retry, .. } => *retry,
            Error::Config { .. } | Error::Data { .. } | Error::Sql { .. } | Error::UpstreamFailed { .. } => {
                RetryHint::Never
            }
        }
    }
}

/// An error with its causes, as one line: libraries' own messages often leave out what went wrong underneath
/// (reqwest's "error sending request", tokio-postgres' "error performing TLS handshake").
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(&format!(": {more}"));
        }
        cause = c.source();
    }
    text
}

/// Whether `e` or one of its causes is a `T`, also inside an `io::Error` that carries it (as TLS streams report
/// their errors).
pub fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let inside_io =
            c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<T>());
        if c.is::<T>() || inside_io {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prints_file_line_and_column() {
        let loc = Location { file: Some("pipelines/orders.yaml".into()), line: Some(12), column: Some(5) };
        assert_eq!(loc.to_string(), "pipelines/orders.yaml:12:5");
        let err = Error::config(loc, "unknown key `pth`");
        assert_eq!(err.to_string(), "pipelines/orders.yaml:12:5: unknown key `pth`");
        assert_eq!(err.domain(), Domain::Configuration);
    }

    #[test]
    fn missing_files_are_not_retried_but_other_io_is() {
        let missing = Error::io("read x", std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(missing.retry_hint(), RetryHint::Never);
        let reset = Error::io("read x", std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(reset.retry_hint(), RetryHint::Retryable);
    }
}
