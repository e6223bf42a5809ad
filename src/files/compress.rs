//! Compression of rotated files, on the janitor's compressor thread and its helpers: gzip
//! here, zstd (feature `zstd`) in [`zst`](crate::files::zst), both behind one crash-safe
//! [`compress_file`].
//!
//! # Parallel, yet one ordinary gzip stream
//! Deflating a large file on a single thread takes long enough that a sink rotating fast would
//! build a backlog. So a file is cut into [`CHUNK`]-sized pieces that are deflated on several
//! threads at once, the way `pigz` does it: each piece is primed with the
//! last 32 KiB of the piece before it (deflate's whole window, so matches reach back across
//! the cut and the ratio stays that of one stream) and ends in a sync flush (an empty stored
//! block that ends on a byte boundary, not a final block), so that the pieces simply
//! concatenate into one deflate stream, closed by an empty final block. Around it go a gzip header and a trailer with the
//! CRC-32 of the whole input, combined from the pieces' own. The result is a single gzip
//! member that every reader takes (`gzip -d`, `zcat`, flate2's `GzDecoder`, collectors), not
//! a series of members that some readers stop after the first of.
//!
//! # Crash safety
//! The sequence makes every crash recoverable: stream `<name>.log` into `<name>.log.gz.tmp`
//! (`.zst.tmp`), sync it, rename it to `<name>.log.gz` (`.zst`; atomic), sync the folder, and
//! only then delete `<name>.log`. At any instant the events are complete in the `.log` or in
//! the compressed file (or both, which start-up recovery resolves by deleting the `.log` once
//! it has checked that the compressed file holds it).

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::files::folder::Folder;
use crate::files::rotation::Kind;

use flate2::{Compress, Crc, FlushCompress};

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
    /// Rotated files become `.log.zst`: one standard zstd frame (with the content's size and
    /// checksum), readable by `zstd -d`, `zstdcat` and every zstd library. Several times
    /// faster than gzip at a similar or better ratio on log text; level 1 or 3 suits logs
    /// (3 is zstd's own default). A file is compressed on up to four threads by libzstd's own
    /// multithreading, which still writes one frame. Feature `zstd` (builds libzstd from
    /// source with the C compiler).
    #[cfg(feature = "zstd")]
    Zstd {
        /// 1 (fastest) to 22 (smallest; levels above 19 take much more memory).
        /// [`build()`](crate::Builder::build) refuses anything else, 0 and libzstd's negative
        /// levels included.
        level: i32,
    },
}

impl Default for Compression {
    /// `Gzip { level: 6 }`.
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

/// The zstd levels [`build()`](crate::Builder::build) accepts: libzstd's ordinary levels
/// (`ZSTD_maxCLevel()` is 22), without its negative ones or 0 (which means its default).
#[cfg(feature = "zstd")]
pub(crate) const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

/// A compression the compressor thread runs: the format and its level (a [`Compression`]
/// other than `None`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Codec {
    Gzip(u32),
    #[cfg(feature = "zstd")]
    Zstd(i32),
}

impl Codec {
    /// The codec of a setting; `None` for no compression.
    pub(crate) fn of(compression: Compression) -> Option<Codec> {
        match compression {
            Compression::None => None,
            Compression::Gzip { level } => Some(Codec::Gzip(level)),
            #[cfg(feature = "zstd")]
            Compression::Zstd { level } => Some(Codec::Zstd(level)),
        }
    }

    /// What the compressed file's name adds to the `.log` name.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip(_) => ".gz",
            #[cfg(feature = "zstd")]
            Codec::Zstd(_) => ".zst",
        }
    }
}

/// The size of the pieces compressed in parallel: large enough that what each piece costs on
/// its own (a fresh deflate state, priming with 32 KiB, a hand-off) is small (smaller pieces
/// cost more CPU in all; larger ones save none), small enough that the `2 ×
/// threads` pieces in flight keep memory low and the last file of a burst still splits.
pub(crate) const CHUNK: usize = 1024 * 1024;

/// Deflate's window: how far back a match may reach, and so how much of the previous piece
/// primes the next.
const WINDOW: usize = 32 * 1024;

