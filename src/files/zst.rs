//! Zstd compression of rotated files (feature `zstd`), through libzstd.
//!
//! # Parallel, yet one standard frame
//! libzstd compresses on several threads by itself (`ZSTD_c_nbWorkers`): it cuts the input into
//! jobs, primes each with the end of the one before (so the ratio stays that of one stream),
//! and joins them into a single frame. That is the frame `zstd -d`, `zstdcat` and every
//! library read, with the content's size in its header and an XXH64 checksum at its end;
//! independent pieces concatenated would make several frames instead. The input is fed in
//! [`CHUNK`](crate::files::compress::CHUNK)-sized pieces, so that a cancellation is seen
//! between two of them, as for gzip.
//!
//! The crash-safe sequence around it (`.zst.tmp`, sync, rename, sync, delete the `.log`) is
//! [`compress_file`](crate::files::compress::compress_file)'s, shared with gzip.

use std::io::{self, Read, Write};
use std::sync::atomic::AtomicBool;

use crate::files::compress::{check, fill};
use crate::files::folder::Folder;

/// Writes `input` (`len` bytes) to `out` as one zstd frame at `level`, on `threads` libzstd
/// worker threads (none beside this one for 1), with the content's size and checksum.
pub(crate) fn zstd(
    input: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    level: i32,
    threads: usize,
    chunk: usize,
    cancel: &AtomicBool,
) -> io::Result<()> {
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    encoder.include_checksum(true)?;
    // The size in the frame header: `zstd -l` shows it, and a reader knows what to expect. A
    // source whose length differs from it fails the compression rather than mislabel it.
    encoder.set_pledged_src_size(Some(len))?;
    if threads > 1 {
        encoder.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
    }
    let mut buf = vec![0u8; chunk];
    loop {
        check(cancel)?;
        let (filled, at_end) = fill(input, &mut buf)?;
        encoder.write_all(&buf[..filled])?;
        if at_end {
            break;
        }
    }
    encoder.finish()?;
    Ok(())
}

/// Whether the folder's `<log_name>.zst` holds exactly the bytes of `<log_name>`: it is
/// decompressed (which also checks its checksum) and compared with the `.log`, byte for byte,
/// to the end of both. Start-up recovery asks before it deletes a `.log` found beside its
/// `.zst`; a `.zst` that is cut short, corrupt, another file's, or holds more, leaves the
/// `.log` alone. The comparison stops at the first difference.
pub(crate) fn zstd_holds(folder: &Folder, log_name: &str) -> bool {
    let check = || -> io::Result<bool> {
        let zst = folder.open_read(&format!("{log_name}.zst"))?;
        let mut log = folder.open_read(log_name)?;
        let mut decoder = zstd::stream::read::Decoder::new(zst)?;
        same_bytes(&mut decoder, &mut log)
    };
    check().unwrap_or(false)
}

