//! Start-up, between `build()`'s checks and the writer's first event: with the folder locked
//! (see [`Folder::open`]), rotate an active file left in an earlier period, then open the
//! active file and say how to continue it. Recovery of rotated files left by a killed process
//! runs next, on the janitor thread, before it takes new work.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use crate::files::folder::{self, Folder};
use crate::files::rotation::{Namer, Policy};
use crate::stats::Shared;
use crate::writer::ActiveFile;
use crate::Error;

/// Opens the active file (creating it with `mode` if missing) after rotating a stale one
/// (rotated names are stamped in `names_offset` if given, else in UTC), and
/// returns it with what must be written before the first event: a newline if the file ends in
/// a cut-short line (a crash mid-write), so that the next line starts clean.
///
/// # Errors
/// [`Error::Open`] if the active file cannot be opened, or is not a regular file (a symlink,
/// FIFO, socket or device): nothing is written through it.
pub(crate) fn open_active(
    folder: Arc<Folder>,
    policy: Policy,
    names_offset: Option<time::UtcOffset>,
    mode: Option<u32>,
    now: SystemTime,
    shared: &Shared,
) -> Result<(ActiveFile, &'static [u8]), Error> {
    let name = folder.active_name();
    let path = folder.file_path(&name);
    let open_error = |source| Error::Open {
        path: path.clone(),
        source: Arc::new(source),
    };
    let mut namer = Namer::new(folder.base(), names_offset);
    namer.continue_after(folder.rotated().into_iter().map(|e| e.rotated.position));
    let file = folder.open_active(mode).map_err(open_error)?;
    let mut active = ActiveFile {
        folder,
        path: path.clone(),
        file: Some(file),
        mode,
        len: 0,
        events: 0,
        opened_at: now,
        next_boundary: None,
        policy,
        namer,
        name,
    };
    rotate_stale(&mut active, now, shared);
    let file = match active.file.take() {
        Some(file) => file,
        None => active.folder.open_active(active.mode).map_err(open_error)?,
    };
    let meta = file.metadata().map_err(open_error)?;
    active.mode = folder::mode_of(&file).or(mode);
    active.len = meta.len();
    active.opened_at = Some(&meta)
        .filter(|meta| meta.len() > 0)
        .and_then(|meta| meta.created().or_else(|_| meta.modified()).ok())
        .unwrap_or(now);
    active.next_boundary = policy.next_boundary(active.opened_at.max(now));
    let preamble: &'static [u8] = if folder::ends_mid_line(&file).map_err(open_error)? {
        b"\n"
    } else {
        b""
    };
    active.len += preamble.len() as u64;
    active.file = Some(file);
    Ok((active, preamble))
}

/// Rotates an active file left by an earlier run if its last write was in an earlier period.
/// A failure is counted and the file is appended to instead: nothing is lost.
fn rotate_stale(active: &mut ActiveFile, now: SystemTime, shared: &Shared) {
    let Some(meta) = active.file.as_ref().and_then(|f| f.metadata().ok()) else {
        return;
    };
    let Ok(modified) = meta.modified() else {
        return;
    };
    if meta.len() == 0 || !active.policy.crossed_boundary(modified, now) {
        return;
    }
    active.opened_at = meta
        .created()
        .ok()
        .filter(|created| *created <= modified)
        .unwrap_or(modified);
    let mode = active.file.take().as_ref().and_then(folder::mode_of);
    active.mode = mode.or(active.mode);
    match active.rename_to_next() {
        Ok(_) => {
            shared.rotations.fetch_add(1, Relaxed);
        }
        Err(source) => shared.error(Error::Rotate {
            path: active.path.clone(),
            source: Arc::new(source),
        }),
    }
}