/// Compresses the folder's `<log_name>` to `<log_name>.gz` (or `.zst`, per `codec`) on up to
/// `threads` threads and deletes the source; returns the compressed size. The compressed file
/// gets the source's mode and time. On failure the source is left as it was and the temporary
/// file removed.
///
/// Names that something else already has are never replaced: a `.gz.tmp` (`.zst.tmp`) that is
/// a regular file is a leftover of this sink's (the folder's lock keeps other sinks out) and
/// is removed first; anything else under the temporary or the final name fails the
/// compression with `AlreadyExists` or `InvalidInput`, and the `.log` stays.
///
/// `cancel` stops it between two pieces (and before the rename) with `Interrupted`.
pub(crate) fn compress_file(
    folder: &Folder,
    log_name: &str,
    codec: Codec,
    threads: usize,
    cancel: &AtomicBool,
) -> io::Result<u64> {
    let dst = format!("{log_name}{}", codec.suffix());
    let tmp = format!("{dst}.tmp");
    let mut source = folder.open_read(log_name)?;
    let meta = source.metadata()?;
    let modified = meta.modified()?;
    let mode = crate::files::folder::mode_of(&source);
    let out = match folder.create_new(&tmp, mode) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            folder.remove(&tmp)?;
            folder.create_new(&tmp, mode)?
        }
        other => other?,
    };
    let result = (|| {
        let mut out = BufWriter::with_capacity(256 * 1024, out);
        match codec {
            Codec::Gzip(level) => gzip(&mut source, &mut out, level, threads, CHUNK, cancel)?,
            #[cfg(feature = "zstd")]
            Codec::Zstd(level) => crate::files::zst::zstd(
                &mut source,
                meta.len(),
                &mut out,
                level,
                threads,
                CHUNK,
                cancel,
            )?,
        }
        out.flush()?;
        let out = out.into_inner().map_err(|e| e.into_error())?;
        // The compressed file keeps the source's time, as `gzip` and `zstd` do: retention by
        // age then means the time of the last event in the file, not the time it was
        // compressed.
        out.set_modified(modified)?;
        out.sync_all()?;
        let size = out.metadata()?.len();
        drop(out);
        check(cancel)?;
        folder.rename(&tmp, &dst)?;
        folder.sync();
        Ok(size)
    })();
    match result {
        Ok(size) => {
            folder.remove(log_name)?;
            Ok(size)
        }
        Err(e) => {
            let _ = folder.remove(&tmp);
            Err(e)
        }
    }
}

/// Whether the folder's compressed `<log_name>` in the form `kind` (`.gz` or `.zst`) is
/// complete and holds `<log_name>`, so that the `.log` may go. Start-up recovery asks before
/// it deletes a `.log` found beside a compressed file. Without the `zstd` feature a `.zst`
/// cannot be checked, and is taken not to hold it.
pub(crate) fn holds(folder: &Folder, log_name: &str, kind: Kind) -> bool {
    match kind {
        Kind::Gz => gzip_holds(folder, log_name),
        #[cfg(feature = "zstd")]
        Kind::Zst => crate::files::zst::zstd_holds(folder, log_name),
        _ => false,
    }
}

/// Writes `input` to `out` as one gzip member, deflating `chunk`-sized pieces on `threads`
/// threads (see the module docs).
///
/// This thread reads pieces, hands them to the workers through a bounded channel, and writes
/// the deflated pieces in input order as they come back; at most `2 × threads` pieces are in
/// flight, which bounds memory, and no worker ever waits for another (a slow piece only holds
/// back the writing of those after it). With one thread, pieces are deflated here.
fn gzip(
    input: &mut impl Read,
    out: &mut impl Write,
    level: u32,
    threads: usize,
    chunk: usize,
    cancel: &AtomicBool,
) -> io::Result<()> {
    let level = flate2::Compression::new(level);
    // Header: magic, deflate, no flags, no time, extra flags per level (as gzip sets them),
    // OS unknown (as flate2's `GzEncoder` writes it).
    let xfl = match level.level() {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
    let mut crc = Crc::new();
    let mut pieces = Pieces {
        input,
        chunk,
        dict: Vec::with_capacity(WINDOW),
        at_end: false,
    };
    if threads <= 1 {
        // One stream straight through: each piece continues the last, no priming needed.
        let mut deflate = Compress::new(level, false);
        let mut buf = Vec::new();
        while let Some(piece) = pieces.next(buf)? {
            check(cancel)?;
            let data = &piece.buf[piece.dict_len..];
            let bytes = deflate_piece(&mut deflate, data)?;
            out.write_all(&bytes)?;
            crc.update(data);
            buf = piece.buf;
        }
    } else {
        std::thread::scope(|scope| -> io::Result<()> {
            let (job_tx, job_rx) = crossbeam_channel::bounded::<(usize, Piece)>(threads);
            let (done_tx, done_rx) = crossbeam_channel::unbounded();
            for _ in 0..threads {
                let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
                std::thread::Builder::new()
                    .name("logsink-gzip".to_owned())
                    .spawn_scoped(scope, move || {
                        let mut deflate = Compress::new(level, false);
                        for (index, piece) in job_rx {
                            // A panic in the deflater (a bug there) must still answer: this
                            // thread waits for pieces that would never come back otherwise.
                            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                primed_piece(&mut deflate, &piece)
                            }))
                            .unwrap_or_else(|_| {
                                deflate = Compress::new(level, false);
                                Err(io::Error::other("the deflater panicked"))
                            });
                            // The receiver outlives the workers unless this thread errs out,
                            // and then nobody needs the result.
                            let _ = done_tx.send((index, result, piece.buf));
                        }
                    })?;
            }
            drop(done_tx);
            // Deflated pieces that came back ahead of their turn, by index.
            let mut ready = std::collections::BTreeMap::new();
            let (mut sent, mut written) = (0usize, 0usize);
            let mut spare = Vec::new();
            loop {
                while sent - written < 2 * threads {
                    check(cancel)?;
                    match pieces.next(spare.pop().unwrap_or_default())? {
                        Some(piece) => {
                            job_tx
                                .send((sent, piece))
                                .map_err(|_| io::Error::other("compression threads ended"))?;
                            sent += 1;
                        }
                        None => break,
                    }
                }
                if written == sent {
                    // Returning drops `job_tx`, which ends the workers; the scope joins them.
                    return Ok(());
                }
                let (index, result, buf) = done_rx
                    .recv()
                    .map_err(|_| io::Error::other("compression threads ended"))?;
                spare.push(buf);
                ready.insert(index, result?);
                while let Some((bytes, piece_crc)) = ready.remove(&written) {
                    out.write_all(&bytes)?;
                    crc.combine(&piece_crc);
                    written += 1;
                }
            }
        })?;
    }
    // Every piece ended in a sync flush: close the stream with an empty final block (fixed
    // Huffman codes: BFINAL=1, BTYPE=01, end-of-block code 0000000), as pigz does.
    out.write_all(&[0x03, 0x00])?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    Ok(())
}

