//! The benchmark workload, shared by `benches/throughput.rs` and `examples/throughput.rs`.

/// The workload: four event shapes at different levels, 3 to 5 fields each, so that the
/// text varies the way real logs do.
#[inline(never)]
pub fn emit(i: u64) {
    match i % 4 {
        0 => tracing::info!(
            request_id = format_args!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            method = "GET",
            path = "/api/v1/items",
            status = 200u16,
            "request served in {} us",
            150 + i % 700
        ),
        1 => tracing::debug!(
            cache = "items",
            hit = !i.is_multiple_of(3),
            ratio = (i % 1000) as f64 / 1000.0,
            "cache lookup"
        ),
        2 => tracing::warn!(
            upstream = "billing",
            attempt = i % 5,
            latency_ms = 20.5 + (i % 300) as f64,
            user = "user-4711",
            "slow upstream"
        ),
        _ => tracing::error!(
            error = "connection reset by peer",
            code = -104i32,
            retry = i.is_multiple_of(2),
            "request {} failed",
            i
        ),
    }
}

/// Bytes of the files directly in `dir` (what a run left on disk).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
