//! An asynchronous, structured logging sink for [`tracing`].
//!
//! `logsink` is a [`tracing_subscriber::Layer`] that writes one JSON object (or, with
//! [`Format::Text`], one human-readable line) per event to a file, from a background thread,
//! and rotates, compresses and prunes its files:
//!
//! - **The caller pays little.** The layer copies the event's values into a recycled buffer and
//!   pushes it through a bounded, lock-free channel (`crossbeam-channel`); formatting, JSON
//!   escaping and all file I/O happen on the writer thread.
//! - **Nothing is lost silently.** By default a full queue makes the caller wait
//!   ([`Overflow::Block`]); [`Overflow::DropNewest`] never waits and counts every drop. The
//!   [`SinkGuard`] drains, flushes and closes the file on `Drop`, on
//!   [`shutdown_blocking`](SinkGuard::shutdown_blocking), or asynchronously on
//!   [`shutdown().await`](SinkGuard::shutdown).
//! - **Tools read it as it is.** Each line is the same JSON value that
//!   `tracing_subscriber::fmt::layer().json()` writes for the event (keys `timestamp`, `level`,
//!   `fields`, `target`, `span`, `spans`), with an RFC 3339 UTC timestamp in microseconds; its
//!   formatting options (`flatten_event`, `with_thread_ids`, `without_time`...) are on
//!   [`Builder`] under the same names.
//! - **Files take care of themselves.** The active file `<file_name>.log` rotates by size
//!   and/or time ([`Builder::max_file_size`], [`Builder::rotate_every`]) to names that sort in
//!   write order; rotated files are gzip-compressed (or zstd, with the `zstd` feature) off
//!   the writer thread, in parallel pieces on up to four threads ([`Compression`]), and
//!   pruned by count, total size and age; a crash is repaired at the next start.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("logs");
//! let (layer, guard) = logsink::LogSink::builder()
//!     .directory(&dir)                 // created if missing
//!     .file_name("app")                // writes <dir>/app.log
//!     .flush_interval(Duration::from_millis(200))
//!     .build()?;
//! let subscriber = tracing_subscriber::registry().with(layer);
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", id = 7);
//!     let _entered = span.enter();
//!     tracing::info!(status = 200, "done");
//! });
//!
//! let stats = guard.shutdown_blocking()?; // every event is in the file now
//! assert_eq!(stats.events_written, 1);
//! let text = std::fs::read_to_string(dir.join("app.log"))?;
//! assert!(text.contains(r#""fields":{"message":"done","status":200}"#));
//! assert!(text.contains(r#""span":{"id":7,"name":"request"}"#));
//! # Ok(()) }
//! ```
//!
//! A program usually installs the layer globally with
//! `tracing_subscriber::registry().with(layer).init()` and keeps the guard in `main` until it
//! returns. [`Builder::build_scoped`] gives a [`ScopedSink`] instead, which owns the sink's
//! life around one future or closure. [`Builder::build_writer`] gives a [`SinkWriter`]: a
//! `tracing_subscriber::fmt::MakeWriter` that takes lines formatted by someone else (such as
//! `fmt::layer().with_writer(writer)`) through the same queue, rotation and compression.
//!
//! # Guarantees
//!
//! - Every event accepted by the layer is in the file once the guard's shutdown returns `Ok`
//!   (or `Drop` finishes); the file is then synced and closed.
//! - Every event emitted is either written or counted in [`Stats::events_dropped`]: refused by
//!   a full queue under `DropNewest` (the writer also reports these in the log itself, as a
//!   WARN line from target `logsink`), emitted after shutdown began, or unwritable at shutdown
//!   (then shutdown returns the error). An event whose `Debug` impl panics is neither: the
//!   panic is the caller's, and the event was never accepted.
//! - An accepted event reaches the operating system within the
//!   [`flush_interval`](Builder::flush_interval), or at once with [`SinkGuard::flush`]. A
//!   process killed with `SIGKILL` loses at most that interval's events; one that calls
//!   `std::process::exit` or aborts never runs `Drop`, so call `flush` (or shut down) first.
//! - A failed write never reaches the host program: it is counted, kept as
//!   [`Stats::last_error`], reported on stderr at most once per 10 seconds per kind, and
//!   retried with backoff; the lines wait in memory (bounded), a deleted folder or active file
//!   is created again, and with [`Overflow::Block`] nothing is lost once the disk recovers.
//! - Memory is bounded: the queue holds at most [`Builder::queue_capacity`] events, and events
//!   over 4 KiB at most [`Builder::queue_bytes`] together; the calling thread allocates nothing
//!   per event in steady state.
//! - One sink per folder and file name: [`Builder::build`] locks them, and a second sink (in
//!   this process or another) gets [`Error::InUse`] and touches nothing. The sink never writes
//!   outside its folder, never through a symlink, and never replaces a file.
//! - Shutdown takes at most about [`Builder::shutdown_timeout`], whatever the disk does
//!   ([`Error::ShutdownTimeout`] says what was not confirmed written).
//! - Retention bounds the folder at every rotation, however far compression lags.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

// The public API: configuration, the guard, scoped use, counters, errors, the `MakeWriter`.
mod builder;
mod error;
mod guard;
mod make_writer;
mod scope;
mod stats;

// The pipeline, one folder per stage: an event goes caller → handoff → writer → files.
mod caller;
mod files;
mod handoff;
mod writer;

// Helpers that several stages use: time and calendar, JSON values, text escaping.
mod calendar;
mod json;
mod text_escape;

mod faults;
#[cfg(test)]
mod tests;

// The README's Rust snippets are compiled (and the runnable ones run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use builder::{Builder, LogSink, Overflow, MAX_QUEUE_CAPACITY};
pub use caller::layer::SinkLayer;
pub use error::Error;
pub use files::compress::Compression;
pub use files::rotation::Period;
pub use guard::SinkGuard;
pub use make_writer::{EventWriter, SinkWriter};
pub use scope::ScopedSink;
pub use stats::{Stats, StatsHandle};
pub use time::UtcOffset;
pub use writer::format::Format;