/// Whether the folder's `<log_name>.gz` is the complete compression of `<log_name>`: its
/// trailer's CRC-32 and length are those of the `.log`. Start-up recovery asks before it
/// deletes a `.log` found beside its `.gz`.
fn gzip_holds(folder: &Folder, log_name: &str) -> bool {
    let check = || -> io::Result<bool> {
        let mut gz = folder.open_read(&format!("{log_name}.gz"))?;
        let len = gz.metadata()?.len();
        if len < 18 {
            return Ok(false);
        }
        let mut trailer = [0u8; 8];
        gz.seek(SeekFrom::Start(len - 8))?;
        gz.read_exact(&mut trailer)?;
        let mut log = folder.open_read(log_name)?;
        let mut crc = Crc::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match log.read(&mut buf)? {
                0 => break,
                n => crc.update(&buf[..n]),
            }
        }
        Ok(trailer[..4] == crc.sum().to_le_bytes() && trailer[4..] == crc.amount().to_le_bytes())
    };
    check().unwrap_or(false)
}

/// `Interrupted` once `cancel` is set.
pub(crate) fn check(cancel: &AtomicBool) -> io::Result<()> {
    if cancel.load(Relaxed) {
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "compression cancelled",
        ))
    } else {
        Ok(())
    }
}

/// One piece of input: `buf[..dict_len]` is the window before it (the last 32 KiB of the
/// input before the piece), `buf[dict_len..]` the piece itself.
struct Piece {
    buf: Vec<u8>,
    dict_len: usize,
}

/// Cuts the input into pieces, each carrying the window that precedes it.
struct Pieces<'a, R> {
    input: &'a mut R,
    chunk: usize,
    /// The last window of input read so far.
    dict: Vec<u8>,
    at_end: bool,
}

impl<R: Read> Pieces<'_, R> {
    /// The next piece, in `buf` (a recycled buffer, overwritten here); `None` at the end.
    fn next(&mut self, mut buf: Vec<u8>) -> io::Result<Option<Piece>> {
        if self.at_end {
            return Ok(None);
        }
        let dict_len = self.dict.len();
        // A recycled buffer keeps its length, so only bytes never used before are zeroed
        // (zeroing every piece anew would be pure overhead: the bytes are overwritten).
        buf.resize(dict_len + self.chunk, 0);
        buf[..dict_len].copy_from_slice(&self.dict);
        let (filled, at_end) = fill(self.input, &mut buf[dict_len..])?;
        self.at_end = at_end;
        buf.truncate(dict_len + filled);
        if filled == 0 {
            return Ok(None);
        }
        let keep = WINDOW.min(buf.len());
        self.dict.clear();
        self.dict.extend_from_slice(&buf[buf.len() - keep..]);
        Ok(Some(Piece { buf, dict_len }))
    }
}

