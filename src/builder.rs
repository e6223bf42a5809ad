//! Configuration: [`Builder`], its validation, and the start of a sink.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::UtcOffset;

use crate::caller::clock::Clock;
use crate::caller::layer::LayerOptions;
use crate::error::ROTATED_SUFFIX_LEN;
use crate::faults::Hook;
use crate::files::compress::Compression;
use crate::files::folder::Folder;
use crate::files::janitor::Janitor;
use crate::files::retention::Retention;
use crate::files::rotation::{Period, Policy};
use crate::files::startup;
use crate::handoff::sender::Sender;
use crate::handoff::{queue, record};
use crate::stats::Shared;
use crate::writer::format::LineOptions;
use crate::writer::{Writer, WriterConfig};
use crate::{Error, Format, SinkGuard, SinkLayer};

/// The most events a queue may hold. The channel allocates its slots up front (about 80 bytes
/// each), so this caps that allocation near 330 MiB.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 22;

/// Recycled buffers kept beyond the queue's capacity: those in callers' stashes and in the
/// writer's hands.
const POOL_SLACK: usize = 4096;

/// What a caller does when the queue to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait until the writer makes room. Nothing is lost; a caller can be slowed down to the
    /// disk's speed. A waiting caller sleeps (it never spins) and goes on once a quarter of
    /// the queue is free, or after about 10 ms. The default.
    #[default]
    Block,
    /// Never wait: an event that finds the queue full is dropped and counted in
    /// [`Stats::events_dropped`](crate::Stats::events_dropped).
    DropNewest,
}

/// The entry point: `LogSink::builder()`.
///
/// ```no_run
/// # fn main() -> Result<(), logsink::Error> {
/// use tracing_subscriber::prelude::*;
///
/// let (layer, guard) = logsink::LogSink::builder().directory("logs").build()?;
/// tracing_subscriber::registry().with(layer).init();
/// tracing::info!(user = "ada", "logged in");
/// let stats = guard.shutdown_blocking()?;
/// assert_eq!(stats.events_written, 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LogSink {
    _private: (),
}

