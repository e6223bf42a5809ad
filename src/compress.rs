//! Gzip compression of rotated files, on the janitor thread.
//!
//! The sequence makes every crash recoverable: stream `<name>.log` into `<name>.log.gz.tmp`,
//! sync it, rename it to `<name>.log.gz` (atomic), sync the folder, and only then delete
//! `<name>.log`. At any instant the events are complete in the `.log` or in the `.gz` (or
//! both, which start-up recovery resolves by deleting the `.log`).

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;

/// Whether, and how, rotated files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Rotated files stay as plain `.log` files.
    None,
    /// Rotated files become `.log.gz`, readable by `zcat`, `gzip -d` and every log collector.
    Gzip {
        /// 0 (store only) to 9 (smallest); 1 is fastest, 6 is the usual balance.
        /// [`build()`](crate::Builder::build) refuses values above 9.
        level: u32,
    },
}

impl Default for Compression {
    /// `Gzip { level: 6 }`.
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

/// Compresses `<dir>/<log_name>` to `<dir>/<log_name>.gz` and deletes the source; returns the
/// compressed size. On failure the source is left as it was and the temporary file removed.
pub(crate) fn gzip_file(dir: &Path, log_name: &str, level: u32) -> io::Result<u64> {
    let src = dir.join(log_name);
    let tmp = dir.join(format!("{log_name}.gz.tmp"));
    let dst = dir.join(format!("{log_name}.gz"));
    let result = (|| {
        let source = File::open(&src)?;
        let modified = source.metadata()?.modified()?;
        let mut encoder = GzEncoder::new(
            BufWriter::with_capacity(256 * 1024, File::create(&tmp)?),
            flate2::Compression::new(level),
        );
        io::copy(
            &mut BufReader::with_capacity(256 * 1024, source),
            &mut encoder,
        )?;
        let mut out = encoder.finish()?;
        out.flush()?;
        let out = out.into_inner().map_err(|e| e.into_error())?;
        // The .gz keeps the source's time, as `gzip` does: retention by age then means the
        // time of the last event in the file, not the time it was compressed.
        out.set_modified(modified)?;
        out.sync_all()?;
        let size = out.metadata()?.len();
        drop(out);
        fs::rename(&tmp, &dst)?;
        sync_dir(dir);
        Ok(size)
    })();
    match result {
        Ok(size) => {
            fs::remove_file(&src)?;
            Ok(size)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Makes a rename in `dir` durable. Best effort: not every platform or file system can sync a
/// folder, and the rename itself has already succeeded.
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