/// Reads until `buf` is full; returns how much was read and whether the input ended first.
pub(crate) fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => return Ok((filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

/// Deflates `piece` as the start of a fresh stream primed with its window; returns the bytes
/// and the piece's CRC-32.
fn primed_piece(deflate: &mut Compress, piece: &Piece) -> io::Result<(Vec<u8>, Crc)> {
    let (dict, data) = piece.buf.split_at(piece.dict_len);
    deflate.reset();
    if !dict.is_empty() {
        deflate.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok((deflate_piece(deflate, data)?, crc))
}

/// Deflates `data` (raw deflate, no header) and ends it with a sync flush.
fn deflate_piece(deflate: &mut Compress, data: &[u8]) -> io::Result<Vec<u8>> {
    let start = deflate.total_in();
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = (deflate.total_in() - start) as usize;
        deflate
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Done when all input is in and the flush completed, which zlib signals by leaving
        // room in the output.
        if (deflate.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// Log-like text that varies from line to line, `len` bytes.
    pub(crate) fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 100);
        let mut i = 0u64;
        while out.len() < len {
            let id = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 100_003;
            out.extend_from_slice(
                format!("{{\"seq\":{i},\"fields\":{{\"message\":\"request {id} served\"}}}}\n")
                    .as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gzip_with(input: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        gzip(
            &mut &input[..],
            &mut out,
            6,
            threads,
            chunk,
            &AtomicBool::new(false),
        )
        .unwrap();
        out
    }

    /// flate2's `GzDecoder` reads one member only: a series of members would come back short.
    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Every length around the piece and wave boundaries (4 KiB pieces, waves of 1 and 3
    /// pieces) comes back byte for byte from a single-member reader, with the header and a
    /// trailer that carries the length.
    #[test]
    fn pieces_join_into_one_gzip_member() {
        const CHUNK: usize = 4096;
        for threads in [1, 3] {
            for len in [
                0,
                1,
                CHUNK - 1,
                CHUNK,
                CHUNK + 1,
                3 * CHUNK,
                3 * CHUNK + 1,
                10 * CHUNK + 17,
                100_000,
            ] {
                let input = sample(len);
                let out = gzip_with(&input, threads, CHUNK);
                assert_eq!(gunzip(&out), input, "{len} bytes on {threads} threads");
                assert_eq!(out[..4], [0x1f, 0x8b, 8, 0]);
                let n = out.len();
                let size = u32::from_le_bytes(out[n - 4..].try_into().unwrap());
                assert_eq!(size as usize, len);
            }
        }
    }

    /// Priming each piece with the previous window keeps the ratio of a single stream: with
    /// 8 KiB pieces (128 times smaller than in use, so each cut weighs 128 times more), the
    /// result must stay within 4% of flate2's own single-threaded `GzEncoder`, a bound that
    /// unprimed pieces of this size exceed.
    #[test]
    fn priming_keeps_the_ratio_of_one_stream() {
        let input = sample(1024 * 1024);
        let ours = gzip_with(&input, 4, 8 * 1024).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&input).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            (ours as f64) < single as f64 * 1.04,
            "{ours} bytes against {single} in one stream"
        );
    }

    /// A read that fails part-way (a disk error) ends the compression with that error, on one
    /// thread and on several, with no worker left waiting.
    #[test]
    fn a_read_error_ends_the_compression_with_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::from_raw_os_error(5));
                }
                let n = buf.len().min(self.0).min(1000);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        for threads in [1, 3] {
            let mut out = Vec::new();
            let error = gzip(
                &mut Failing(50_000),
                &mut out,
                6,
                threads,
                4096,
                &AtomicBool::new(false),
            )
            .unwrap_err();
            assert_eq!(error.raw_os_error(), Some(5), "{threads} threads");
        }
    }

    /// The file-level wrapper: the `.gz` decompresses to the source, keeps its time, and
    /// replaces it.
    #[test]
    fn gzip_file_replaces_the_log_with_its_gz() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = Folder::open(tmp.path(), "a", 35, Default::default()).unwrap();
        let input = sample(3 * CHUNK + 12_345);
        fs::write(tmp.path().join("a.log"), &input).unwrap();
        let before = fs::metadata(tmp.path().join("a.log"))
            .unwrap()
            .modified()
            .unwrap();
        let size =
            compress_file(&folder, "a.log", Codec::Gzip(6), 2, &AtomicBool::new(false)).unwrap();
        let gz = fs::read(tmp.path().join("a.log.gz")).unwrap();
        assert_eq!(gz.len() as u64, size);
        assert_eq!(gunzip(&gz), input);
        assert!(!tmp.path().join("a.log").exists());
        let after = fs::metadata(tmp.path().join("a.log.gz"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(after, before);
    }
}
