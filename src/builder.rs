//! Configuration: [`Builder`], its validation, and the start of a sink.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::record;
use crate::stats::Shared;
use crate::writer::Writer;
use crate::{Error, SinkGuard, SinkLayer};

/// The most events a queue may hold. The channel allocates its slots up front (about 80 bytes
/// each), so this caps that allocation near 330 MiB.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 22;

/// The most recycled buffers kept between the writer and callers.
const MAX_POOL: usize = 4096;

/// What a caller does when the queue to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait until the writer makes room. Nothing is lost; a caller can be slowed down to the
    /// disk's speed. The default.
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
/// | [`directory`](Builder::directory) | `logs` (created if missing) | a path that exists and is not a directory; one that cannot be created |
/// | [`file_name`](Builder::file_name) | `app` (active file `logs/app.log`) | empty, `.` or `..`, containing `/`, `\` or NUL |
/// | [`queue_capacity`](Builder::queue_capacity) | 65,536 events | 0, or above [`MAX_QUEUE_CAPACITY`] |
/// | [`overflow`](Builder::overflow) | [`Overflow::Block`] | — |
/// | [`flush_interval`](Builder::flush_interval) | 200 ms | — |
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder {
    directory: PathBuf,
    file_name: String,
    queue_capacity: usize,
    overflow: Overflow,
    flush_interval: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            directory: PathBuf::from("logs"),
            file_name: "app".to_owned(),
            queue_capacity: 65_536,
            overflow: Overflow::Block,
            flush_interval: Duration::from_millis(200),
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

    /// The base name of the files: the active file is `<directory>/<file_name>.log`.
    /// Default: `app`. `build()` refuses an empty name, `.`, `..`, and names containing a path
    /// separator (`/` or `\`) or NUL.
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

    /// Checks the settings, creates the directory, opens the active file, and starts the
    /// writer thread.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a refused value (see the table on [`Builder`]),
    /// [`Error::NotADirectory`], [`Error::CreateDirectory`], [`Error::Open`], or
    /// [`Error::SpawnThread`].
    pub fn build(self) -> Result<(SinkLayer, SinkGuard), Error> {
        self.build_with_clock(Clock::System)
    }

    /// [`build`](Builder::build) with a chosen clock (tests pass a mock).
    pub(crate) fn build_with_clock(self, clock: Clock) -> Result<(SinkLayer, SinkGuard), Error> {
        self.validate()?;
        create_directory(&self.directory)?;
        let path = self.directory.join(format!("{}.log", self.file_name));
        let (file, preamble) = open_active(&path)?;

        let shared = Arc::new(Shared::default());
        let (tx, rx) = crossbeam_channel::bounded(self.queue_capacity);
        let (giver, taker) = record::pool(self.queue_capacity.min(MAX_POOL));
        let writer = Writer::new(
            rx,
            giver,
            shared.clone(),
            path,
            file,
            self.flush_interval,
            preamble,
        );
        std::thread::Builder::new()
            .name("logsink-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| Error::SpawnThread {
                source: Arc::new(source),
            })?;

        let layer = SinkLayer {
            tx: tx.clone(),
            pool: taker,
            shared: shared.clone(),
            overflow: self.overflow,
            clock,
        };
        Ok((layer, SinkGuard::new(tx, shared)))
    }

    fn validate(&self) -> Result<(), Error> {
        let name = &self.file_name;
        if name.is_empty() || name == "." || name == ".." {
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
        if self.queue_capacity == 0 {
            return Err(Error::invalid("queue_capacity", 0, "must be at least 1"));
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

fn create_directory(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(_) => fs::create_dir_all(dir).map_err(|source| Error::CreateDirectory {
            path: dir.to_path_buf(),
            source: Arc::new(source),
        }),
    }
}

/// Opens `path` for appending, creating it if missing.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Opens the active file, and says what to write before the first event: a newline if the file
/// ends in a cut-short line (a crash mid-write), so that the next line starts clean.
fn open_active(path: &Path) -> Result<(File, &'static [u8]), Error> {
    let open_error = |source| Error::Open {
        path: path.to_path_buf(),
        source: Arc::new(source),
    };
    let file = open_append(path).map_err(open_error)?;
    let len = file.metadata().map_err(open_error)?.len();
    if len == 0 {
        return Ok((file, b""));
    }
    let mut last = [0u8];
    let mut reader = File::open(path).map_err(open_error)?;
    reader.seek(SeekFrom::Start(len - 1)).map_err(open_error)?;
    reader.read_exact(&mut last).map_err(open_error)?;
    Ok((file, if last[0] == b'\n' { b"" } else { b"\n" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use std::time::UNIX_EPOCH;
    use tracing_subscriber::prelude::*;

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