impl LogSink {
    /// A [`Builder`] with every setting at its default.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Configures and starts a sink. Consuming: each method takes and returns the builder.
///
/// | setting | default | refused by [`build`](Builder::build) |
/// |---|---|---|
/// | [`directory`](Builder::directory) | `logs` (created if missing) | empty; a path that exists and is not a directory; one that cannot be created |
/// | [`file_name`](Builder::file_name) | `app` (active file `logs/app.log`; `app.log` means the same) | empty; other characters than `[A-Za-z0-9._-]`; a leading `.`; too long for the folder's file system ([`Error::FileNameTooLong`]) |
/// | [`queue_capacity`](Builder::queue_capacity) | 65,536 events | 0, or above [`MAX_QUEUE_CAPACITY`] |
/// | [`queue_bytes`](Builder::queue_bytes) | 64 MiB of large events | 0 |
/// | [`overflow`](Builder::overflow) | [`Overflow::Block`] | — |
/// | [`flush_interval`](Builder::flush_interval) | 200 ms | — (`Duration::MAX` means never by time) |
/// | [`shutdown_timeout`](Builder::shutdown_timeout) | 10 s | zero |
/// | [`format`](Builder::format) | [`Format::Json`] | — |
/// | [`flatten_event`](Builder::flatten_event) (JSON) | `false` | — |
/// | [`with_current_span`](Builder::with_current_span) (JSON) | `true` | — |
/// | [`with_span_list`](Builder::with_span_list) (JSON) | `true` | — |
/// | [`with_target`](Builder::with_target) | `true` | — |
/// | [`with_level`](Builder::with_level) | `true` | — |
/// | [`with_thread_ids`](Builder::with_thread_ids) | `false` | — |
/// | [`with_thread_names`](Builder::with_thread_names) | `false` | — |
/// | [`with_file`](Builder::with_file) | `false` | — |
/// | [`with_line_number`](Builder::with_line_number) | `false` | — |
/// | [`with_file_and_line`](Builder::with_file_and_line) | shorthand for the two above | — |
/// | [`without_time`](Builder::without_time) | timestamps on | — |
/// | [`timestamp_offset`](Builder::timestamp_offset) | UTC (`Z`) | an offset with seconds (RFC 3339 cannot write it) |
/// | [`max_file_size`](Builder::max_file_size) | unlimited | 0 |
/// | [`rotate_every`](Builder::rotate_every) | never | — |
/// | [`utc_offset`](Builder::utc_offset) | UTC | — |
/// | [`names_in_utc_offset`](Builder::names_in_utc_offset) | `false` (names in UTC) | — |
/// | [`compression`](Builder::compression) | `Compression::Gzip { level: 6 }` | a gzip level above 9; a zstd level outside 1 to 22 (feature `zstd`) |
/// | [`compress_after`](Builder::compress_after) | zero (compressed at once) | — (a huge duration means never) |
/// | [`keep_files`](Builder::keep_files) | unlimited | 0 |
/// | [`max_total_size`](Builder::max_total_size) | unlimited | 0 |
/// | [`max_age`](Builder::max_age) | unlimited | zero |
/// | `file_mode` (Unix) | `0o644` less the umask | bits outside `0o7777` |
/// | `with_opentelemetry_ids` (feature `opentelemetry`) | `false` | — |
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder {
    directory: PathBuf,
    file_name: String,
    queue_capacity: usize,
    queue_bytes: usize,
    overflow: Overflow,
    /// The layer's options: format, span keys, thread part.
    pub(crate) layer: LayerOptions,
    /// The writer's options: fields, target, level, location and time.
    line: LineOptions,
    flush_interval: Duration,
    /// Rotation: `max_file_size`, `rotate_every` and `utc_offset`.
    rotation: Policy,
    compression: Compression,
    compress_after: Duration,
    /// Retention: `keep_files`, `max_total_size` and `max_age`.
    retention: Retention,
    file_mode: Option<u32>,
    shutdown_timeout: Duration,
    names_in_utc_offset: bool,
    /// Failures injected into the folder's operations (tests only; empty otherwise).
    hook: Hook,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            directory: PathBuf::from("logs"),
            file_name: "app".to_owned(),
            queue_capacity: 65_536,
            queue_bytes: 64 * 1024 * 1024,
            overflow: Overflow::Block,
            layer: LayerOptions::default(),
            line: LineOptions::default(),
            flush_interval: Duration::from_millis(200),
            rotation: Policy {
                max_file_size: None,
                period: None,
                offset: UtcOffset::UTC,
            },
            compression: Compression::default(),
            compress_after: Duration::ZERO,
            retention: Retention::default(),
            file_mode: None,
            shutdown_timeout: Duration::from_secs(10),
            names_in_utc_offset: false,
            hook: Hook::default(),
        }
    }
}