/// Whether `a` and `b` read the same bytes to their ends.
fn same_bytes(a: &mut impl Read, b: &mut impl Read) -> io::Result<bool> {
    const STEP: usize = 256 * 1024;
    let (mut x, mut y) = (vec![0u8; STEP], vec![0u8; STEP]);
    loop {
        let (n, a_end) = fill(a, &mut x)?;
        let (m, b_end) = fill(b, &mut y)?;
        if x[..n] != y[..m] {
            return Ok(false);
        }
        if a_end || b_end {
            return Ok(a_end && b_end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::compress::tests::sample;
    use crate::files::compress::{compress_file, Codec, CHUNK};
    use std::fs;
    use std::io::Read;

    fn zstd_with(input: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        zstd(
            &mut &input[..],
            input.len() as u64,
            &mut out,
            1,
            threads,
            chunk,
            &AtomicBool::new(false),
        )
        .unwrap();
        out
    }

    fn unzstd(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Lengths around the feeding pieces' edges, on one thread and on libzstd's workers (with
    /// enough input for several of its jobs: 2 MiB each at level 1): each result is exactly one frame, whose header
    /// carries the content size and the checksum flag, and decompresses to the input.
    #[test]
    fn one_frame_with_size_and_checksum_on_any_thread_count() {
        const PIECE: usize = 4096;
        for threads in [1, 3] {
            for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 10 * PIECE + 17, 5 << 20] {
                let input = sample(len);
                let out = zstd_with(&input, threads, PIECE);
                let what = format!("{len} bytes on {threads} threads");
                assert_eq!(unzstd(&out), input, "{what}");
                assert_eq!(
                    zstd::zstd_safe::find_frame_compressed_size(&out),
                    Ok(out.len()),
                    "{what}: not exactly one frame"
                );
                assert_eq!(
                    zstd::zstd_safe::get_frame_content_size(&out).ok(),
                    Some(Some(len as u64)),
                    "{what}"
                );
                // Frame header descriptor (after the 4-byte magic): Content_Checksum_flag.
                assert_eq!(out[4] & 0x04, 0x04, "{what}: no checksum");
            }
        }
    }

    /// A source shorter or longer than its announced size fails the compression instead of
    /// writing a frame whose header is wrong.
    #[test]
    fn a_source_that_is_not_its_announced_size_fails() {
        let input = sample(100_000);
        for announced in [99_999, 100_001] {
            let mut out = Vec::new();
            let result = zstd(
                &mut &input[..],
                announced,
                &mut out,
                1,
                1,
                CHUNK,
                &AtomicBool::new(false),
            );
            assert!(result.is_err(), "announced {announced}: {result:?}");
        }
    }

    /// A set cancel flag stops the compression with `Interrupted`.
    #[test]
    fn cancel_interrupts() {
        let input = sample(100_000);
        let mut out = Vec::new();
        let error = zstd(
            &mut &input[..],
            input.len() as u64,
            &mut out,
            1,
            2,
            4096,
            &AtomicBool::new(true),
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
    }

    /// The file-level wrapper: the `.zst` decompresses to the source, keeps its time, replaces
    /// it, and leaves no temporary file; `zstd_holds` then says it holds a copy of the source,
    /// and refuses `.zst` files that are another file's, cut short, carry one more frame, or
    /// have a damaged checksum.
    #[test]
    fn compress_file_makes_a_zst_that_holds_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let folder = Folder::open(dir, "a", 36, Default::default()).unwrap();
        let input = sample(3 * CHUNK + 12_345);
        fs::write(dir.join("a.log"), &input).unwrap();
        let before = fs::metadata(dir.join("a.log")).unwrap().modified().unwrap();
        let size =
            compress_file(&folder, "a.log", Codec::Zstd(3), 2, &AtomicBool::new(false)).unwrap();
        let zst = fs::read(dir.join("a.log.zst")).unwrap();
        assert_eq!(zst.len() as u64, size);
        assert_eq!(unzstd(&zst), input);
        assert!(!dir.join("a.log").exists());
        assert!(!dir.join("a.log.zst.tmp").exists());
        let after = fs::metadata(dir.join("a.log.zst"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(after, before);

        // The `.log` back beside it, as after a crash between the rename and the delete.
        fs::write(dir.join("a.log"), &input).unwrap();
        assert!(zstd_holds(&folder, "a.log"));
        let other = zstd_with(&sample(1000), 1, CHUNK);
        let mut cut = zst.clone();
        cut.truncate(zst.len() - 3);
        let mut two_frames = zst.clone();
        two_frames.extend_from_slice(&zstd_with(b"more\n", 1, CHUNK));
        let mut bad_checksum = zst.clone();
        *bad_checksum.last_mut().unwrap() ^= 1;
        for (what, bytes) in [
            ("another file's", other),
            ("cut short", cut),
            ("one frame more", two_frames),
            ("a damaged checksum", bad_checksum),
            ("empty", Vec::new()),
        ] {
            fs::write(dir.join("a.log.zst"), &bytes).unwrap();
            assert!(
                !zstd_holds(&folder, "a.log"),
                "a .zst {what} holds the .log"
            );
        }
        // A `.log` cut short does not match a complete `.zst` either.
        fs::write(dir.join("a.log.zst"), &zst).unwrap();
        fs::write(dir.join("a.log"), &input[..input.len() - 1]).unwrap();
        assert!(!zstd_holds(&folder, "a.log"));
    }
}
