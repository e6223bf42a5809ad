//! [`Folder`]: the one owner of the log folder and of every file operation in it.
//!
//! A sink takes an exclusive lock on its folder-and-name (the file `.<file_name>.lock`) before
//! it touches anything, and holds it until it shuts down; a second sink on the same folder and
//! name is refused. The writer, the janitor, start-up recovery and retention reach the folder
//! only through this type, which offers only safe operations:
//!
//! - files are created new (`O_CREAT|O_EXCL`), never through a symlink;
//! - an existing file is opened only if it is a regular file (never a symlink, FIFO or device);
//! - a rename never replaces what has the new name (`renameat2(RENAME_NOREPLACE)` on Linux,
//!   `renameatx_np(RENAME_EXCL)` on macOS, a hard link then unlink elsewhere);
//! - only regular files whose names parse as this sink's rotated names are listed or removed;
//! - on Unix every call is relative to a handle on the folder, so a name cannot lead outside.
//!
//! Test builds inject failures here, once, for all of the sink's file operations.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::faults::Hook;
use crate::files::rotation::{parse_rotated, RotatedName};
use crate::Error;

#[cfg(not(unix))]
mod portable;
#[cfg(unix)]
mod unix;
#[cfg(not(unix))]
use portable as sys;
#[cfg(unix)]
use unix as sys;

/// What the folder holds under one name, read without following a symlink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// A regular file (not a symlink, folder, FIFO, socket or device).
    pub(crate) regular: bool,
    pub(crate) len: u64,
    pub(crate) modified: SystemTime,
    /// Device and inode (zero where the platform has none).
    identity: (u64, u64),
}

/// One of this sink's rotated files, found in the folder.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) rotated: RotatedName,
    pub(crate) len: u64,
    pub(crate) modified: SystemTime,
}

/// The handle on the folder and the lock that makes this sink its only writer; replaced
/// together if the folder is deleted and made again.
#[derive(Debug)]
struct Handle {
    dir: sys::Dir,
    /// Held from start-up until the sink has shut down (`None` after [`Folder::unlock`]).
    lock: Option<File>,
}

/// The log folder, owned by one sink. Shared (behind an `Arc`) by the writer and janitor
/// threads; its operations take `&self`.
#[derive(Debug)]
pub(crate) struct Folder {
    path: PathBuf,
    base: String,
    handle: RwLock<Handle>,
    /// Failures injected by tests (nothing otherwise).
    hook: Hook,
}

