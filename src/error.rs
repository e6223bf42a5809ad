//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in a sink: refused configuration, file-system failures, and a
/// sink that is no longer running.
///
/// I/O variants keep the path they were about and the [`io::Error`] as their
/// [`source`](std::error::Error::source). `Error` is `Clone` (the `io::Error` is shared behind an
/// [`Arc`]) so that the writer thread can keep the last error and hand copies to [`Stats`].
///
/// [`Stats`]: crate::Stats
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A builder value that [`Builder::build`](crate::Builder::build) refuses.
    InvalidConfig {
        /// The builder setting, e.g. `"file_name"`.
        setting: &'static str,
        /// The refused value, as the user gave it (`Debug`-formatted).
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Another sink (in this process or another) already writes this folder and file name:
    /// it holds the lock file. Nothing was written, renamed or deleted. Give each instance its
    /// own [`file_name`](crate::Builder::file_name) or folder.
    InUse {
        /// The lock file, `<directory>/.<file_name>.lock`.
        path: PathBuf,
        /// The holder's process id, as it recorded it in the lock file, if known.
        pid: Option<u32>,
    },
    /// The file name is too long for the folder's file system once the sink adds what its
    /// rotated names add (`.<stamp>.<seq>.log.gz.tmp`, or `.zst.tmp` with zstd): rotation
    /// would fail.
    FileNameTooLong {
        /// The file name as given.
        file_name: String,
        /// The longest file name (in bytes) that this folder takes.
        longest: usize,
    },
    /// The log directory path exists but is not a directory.
    NotADirectory {
        /// The path that was given as the directory.
        path: PathBuf,
    },
    /// The log directory could not be created.
    CreateDirectory {
        /// The directory that was to be created.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// A log file could not be opened.
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// Writing to, flushing or closing a log file failed.
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// Renaming the active file to its rotated name failed; the sink keeps writing to the
    /// active file and tries again later.
    Rotate {
        /// The active file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// Compressing a rotated file failed; the file stays uncompressed and is retried later.
    Compress {
        /// The rotated file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// Deleting a file (retention, or clean-up after a crash) failed.
    Delete {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// The background writer thread could not be started.
    SpawnThread {
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// Shutdown waited [`shutdown_timeout`](crate::Builder::shutdown_timeout) for the writer
    /// (a disk that stalls: a `write` that never returns) and gave up. The writer thread is
    /// left behind, detached; the events it had not confirmed written are counted in
    /// [`Stats::events_dropped`](crate::Stats::events_dropped). The folder stays locked until
    /// that thread ends.
    ShutdownTimeout {
        /// How long shutdown waited.
        timeout: std::time::Duration,
        /// Accepted events not confirmed written (queued, or held by the writer).
        unconfirmed: u64,
    },
    /// The sink has already been shut down.
    Closed,
    /// The writer thread ended without answering (it panicked: a bug in logsink).
    WriterGone,
}

/// What the longest UTC rotated name adds to the file name:
/// `.YYYYMMDDTHHMMSSZ.NNNNNN.log.gz.tmp` (an offset instead of `Z` adds 4 more, and zstd's
/// `.zst.tmp` 1 more).
pub(crate) const ROTATED_SUFFIX_LEN: usize = 35;

impl Error {
    pub(crate) fn invalid(
        setting: &'static str,
        value: impl fmt::Debug,
        reason: &'static str,
    ) -> Self {
        Error::InvalidConfig {
            setting,
            value: format!("{value:?}"),
            reason,
        }
    }

    /// A short name for the kind of failure, for rate-limiting reports.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "config",
            Error::InUse { .. } => "in-use",
            Error::FileNameTooLong { .. } => "name-too-long",
            Error::NotADirectory { .. } => "not-a-directory",
            Error::CreateDirectory { .. } => "create-directory",
            Error::Open { .. } => "open",
            Error::Write { .. } => "write",
            Error::Rotate { .. } => "rotate",
            Error::Compress { .. } => "compress",
            Error::Delete { .. } => "delete",
            Error::SpawnThread { .. } => "spawn",
            Error::ShutdownTimeout { .. } => "shutdown-timeout",
            Error::Closed => "closed",
            Error::WriterGone => "writer-gone",
        }
    }

    /// The underlying I/O error, for the variants that have one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::CreateDirectory { source, .. }
            | Error::Open { source, .. }
            | Error::Write { source, .. }
            | Error::Rotate { source, .. }
            | Error::Compress { source, .. }
            | Error::Delete { source, .. }
            | Error::SpawnThread { source } => Some(source),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                setting,
                value,
                reason,
            } => write!(f, "invalid {setting} {value}: {reason}"),
            Error::InUse { path, pid } => {
                write!(
                    f,
                    "another log sink already writes these files: {} is locked",
                    path.display()
                )?;
                match pid {
                    Some(pid) if *pid == std::process::id() => {
                        write!(f, " by this process (pid {pid})")?
                    }
                    Some(pid) => write!(f, " by process {pid}")?,
                    None => {}
                }
                f.write_str("; give each sink its own file_name or directory")
            }
            Error::FileNameTooLong { file_name, longest } => write!(
                f,
                "file_name {file_name:?} is too long for this folder's file system once the \
                 rotated names add their stamp and sequence to it (35 bytes, 39 with names in \
                 the UTC offset): file_name may have at most {longest} bytes here",
            ),
            Error::NotADirectory { path } => {
                write!(
                    f,
                    "log directory {} exists and is not a directory",
                    path.display()
                )
            }
            Error::CreateDirectory { path, source } => {
                write!(
                    f,
                    "cannot create log directory {}: {source}",
                    path.display()
                )
            }
            Error::Open { path, source } => {
                write!(f, "cannot open log file {}: {source}", path.display())
            }
            Error::Write { path, source } => {
                write!(f, "cannot write log file {}: {source}", path.display())
            }
            Error::Rotate { path, source } => {
                write!(f, "cannot rotate log file {}: {source}", path.display())
            }
            Error::Compress { path, source } => {
                write!(f, "cannot compress log file {}: {source}", path.display())
            }
            Error::Delete { path, source } => {
                write!(f, "cannot delete log file {}: {source}", path.display())
            }
            Error::SpawnThread { source } => {
                write!(f, "cannot start the logsink writer thread: {source}")
            }
            Error::ShutdownTimeout {
                timeout,
                unconfirmed,
            } => write!(
                f,
                "the logsink writer did not finish within the shutdown timeout of {timeout:?} \
                 (a stalled disk?): {unconfirmed} accepted events were not confirmed written \
                 and are counted as dropped"
            ),
            Error::Closed => f.write_str("the log sink has already been shut down"),
            Error::WriterGone => f.write_str("the logsink writer thread ended unexpectedly"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io_error().map(|e| e as _)
    }
}
