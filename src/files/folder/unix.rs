//! The folder's operations on Unix: every call is relative to an open handle on the folder
//! (the `*at` family), never follows a symlink, and never replaces a file.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::Meta;

/// An open handle on the folder.
#[derive(Debug)]
pub(super) struct Dir(OwnedFd);

/// The mode a file is created with when nobody asked for another: `0o644` less the umask.
const DEFAULT_MODE: u32 = 0o644;

impl Dir {
    /// Opens the folder at `path` (which may itself be, or lie below, a symlink: the operator
    /// chose it; what is *in* the folder is never followed).
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir(fd))
    }

    /// Whether `path` still names this folder (it was not deleted or replaced).
    pub(super) fn is_at(&self, path: &Path) -> bool {
        match (rustix::fs::fstat(&self.0), rustix::fs::stat(path)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    /// Creates `name`, failing if anything (a file, a symlink, a FIFO) already has the name.
    /// `O_EXCL` with `O_CREAT` never follows a symlink, whatever it points to.
    pub(super) fn create_new(&self, name: &str, mode: Option<u32>) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.0,
            c_name(name)?,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode((mode.unwrap_or(DEFAULT_MODE) & 0o777) as _),
        )?;
        let file = File::from(fd);
        if let Some(mode) = mode {
            // Exactly as asked, not less the umask.
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        Ok(file)
    }

    /// Opens the existing regular file `name`; refuses a symlink, FIFO, socket or device
    /// (without blocking on a FIFO: `O_NONBLOCK`, which changes nothing for a regular file).
    pub(super) fn open_existing(&self, name: &str, write: bool) -> io::Result<File> {
        let access = if write {
            OFlags::RDWR | OFlags::APPEND
        } else {
            OFlags::RDONLY
        };
        let fd = rustix::fs::openat(
            &self.0,
            c_name(name)?,
            access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // What O_NOFOLLOW answers for a symlink (Linux, macOS; FreeBSD says EMLINK).
            Errno::LOOP | Errno::MLINK => super::not_regular(name),
            // A FIFO with no reader, opened for writing without blocking; a folder.
            Errno::NXIO | Errno::ISDIR => super::not_regular(name),
            e => e.into(),
        })?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(super::not_regular(name));
        }
        Ok(file)
    }

    /// Renames `from` to `to` unless `to` exists (then `AlreadyExists`).
    pub(super) fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
        match rustix::fs::renameat_with(
            &self.0,
            &from,
            &self.0,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            // The file system (or an old kernel) has no no-replace rename: fall back below.
            Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
            other => return other.map_err(Into::into),
        }
        // A hard link never replaces; then the old name goes.
        match rustix::fs::linkat(&self.0, &from, &self.0, &to, AtFlags::empty()) {
            Ok(()) => {
                rustix::fs::unlinkat(&self.0, &from, AtFlags::empty())?;
                Ok(())
            }
            // No hard links here (some FUSE and FAT file systems): check, then rename. The
            // folder's lock keeps every other sink out, so only a hostile local user could
            // race the check.
            // (NOTSUP and OPNOTSUPP are one value on Linux, two on macOS.)
            Err(e) if [Errno::PERM, Errno::NOTSUP, Errno::OPNOTSUPP, Errno::NOSYS].contains(&e) => {
                if self.stat(to.to_str().unwrap_or_default())?.is_some() {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                rustix::fs::renameat(&self.0, &from, &self.0, &to)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the name `name` (a symlink itself, never what it points to).
    pub(super) fn unlink(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.0, c_name(name)?, AtFlags::empty())?;
        Ok(())
    }

    /// What is at `name`, without following a symlink; `None` if nothing is.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // field types vary by OS
    pub(super) fn stat(&self, name: &str) -> io::Result<Option<Meta>> {
        match rustix::fs::statat(&self.0, c_name(name)?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let secs = st.st_mtime as i64;
                let nanos = (st.st_mtime_nsec as u32).min(999_999_999);
                let modified = if secs >= 0 {
                    UNIX_EPOCH + Duration::new(secs as u64, nanos)
                } else {
                    UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                        + Duration::from_nanos(u64::from(nanos))
                };
                Ok(Some(Meta {
                    regular: FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile,
                    len: st.st_size as u64,
                    modified,
                    identity: (st.st_dev as u64, st.st_ino as u64),
                }))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The names in the folder (valid UTF-8 only: the sink makes no other names).
    pub(super) fn names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.0)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// Makes renames and removals in the folder durable (best effort).
    pub(super) fn sync(&self) {
        let _ = rustix::fs::fsync(&self.0);
    }

    /// The longest file name the folder's file system takes, in bytes.
    pub(super) fn name_max(&self) -> usize {
        rustix::fs::fstatvfs(&self.0)
            .ok()
            .and_then(|s| usize::try_from(s.f_namemax).ok())
            .filter(|&n| n > 0)
            .unwrap_or(255)
    }

    /// Opens `name` (created if missing, never through a symlink) and takes an exclusive
    /// `flock` on it without waiting. The lock belongs to this open file: a second sink (in
    /// this process or another) is refused, and the kernel drops it when the process dies.
    /// On refusal, the holder's pid as it wrote it into the file.
    pub(super) fn lock(&self, name: &str) -> Result<File, (io::Error, Option<u32>)> {
        let fd = rustix::fs::openat(
            &self.0,
            c_name(name).map_err(|e| (e, None))?,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(DEFAULT_MODE as _),
        )
        .map_err(|e| (e.into(), None))?;
        let mut file = File::from(fd);
        if !file.metadata().map_err(|e| (e, None))?.is_file() {
            return Err((super::not_regular(name), None));
        }
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                super::write_pid(&mut file);
                Ok(file)
            }
            Err(e) if e == Errno::WOULDBLOCK => {
                // A pid read just as the new holder took the lock, before it wrote its own,
                // is the previous holder's: one that no longer runs is not named.
                let pid = super::read_pid(&mut file).filter(|&pid| is_running(pid));
                Err((io::ErrorKind::WouldBlock.into(), pid))
            }
            Err(e) => Err((e.into(), None)),
        }
    }
}

/// Whether a process with this id exists (one we may not signal exists too).
fn is_running(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// Releases the lock taken by [`Dir::lock`] on `file`'s open file description, whatever
/// other descriptors share it.
pub(super) fn unlock(file: &File) {
    let _ = rustix::fs::flock(file, FlockOperation::Unlock);
}

/// The mode bits of an open file.
pub(super) fn mode_of(file: &File) -> Option<u32> {
    file.metadata().ok().map(|m| m.mode() & 0o7777)
}

/// The identity of an open file, comparable with [`Meta::identity`].
pub(super) fn identity(file: &File) -> Option<(u64, u64)> {
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}