impl Folder {
    /// Creates the folder if missing, checks that the sink's longest names (`base` and
    /// `suffix_len` bytes) fit its file system, and takes the lock for `base` in it. Its file
    /// operations go through `hook` (see [`faults`](crate::faults)).
    ///
    /// # Errors
    /// [`Error::NotADirectory`], [`Error::CreateDirectory`], [`Error::Open`] (the folder or
    /// the lock file), [`Error::FileNameTooLong`], or [`Error::InUse`] when another sink holds
    /// the lock.
    pub(crate) fn open(
        path: &Path,
        base: &str,
        suffix_len: usize,
        hook: Hook,
    ) -> Result<Folder, Error> {
        create_directory(path)?;
        let dir = sys::Dir::open(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source: Arc::new(source),
        })?;
        // Before the lock: a name too long for the rotated names is too long for nothing
        // to be made in the folder either.
        let longest = dir.name_max().saturating_sub(suffix_len);
        if base.len() > longest {
            return Err(Error::FileNameTooLong {
                file_name: base.to_owned(),
                longest,
            });
        }
        let lock = lock(&dir, path, base)?;
        Ok(Folder {
            path: path.to_path_buf(),
            base: base.to_owned(),
            handle: RwLock::new(Handle {
                dir,
                lock: Some(lock),
            }),
            hook,
        })
    }

    fn dir(&self) -> std::sync::RwLockReadGuard<'_, Handle> {
        self.handle.read().unwrap_or_else(|e| e.into_inner())
    }

    /// `<folder>/<name>`, for messages.
    pub(crate) fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The hook through which tests inject failures.
    pub(crate) fn hook(&self) -> &Hook {
        &self.hook
    }

    /// The sink's file name, which its files' names start with.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The active file's name, `<file_name>.log`.
    pub(crate) fn active_name(&self) -> String {
        format!("{}.log", self.base)
    }

    /// Opens the active file for appending, creating it (with `mode`, or the default) if
    /// missing. Refuses anything but a regular file, without blocking on a FIFO.
    pub(crate) fn open_active(&self, mode: Option<u32>) -> io::Result<File> {
        let name = self.active_name();
        // Two tries: a file removed between the two calls is created by the second.
        for _ in 0..2 {
            match self.dir().dir.open_existing(&name, true) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
            match self.create_new(&name, mode) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => return other,
            }
        }
        self.dir().dir.open_existing(&name, true)
    }

    /// Creates `name`, which must not exist in any form; with `mode`, exactly that mode.
    pub(crate) fn create_new(&self, name: &str, mode: Option<u32>) -> io::Result<File> {
        self.dir().dir.create_new(name, mode)
    }

    /// Opens the regular file `name` for reading.
    pub(crate) fn open_read(&self, name: &str) -> io::Result<File> {
        self.hook.compress()?;
        self.dir().dir.open_existing(name, false)
    }

    /// Renames `from` to `to`; `AlreadyExists` if anything has the name `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.hook.rename()?;
        self.dir().dir.rename_noreplace(from, to)
    }

    /// Removes the regular file `name`: `Ok(false)` if nothing is there. Anything else under
    /// the name (a symlink, a folder) is not the sink's and is left alone.
    pub(crate) fn remove(&self, name: &str) -> io::Result<bool> {
        let handle = self.dir();
        match nothing_if_too_long(handle.dir.stat(name))? {
            None => Ok(false),
            Some(meta) if meta.regular => match handle.dir.unlink(name) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            Some(_) => Err(not_regular(name)),
        }
    }

    /// What is at `name`, without following a symlink.
    pub(crate) fn stat(&self, name: &str) -> io::Result<Option<Meta>> {
        nothing_if_too_long(self.dir().dir.stat(name))
    }

    /// Whether `name` still names the open `file` (it was not removed, renamed or replaced).
    /// Where files have no identity, whether a regular file has the name.
    pub(crate) fn holds(&self, file: &File, name: &str) -> bool {
        match (sys::identity(file), self.stat(name)) {
            (Some(id), Ok(Some(meta))) => meta.regular && meta.identity == id,
            (None, Ok(Some(meta))) => meta.regular,
            _ => false,
        }
    }

    /// This sink's rotated files: regular files whose names parse as its rotated names.
    /// Other sinks' files, the active file, symlinks and anything else are never listed.
    pub(crate) fn rotated(&self) -> Vec<Entry> {
        let handle = self.dir();
        let Ok(names) = handle.dir.names() else {
            return Vec::new();
        };
        names
            .into_iter()
            .filter_map(|name| {
                let rotated = parse_rotated(&self.base, &name)?;
                let meta = handle.dir.stat(&name).ok()??;
                meta.regular.then_some(Entry {
                    rotated,
                    len: meta.len,
                    modified: meta.modified,
                })
            })
            .collect()
    }

    /// Makes renames and removals durable (best effort).
    pub(crate) fn sync(&self) {
        self.dir().dir.sync();
    }

    /// Writes all of `buf` to `file` (a file this folder opened); returns how much was
    /// written, and the error that stopped it.
    pub(crate) fn write(&self, file: &mut File, buf: &[u8]) -> (usize, io::Result<()>) {
        if let Err(e) = self.hook.write() {
            return (0, Err(e));
        }
        if let Some((at, error)) = self.hook.cut(buf.len()) {
            let (written, result) = self.write(file, &buf[..at]);
            return (written, result.and(Err(error)));
        }
        let mut written = 0;
        while written < buf.len() {
            match file.write(&buf[written..]) {
                Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Err(e)),
            }
        }
        (written, Ok(()))
    }

    /// Makes the folder again after it was deleted (with the lock, in the new folder). Does
    /// nothing if the folder is still there.
    pub(crate) fn recreate(&self) -> io::Result<()> {
        let mut handle = self.handle.write().unwrap_or_else(|e| e.into_inner());
        if handle.dir.is_at(&self.path) || handle.lock.is_none() {
            return Ok(());
        }
        fs::create_dir_all(&self.path)?;
        let dir = sys::Dir::open(&self.path)?;
        let lock = dir
            .lock(&lock_name(&self.base))
            .map_err(|(e, _)| io::Error::new(e.kind(), "another sink took the recreated folder"))?;
        *handle = Handle {
            dir,
            lock: Some(lock),
        };
        Ok(())
    }

    /// Lets another sink take the folder: called once this sink has shut down and will touch
    /// nothing more, so that a new sink can start at once (closing the file drops the lock).
    pub(crate) fn unlock(&self) {
        let mut handle = self.handle.write().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = handle.lock.take() {
            // Explicitly: a process the host started meanwhile may hold a copy of the file
            // descriptor (between its fork and exec), and closing ours alone would leave
            // the lock held by that copy.
            sys::unlock(&lock);
        }
    }
}

/// Nothing is at a name too long for the file system: with the longest file name, a gzip sink's
/// rotated names fit but their `.zst.tmp` form, which it still looks for, does not.
fn nothing_if_too_long(found: io::Result<Option<Meta>>) -> io::Result<Option<Meta>> {
    match found {
        Err(e) if e.kind() == io::ErrorKind::InvalidFilename => Ok(None),
        other => other,
    }
}

/// The mode bits of an open file (`None` where there are none).
pub(crate) fn mode_of(file: &File) -> Option<u32> {
    sys::mode_of(file)
}

/// Whether an open file ends in a cut-short line (a crash mid-write): then the next line must
/// start after a newline.
pub(crate) fn ends_mid_line(file: &File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    let mut reader = file;
    let pos = reader.stream_position()?;
    reader.seek(SeekFrom::Start(len - 1))?;
    reader.read_exact(&mut last)?;
    reader.seek(SeekFrom::Start(pos))?;
    Ok(last[0] != b'\n')
}

/// The name of the lock file for the sink called `base`.
pub(crate) fn lock_name(base: &str) -> String {
    format!(".{base}.lock")
}

fn lock(dir: &sys::Dir, path: &Path, base: &str) -> Result<File, Error> {
    let name = lock_name(base);
    dir.lock(&name).map_err(|(source, pid)| {
        if source.kind() == io::ErrorKind::WouldBlock {
            Error::InUse {
                path: path.join(&name),
                pid,
            }
        } else {
            Error::Open {
                path: path.join(&name),
                source: Arc::new(source),
            }
        }
    })
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

fn not_regular(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name} is not a regular file (a symlink, FIFO, socket, device or folder); logsink writes only regular files it can own"),
    )
}

/// Records the holder's pid in the lock file, for the message a refused sink gives.
fn write_pid(file: &mut File) {
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = writeln!(file, "{}", std::process::id());
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
