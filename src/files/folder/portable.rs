//! The folder's operations where there is no `*at` family (Windows): by path, with the same
//! promises kept the portable way. A file is created only new (`create_new`), an existing one
//! is opened only after checking that it is a regular file and not a link, and a rename never
//! replaces (a hard link, which fails on an existing name, then the old name is removed).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::Meta;

/// The folder, by path.
#[derive(Debug)]
pub(super) struct Dir(PathBuf);

impl Dir {
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        if !fs::metadata(path)?.is_dir() {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        Ok(Dir(path.to_path_buf()))
    }

    /// Without handles on folders, only a missing folder is noticed.
    pub(super) fn is_at(&self, path: &Path) -> bool {
        path.is_dir()
    }

    pub(super) fn create_new(&self, name: &str, _mode: Option<u32>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.0.join(name))
    }

    pub(super) fn open_existing(&self, name: &str, write: bool) -> io::Result<File> {
        match self.stat(name)? {
            Some(meta) if meta.regular => {}
            Some(_) => return Err(super::not_regular(name)),
            None => return Err(io::ErrorKind::NotFound.into()),
        }
        let file = if write {
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(self.0.join(name))?
        } else {
            File::open(self.0.join(name))?
        };
        if !file.metadata()?.is_file() {
            return Err(super::not_regular(name));
        }
        Ok(file)
    }

    pub(super) fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.0.join(from), self.0.join(to));
        match fs::hard_link(&from, &to) {
            Ok(()) => fs::remove_file(&from),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            // No hard links on this file system: check, then rename (the lock keeps other
            // sinks out).
            Err(_) => {
                if fs::symlink_metadata(&to).is_ok() {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                fs::rename(&from, &to)
            }
        }
    }

    pub(super) fn unlink(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.0.join(name))
    }

    pub(super) fn stat(&self, name: &str) -> io::Result<Option<Meta>> {
        match fs::symlink_metadata(self.0.join(name)) {
            Ok(meta) => Ok(Some(Meta {
                regular: meta.file_type().is_file(),
                len: meta.len(),
                modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                identity: (0, 0),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.0)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    pub(super) fn sync(&self) {}

    pub(super) fn name_max(&self) -> usize {
        255
    }

    /// Opens `name` for this sink alone: the file is shared for reading only, so a second
    /// sink's open for writing fails until this handle is closed (the system closes it when
    /// the process dies).
    pub(super) fn lock(&self, name: &str) -> Result<File, (io::Error, Option<u32>)> {
        if let Ok(Some(meta)) = self.stat(name) {
            if !meta.regular {
                return Err((super::not_regular(name), None));
            }
        }
        let path = self.0.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            options.share_mode(1); // FILE_SHARE_READ
        }
        match options.open(&path) {
            Ok(mut file) => {
                super::write_pid(&mut file);
                Ok(file)
            }
            // ERROR_SHARING_VIOLATION: another sink has it open.
            Err(e) if e.raw_os_error() == Some(32) => {
                let pid = File::open(&path)
                    .ok()
                    .and_then(|mut f| super::read_pid(&mut f));
                Err((io::ErrorKind::WouldBlock.into(), pid))
            }
            Err(e) => Err((e, None)),
        }
    }
}

/// Closing the handle (which the caller does next) is what lets another sink open the file.
pub(super) fn unlock(_file: &File) {}

/// File modes are a Unix notion.
pub(super) fn mode_of(_file: &File) -> Option<u32> {
    None
}

/// Without inode numbers, files are not told apart by identity.
pub(super) fn identity(_file: &File) -> Option<(u64, u64)> {
    None
}
