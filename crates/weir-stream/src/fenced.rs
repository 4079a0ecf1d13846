//! The error of a commit refused because this process no longer owns the partition it committed (a rebalance
//! while the batch was in flight, or a stall past `max.poll.interval.ms`): the runtime drops such a batch and starts
//! its partitions again from their last commit, where any other error stops the stream. Every sink and the Kafka
//! source build it here, so that one test tells it apart.

use weir_core::Error;

const PREFIX: &str = "fenced: ";

/// A refused commit of `context`, with why.
pub fn error(context: impl Into<String>, why: impl std::fmt::Display) -> Error {
    Error::external(context, format!("{PREFIX}{why}"))
}

/// Whether `e` is a refused commit (from a sink, the source, or a Delta table's compare-and-set).
pub fn is_fenced(e: &Error) -> bool {
    matches!(e, Error::External { message, .. } if message.starts_with(PREFIX)) || weir_lake::delta::is_fenced(e)
}