impl Builder {
    /// The folder for the log files; created (with its parents) by `build()` if missing.
    /// Default: `logs`, relative to the working directory.
    pub fn directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = directory.into();
        self
    }

    /// The base name of the files: the active file is `<directory>/<file_name>.log`, rotated
    /// files `<file_name>.<stamp>.<seq>.log`. Default: `app`.
    ///
    /// A name that ends in `.log` means the active file itself, as tracing-appender users
    /// write it: `file_name("app.log")` is the same as `file_name("app")` (the active file is
    /// `app.log`, not `app.log.log`).
    ///
    /// `build()` refuses a name with characters other than ASCII letters, digits, `.`, `_`
    /// and `-` (so that every name the sink makes is safe in a shell and a collector's glob),
    /// one that starts with `.` (hidden, and the lock file's form), and one too long for the
    /// file system once the rotated names' 35 bytes are added ([`Error::FileNameTooLong`]).
    pub fn file_name(mut self, file_name: impl Into<String>) -> Self {
        self.file_name = file_name.into();
        self
    }

    /// How many events the queue between callers and the writer holds. Default: 65,536.
    /// `build()` refuses 0 and values above [`MAX_QUEUE_CAPACITY`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Bounds the queue's memory in bytes as well as in events: events larger than 4 KiB
    /// may occupy at most `bytes` of the queue together (one event larger than that still
    /// passes, alone). When the budget is spent, the [`overflow`](Builder::overflow) policy
    /// applies as for a full queue. Default: 64 MiB. `build()` refuses 0.
    ///
    /// With it, the queue holds at most `queue_capacity` × 4 KiB of small events plus `bytes`
    /// of large ones: a burst of huge events cannot grow memory without limit.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// What a caller does when the queue is full. Default: [`Overflow::Block`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The longest an accepted event waits in the writer's buffer before it is handed to the
    /// OS. Default: 200 ms. `Duration::ZERO` hands over every batch at once. The buffer is also
    /// written whenever it reaches 256 KiB, and on [`SinkGuard::flush`].
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The longest a shutdown ([`SinkGuard::shutdown`], [`SinkGuard::shutdown_blocking`],
    /// `Drop` of the guard, [`ScopedSink::run`](crate::ScopedSink::run)) waits for the writer.
    /// Default: 10 seconds. `build()` refuses zero.
    ///
    /// Within the first half, shutdown retries a failing write (then counts what it could not
    /// write as dropped and returns the error) and finishes compressions in progress (files
    /// still waiting stay `.log` and are compressed at the next start). If the writer has
    /// still not answered when the time is up (a `write` that never returns: a stalled disk,
    /// a hung NFS mount), shutdown returns [`Error::ShutdownTimeout`] with the number of
    /// accepted events not confirmed written, counts them as dropped, and leaves the writer
    /// thread behind, detached: the host program is never held hostage by its disk.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How each event is written: [`Format::Json`] (the default) or [`Format::Text`].
    pub fn format(mut self, format: Format) -> Self {
        self.layer.format = format;
        self
    }

    /// JSON: write the event's fields as members of the line's object itself rather than
    /// under a `"fields"` key, as tracing-subscriber's `flatten_event(true)` does (a field named
    /// like a key of the line, `level` say, then appears twice, as there). Default: `false`.
    /// [`Format::Text`] ignores it.
    pub fn flatten_event(mut self, enabled: bool) -> Self {
        self.line.flatten_event = enabled;
        self
    }

    /// JSON: write the `span` key, the event's span (its explicit parent, else the current
    /// span) with its fields, as tracing-subscriber's `with_current_span` does. Default: `true`.
    /// [`Format::Text`] ignores it, as tracing-subscriber's text format has no such option.
    pub fn with_current_span(mut self, enabled: bool) -> Self {
        self.layer.json_spans.current = enabled;
        self
    }

    /// JSON: write the `spans` key, the current span's scope from root to leaf, as
    /// tracing-subscriber's `with_span_list` does. Default: `true`. [`Format::Text`] ignores
    /// it.
    pub fn with_span_list(mut self, enabled: bool) -> Self {
        self.layer.json_spans.list = enabled;
        self
    }

    /// Write each event's target (the `target` key in JSON, `target: ` in text), as
    /// tracing-subscriber's `with_target` does. Default: `true`.
    pub fn with_target(mut self, enabled: bool) -> Self {
        self.line.target = enabled;
        self
    }

    /// Write each event's level (the `level` key in JSON, the padded level in text), as
    /// tracing-subscriber's `with_level` does. Default: `true`.
    pub fn with_level(mut self, enabled: bool) -> Self {
        self.line.level = enabled;
        self
    }

    /// Write the id of the thread that emitted each event, as tracing-subscriber's
    /// `with_thread_ids` does: `"threadId":"ThreadId(7)"` in JSON, `ThreadId(07)` in text.
    /// Default: `false`. The id is taken once per thread, not per event.
    pub fn with_thread_ids(mut self, enabled: bool) -> Self {
        self.layer.thread_ids = enabled;
        self
    }

    /// Write the name of the thread that emitted each event, as tracing-subscriber's
    /// `with_thread_names` does: the `threadName` key in JSON, the name right-aligned in text.
    /// A thread without a name shows its id instead, unless
    /// [`with_thread_ids`](Builder::with_thread_ids) already writes it. Default: `false`.
    pub fn with_thread_names(mut self, enabled: bool) -> Self {
        self.layer.thread_names = enabled;
        self
    }

    /// Write the source file of each event (the `filename` key in JSON, `file:` in text), as
    /// tracing-subscriber's `with_file` does. Default: `false`.
    pub fn with_file(mut self, enabled: bool) -> Self {
        self.line.file = enabled;
        self
    }

    /// Write the source line of each event (the `line_number` key in JSON, `line:` in text), as
    /// tracing-subscriber's `with_line_number` does. Default: `false`.
    pub fn with_line_number(mut self, enabled: bool) -> Self {
        self.line.line_number = enabled;
        self
    }

    /// Shorthand for [`with_file`](Builder::with_file) and
    /// [`with_line_number`](Builder::with_line_number) with the same value, like
    /// tracing-subscriber's `with_source_location`. Default: `false`.
    pub fn with_file_and_line(self, enabled: bool) -> Self {
        self.with_file(enabled).with_line_number(enabled)
    }

    /// Write no timestamp (no `timestamp` key in JSON, no leading time in text), as
    /// tracing-subscriber's `without_time` does. Default: timestamps on.
    pub fn without_time(mut self) -> Self {
        self.line.time = false;
        self
    }

    /// Write timestamps in this offset from UTC: RFC 3339 with microseconds and the offset,
    /// `2026-11-24T16:26:18.169272+02:00`, as tracing-subscriber's
    /// `with_timer(OffsetTime::new(offset, Rfc3339))` writes the offset (and `Z` for a zero
    /// one). A fixed offset: it does not follow daylight-saving changes. Default: UTC,
    /// `2026-11-24T14:26:18.169272Z`, as tracing-subscriber's default timer writes it.
    /// `build()` refuses an offset with seconds, which RFC 3339 cannot write.
    ///
    /// It changes the lines only; rotation follows [`utc_offset`](Builder::utc_offset).
    pub fn timestamp_offset(mut self, offset: UtcOffset) -> Self {
        self.line.offset = offset;
        self
    }

    /// Rotate before the active file would exceed `bytes`. A single event larger than this gets
    /// a file of its own. Default: no size limit. `build()` refuses 0.
    ///
    /// Combines with [`rotate_every`](Builder::rotate_every): whichever comes first.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.rotation.max_file_size = Some(bytes);
        self
    }

    /// Rotate at every boundary of `period` (in the [`utc_offset`](Builder::utc_offset)),
    /// measured on the wall clock. A program started after a boundary rotates a stale active
    /// file at start-up. Default: no time rotation.
    pub fn rotate_every(mut self, period: Period) -> Self {
        self.rotation.period = Some(period);
        self
    }

    /// The offset in which [`rotate_every`](Builder::rotate_every)'s boundaries fall: with
    /// `Period::Day` and `+02:00`, files rotate at local midnight. A fixed offset: it does not
    /// follow daylight-saving changes. Default: UTC. Rotated file names are always UTC; the
    /// timestamps in the lines follow [`timestamp_offset`](Builder::timestamp_offset).
    pub fn utc_offset(mut self, offset: UtcOffset) -> Self {
        self.rotation.offset = offset;
        self
    }

    /// Write rotated names in the [`utc_offset`](Builder::utc_offset), marked with it, instead
    /// of UTC: `app.20261124T162618+0200.000000.log` rather than
    /// `app.20261124T142618Z.000000.log`. Default: `false` (UTC).
    ///
    /// For a fixed offset the names sort, as plain strings, in write order, as UTC names do.
    /// If the offset changes between runs (a daylight-saving change made by hand), new names
    /// still continue after the newest file by time, no name repeats, and retention still
    /// deletes in write order (it compares the times in the names, not the strings); but
    /// sorting by name may interleave the two offsets' files until the older ones age out.
    /// The longest file name then has 4 more bytes (see
    /// [`file_name`](Builder::file_name)).
    pub fn names_in_utc_offset(mut self, enabled: bool) -> Self {
        self.names_in_utc_offset = enabled;
        self
    }

    /// How rotated files are compressed, off the writer thread (a file in parallel pieces on up
    /// to four threads, no more than there are CPUs). Default:
    /// `Compression::Gzip { level: 6 }`. `build()` refuses a gzip level above 9, and a zstd
    /// level (feature `zstd`) outside 1 to 22.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Leave each rotated file plain (`.log`) for at least `delay` after its rotation before
    /// compressing it, as logrotate's `delaycompress` does: collectors that tail the rotated
    /// names by glob (Vector's `file` source, Fluent Bit's `tail` with `Rotate_Wait`) read a
    /// file to its end under its rotated name before it turns into a `.gz`. Default: zero
    /// (compressed as soon as the compressor is free).
    ///
    /// The delay runs on the wall clock from the rotation; for a file found plain at start-up
    /// (the last run ended before its delay had passed), from its last modification. Shutdown
    /// does not wait for it: files still within their delay stay plain and whole, and the next
    /// start compresses them once their delay has passed. Retention is unchanged: every
    /// rotated file but the two newest waiting for compression counts toward
    /// [`keep_files`](Builder::keep_files), [`max_total_size`](Builder::max_total_size) (at
    /// its plain size while it waits) and [`max_age`](Builder::max_age), and may be deleted
    /// before it was compressed (counted in
    /// [`Stats::files_deleted_uncompressed`](crate::Stats::files_deleted_uncompressed)): leave
    /// room for the files that rotate within `delay`. Any duration is accepted: with
    /// [`Compression::None`] it changes nothing, and one too long for the clock means never.
    pub fn compress_after(mut self, delay: Duration) -> Self {
        self.compress_after = delay;
        self
    }

    /// Keep at most `count` rotated files (compressed or not), deleting the oldest. The
    /// active file is not counted. Default: unlimited. `build()` refuses 0.
    pub fn keep_files(mut self, count: usize) -> Self {
        self.retention.keep_files = Some(count);
        self
    }

    /// Keep rotated files (compressed or not) totalling at most `bytes`, deleting the oldest.
    /// The active file is not counted. Default: unlimited. `build()` refuses 0.
    pub fn max_total_size(mut self, bytes: u64) -> Self {
        self.retention.max_total_size = Some(bytes);
        self
    }

    /// Delete rotated files last written more than `age` ago. Default: unlimited. `build()`
    /// refuses a zero duration.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.retention.max_age = Some(age);
        self
    }

    /// The permission bits (e.g. `0o600`) of files the sink creates from scratch: the first
    /// active file, when none exists. Set exactly, not reduced by the umask. Default: `0o644`
    /// less the process's umask.
    ///
    /// Files that replace or derive from another keep that file's mode whatever this says: a
    /// new active file after rotation gets the mode of the one it replaces, a rotated file
    /// keeps its mode, and a compressed `.gz` gets the mode of its `.log`. So an operator who
    /// `chmod 600`s the active file keeps every later file private. `build()` refuses bits
    /// outside `0o7777`.
    #[cfg(unix)]
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = Some(mode);
        self
    }

    /// Makes the sink's file operations fail on command (tests only).
    #[cfg(test)]
    pub(crate) fn faults(mut self, faults: Arc<crate::faults::Faults>) -> Self {
        self.hook = Hook::new(faults);
        self
    }

    /// Checks the settings, creates the directory, takes the folder's lock for this file name,
    /// opens the active file, and starts the writer thread. The first `build` in a process also calibrates the CPU's time counter,
    /// which callers read to stamp events (200 ms at most).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a refused value (see the table on [`Builder`]),
    /// [`Error::FileNameTooLong`], [`Error::InUse`] when another sink writes this folder and
    /// file name, [`Error::NotADirectory`], [`Error::CreateDirectory`], [`Error::Open`] (also
    /// for an active file that is a symlink, FIFO, socket, device or folder), or
    /// [`Error::SpawnThread`]. A refused build writes, renames and deletes nothing.
    pub fn build(self) -> Result<(SinkLayer, SinkGuard), Error> {
        self.build_with_clock(Clock::system())
    }

    /// [`build`](Builder::build) with a chosen clock (tests pass a mock): wires the parts
    /// together, each made by its own module, in the order that start-up needs.
    pub(crate) fn build_with_clock(self, clock: Clock) -> Result<(SinkLayer, SinkGuard), Error> {
        self.validate()?;
        // The lock comes first: until it is held, nothing in the folder is touched.
        let folder = Arc::new(Folder::open(
            &self.directory,
            self.base_name(),
            self.rotated_suffix_len(),
            self.hook.clone(),
        )?);
        let shared = Arc::new(Shared::default());
        let (active, preamble) = startup::open_active(
            folder.clone(),
            self.rotation,
            self.names_in_utc_offset.then_some(self.rotation.offset),
            self.file_mode,
            clock.now(),
            &shared,
        )?;
        // The janitor starts before the writer can rotate anything, and recovers the folder
        // (including a stale file just rotated) before it takes new work.
        let janitor = Janitor::spawn(
            folder,
            self.compression,
            self.compress_after,
            self.retention,
            clock.clone(),
            shared.clone(),
        )?;
        let (tx, control, inbox, queue_len) = queue::queue(self.queue_capacity);
        // Room for as many buffers as can be in flight, so that steady state never allocates.
        let (giver, taker) = record::pool(self.queue_capacity + POOL_SLACK);
        let writer = Writer::new(WriterConfig {
            pool: giver,
            shared: shared.clone(),
            active,
            preamble,
            janitor,
            clock: clock.clone(),
            flush_interval: self.flush_interval,
            shutdown_timeout: self.shutdown_timeout,
            format: self.layer.format,
            line: self.line,
        })
        .spawn(inbox)?;
        let sender = Sender::new(
            tx,
            taker,
            shared.clone(),
            self.overflow,
            self.queue_bytes,
            writer.clone(),
        );
        Ok((
            SinkLayer::new(sender, clock, self.layer),
            SinkGuard::new(control, queue_len, shared, writer, self.shutdown_timeout),
        ))
    }

    /// What rotated names add to the file name: `.<stamp>.<seq>.log.gz.tmp`, with a stamp of 16
    /// bytes in UTC (`Z`) or 20 with an offset (`+0200`).
    fn rotated_suffix_len(&self) -> usize {
        ROTATED_SUFFIX_LEN
            + if self.names_in_utc_offset { 4 } else { 0 }
            + crate::files::compress::Codec::of(self.compression)
                .map_or(0, |codec| codec.suffix().len() - ".gz".len())
    }

    /// The sink's base name: [`file_name`](Builder::file_name) without a trailing `.log`.
    fn base_name(&self) -> &str {
        self.file_name
            .strip_suffix(".log")
            .unwrap_or(&self.file_name)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.directory.as_os_str().is_empty() {
            return Err(Error::invalid(
                "directory",
                &self.directory,
                "must not be empty; use \".\" for the working directory",
            ));
        }
        let name = &self.file_name;
        if self.base_name().is_empty() {
            return Err(Error::invalid(
                "file_name",
                name,
                "must be a plain, non-empty file name",
            ));
        }
        if name.contains(['/', '\\', '\0']) {
            return Err(Error::invalid(
                "file_name",
                name,
                "must not contain a path separator or NUL; use `directory` for the folder",
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(Error::invalid(
                "file_name",
                name,
                "may contain only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if name.starts_with('.') {
            return Err(Error::invalid(
                "file_name",
                name,
                "must not start with '.' (hidden files, and the form of the sink's lock file)",
            ));
        }
        if self.retention.max_total_size == Some(0) {
            return Err(Error::invalid(
                "max_total_size",
                0,
                "must be at least 1 byte; leave it unset to keep files of any total size",
            ));
        }
        if self.queue_capacity == 0 {
            return Err(Error::invalid("queue_capacity", 0, "must be at least 1"));
        }
        if self.queue_bytes == 0 {
            return Err(Error::invalid("queue_bytes", 0, "must be at least 1"));
        }
        if self.rotation.max_file_size == Some(0) {
            return Err(Error::invalid(
                "max_file_size",
                0,
                "must be at least 1 byte",
            ));
        }
        if self.retention.keep_files == Some(0) {
            return Err(Error::invalid(
                "keep_files",
                0,
                "must be at least 1; leave it unset to keep every file",
            ));
        }
        match self.compression {
            Compression::Gzip { level } if level > 9 => {
                return Err(Error::invalid("gzip level", level, "must be 0 to 9"));
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd { level }
                if !crate::files::compress::ZSTD_LEVELS.contains(&level) =>
            {
                return Err(Error::invalid("zstd level", level, "must be 1 to 22"));
            }
            _ => {}
        }
        if self.shutdown_timeout.is_zero() {
            return Err(Error::invalid(
                "shutdown_timeout",
                Duration::ZERO,
                "must be longer than zero",
            ));
        }
        if self.retention.max_age == Some(Duration::ZERO) {
            return Err(Error::invalid(
                "max_age",
                Duration::ZERO,
                "must be longer than zero; leave it unset to keep files of any age",
            ));
        }
        if let Some(mode) = self.file_mode {
            if mode > 0o7777 {
                return Err(Error::invalid(
                    "file_mode",
                    format_args!("{mode:#o}"),
                    "must be permission bits, at most 0o7777",
                ));
            }
        }
        if self.line.offset.seconds_past_minute() != 0 {
            return Err(Error::invalid(
                "timestamp_offset",
                format_args!("{}", self.line.offset),
                "must be whole minutes: RFC 3339 timestamps cannot show seconds of offset",
            ));
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(Error::invalid(
                "queue_capacity",
                self.queue_capacity,
                "must be at most MAX_QUEUE_CAPACITY (4,194,304)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::clock::MockClock;
    use std::fs;
    use std::time::UNIX_EPOCH;
    use tracing_subscriber::prelude::*;

    /// `build()` refuses a timestamp offset with seconds, which RFC 3339 cannot write, and
    /// takes whole minutes.
    #[test]
    fn timestamp_offsets_must_be_whole_minutes() {
        let tmp = tempfile::tempdir().unwrap();
        let with_offset = |h, m, s| {
            LogSink::builder()
                .directory(tmp.path())
                .timestamp_offset(UtcOffset::from_hms(h, m, s).unwrap())
                .build()
                .map(drop)
        };
        let refused = with_offset(1, 0, 30).unwrap_err();
        assert!(
            matches!(
                refused,
                Error::InvalidConfig {
                    setting: "timestamp_offset",
                    ..
                }
            ),
            "{refused:?}"
        );
        with_offset(-9, -30, 0).unwrap();
    }

    /// The timestamp on each line is the injected clock's time when the event was emitted, not
    /// the writer's time.
    #[test]
    fn events_carry_the_clock_time_of_the_call() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = MockClock::new(UNIX_EPOCH + Duration::new(1_795_962_378, 169_272_000));
        let (layer, guard) = LogSink::builder()
            .directory(tmp.path())
            .build_with_clock(Clock::Mock(clock.clone()))
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!("first");
            clock.advance(Duration::from_micros(1_830_728));
            tracing::info!("second");
            clock.set(UNIX_EPOCH + Duration::from_secs(86_400 * 365));
            tracing::info!("third");
        });
        guard.shutdown_blocking().unwrap();
        let text = fs::read_to_string(tmp.path().join("app.log")).unwrap();
        let stamps: Vec<_> = text
            .lines()
            .map(|line| line.split('"').nth(3).unwrap().to_owned())
            .collect();
        assert_eq!(
            stamps,
            [
                "2026-11-29T14:26:18.169272Z",
                "2026-11-29T14:26:20.000000Z",
                "1971-01-01T00:00:00.000000Z"
            ]
        );
    }
}
