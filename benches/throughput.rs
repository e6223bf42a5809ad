//! Side-by-side benchmark: logsink against tracing-appender on the same workload, in one run.
//!
//! `cargo bench --bench throughput` runs every configuration several times, alternating, each
//! run in a fresh child process (so peak RSS is that sink's alone), and prints medians:
//!
//! - **throughput**: 4 threads (`BENCH_THREADS`) log flat out; the clock stops when shutdown has returned (for
//!   logsink: every rotated file compressed). 64 MiB rotation.
//! - **caller latency**: the same 4 threads paced at a rate every sink keeps up with; each
//!   call is timed on the calling thread; p50, p99, p99.9 and max over all calls. Two floors are
//!   timed the same way: a registry with a no-op layer, and one with a layer that only copies
//!   the event's field values into a reused thread-local buffer (formatting only `Debug`
//!   values, such as messages with arguments) and sends nothing: the least a sink that records
//!   what the caller passed can do on the calling thread.
//!
//! `logsink-writer` is tracing-subscriber's `fmt::layer().json()` writing through logsink's
//! `SinkWriter` (`Builder::build_writer`), with gzip and rotation as `logsink-gzip6`;
//! `logsink-writer-none` the same without compression, as tracing-appender writes. Like
//! tracing-appender's writer, and unlike the logsink layer, they format each event on the
//! calling thread, so their caller latency includes fmt's JSON formatting.
//!
//! The ratios against tracing-appender are taken within each round, whose runs follow each
//! other closely, and their median over the rounds is printed with the lowest and highest:
//! on a shared machine a slow spell then weighs on both sides of a ratio.
//!
//! With `--features zstd` a row `logsink-zstd1` is added: the layer with `Compression::Zstd {
//! level: 1 }`, otherwise as `logsink-gzip6`.
//!
//! Settings (environment): `BENCH_ROUNDS` (default 5), `BENCH_THREADS` the numbers of logging
//! threads, comma-separated (default 4), `BENCH_EVENTS` per thread for the throughput runs
//! (default 250,000), `BENCH_RATE` events/s per thread for the latency runs (default 25,000),
//! `BENCH_SECONDS` length of a latency run (default 2).
//!
//! With several thread counts (`BENCH_THREADS=1,2,4,8`), each round runs every configuration at
//! each count, the full tables are printed for each count, and then a scaling table: events/s
//! and caller latency by threads and sink, with the machine's CPU count, since threads beyond
//! it measure contention for the CPUs rather than scaling.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tracing::Dispatch;

#[path = "support/workload.rs"]
mod workload;
use tracing_subscriber::prelude::*;
use workload::{dir_bytes, emit};

/// Logging threads when `BENCH_THREADS` is not set.
const DEFAULT_THREADS: usize = 4;
const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// The sinks compared (`logsink-zstd1` with the `zstd` feature).
const SINKS: [&str; 5 + cfg!(feature = "zstd") as usize] = [
    "tracing-appender",
    "logsink-gzip6",
    #[cfg(feature = "zstd")]
    "logsink-zstd1",
    "logsink-none",
    "logsink-writer",
    "logsink-writer-none",
];
/// A registry with a layer that does nothing: the floor for caller latency (timer included).
const NOOP: &str = "noop-layer";
/// A registry with a layer that copies the event's field values and does nothing else.
const VISIT: &str = "visit-only";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Each round's runs of one configuration: `(mode, sink)` → one result per round.
type Results = BTreeMap<(String, String), Vec<BTreeMap<String, f64>>>;

/// `BENCH_THREADS`: comma-separated thread counts, each at least 1.
fn thread_counts() -> Vec<usize> {
    let Ok(spec) = std::env::var("BENCH_THREADS") else {
        return vec![DEFAULT_THREADS];
    };
    let counts: Result<Vec<usize>, _> = spec.split(',').map(|n| n.trim().parse()).collect();
    match counts {
        Ok(mut counts) if !counts.is_empty() && !counts.contains(&0) => {
            counts.sort_unstable();
            counts.dedup();
            counts
        }
        _ => {
            eprintln!("BENCH_THREADS={spec:?}: expected thread counts such as 1,2,4,8");
            std::process::exit(2);
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("LOGSINK_BENCH_CHILD") {
        let mut parts = spec.splitn(3, ':');
        let (Some(mode), Some(threads), Some(sink)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("LOGSINK_BENCH_CHILD={spec:?}: expected mode:threads:sink");
        };
        child(mode, threads.parse().expect("a thread count"), sink);
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 5);
    let counts = thread_counts();
    let mut results: BTreeMap<usize, Results> = BTreeMap::new();
    // Thread counts inside a round: each round's runs of one count follow each other closely,
    // as the ratios taken within a round assume.
    for round in 0..rounds {
        for &threads in &counts {
            for mode in ["throughput", "latency"] {
                let floors = if mode == "latency" {
                    &[NOOP, VISIT][..]
                } else {
                    &[]
                };
                for sink in SINKS.into_iter().chain(floors.iter().copied()) {
                    eprint!(
                        "\rround {}/{rounds}: {threads} threads, {mode} {sink}                ",
                        round + 1
                    );
                    let r = run_child(mode, threads, sink);
                    results
                        .entry(threads)
                        .or_default()
                        .entry((mode.to_owned(), sink.to_owned()))
                        .or_default()
                        .push(r);
                }
            }
        }
    }
    eprintln!();
    for (&threads, results) in &results {
        report(results, rounds, threads);
    }
    if results.len() > 1 {
        scaling(&results, rounds);
    }
}

fn run_child(mode: &str, threads: usize, sink: &str) -> BTreeMap<String, f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("LOGSINK_BENCH_CHILD", format!("{mode}:{threads}:{sink}"))
        .output()
        .expect("running the benchmark child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {mode}:{threads}:{sink} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// One run, in this (child) process: prints `RESULT key=value ...`.
fn child(mode: &str, threads: usize, sink: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, finish) = make_sink(sink, dir.path());
    let mut result = BTreeMap::new();
    match mode {
        "throughput" => {
            let per_thread = env_or("BENCH_EVENTS", 250_000);
            let start = Instant::now();
            run_threads(threads, &dispatch, move |t, dispatch| {
                tracing::dispatcher::with_default(dispatch, || {
                    let span = tracing::info_span!("worker", thread = t, role = "bench");
                    let _entered = span.enter();
                    for i in 0..per_thread {
                        emit(i);
                    }
                });
                Vec::new()
            });
            drop(dispatch);
            let dropped = finish();
            let secs = start.elapsed().as_secs_f64();
            let events = per_thread as f64 * threads as f64;
            result.insert("events_per_s", (events - dropped as f64) / secs);
            result.insert("dropped", dropped as f64);
            result.insert("events", events);
        }
        _ => {
            let rate = env_or("BENCH_RATE", 25_000);
            let seconds = env_or("BENCH_SECONDS", 2);
            let per_thread = rate * seconds;
            let paced = Instant::now();
            let samples = run_threads(threads, &dispatch, move |t, dispatch| {
                let mut samples = Vec::with_capacity(per_thread as usize);
                tracing::dispatcher::with_default(dispatch, || {
                    let span = tracing::info_span!("worker", thread = t, role = "bench");
                    let _entered = span.enter();
                    let start = Instant::now();
                    let gap = Duration::from_secs(1) / rate as u32;
                    for i in 0..per_thread {
                        // Paced in bursts of 64 so that the pacing itself does not spin.
                        if i % 64 == 0 {
                            let due = start + gap * i as u32;
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let t0 = Instant::now();
                        emit(i);
                        samples.push(t0.elapsed().as_nanos() as u64);
                    }
                });
                samples
            });
            // A run that took longer than planned fell behind the offered rate: its callers
            // waited for room, and its latency is the queue's, not the call's.
            result.insert("late", paced.elapsed().as_secs_f64() / seconds as f64);
            drop(dispatch);
            let dropped = finish();
            let mut all: Vec<u64> = samples.into_iter().flatten().collect();
            all.sort_unstable();
            let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize] as f64;
            result.insert("p50_ns", pct(0.50));
            result.insert("p99_ns", pct(0.99));
            result.insert("p999_ns", pct(0.999));
            result.insert("max_ns", *all.last().unwrap() as f64);
            result.insert("dropped", dropped as f64);
        }
    }
    result.insert("peak_rss_mib", peak_rss_kib() as f64 / 1024.0);
    result.insert("disk_mib", dir_bytes(dir.path()) as f64 / (1024.0 * 1024.0));
    let line: Vec<String> = result.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
}

type Finish = Box<dyn FnOnce() -> u64>;

/// A dispatcher logging into `dir` through `sink`, and what ends it (returning events dropped).
fn make_sink(sink: &str, dir: &Path) -> (Dispatch, Finish) {
    match sink {
        NOOP => {
            struct Noop;
            impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Noop {}
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(Noop));
            (dispatch, Box::new(|| 0))
        }
        VISIT => {
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(VisitOnly));
            (dispatch, Box::new(|| 0))
        }
        "tracing-appender" => {
            let file = tracing_appender::rolling::never(dir, "app.log");
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
            // Dropping the worker guard flushes and joins its writer; it drops nothing when
            // not lossy.
            (
                dispatch,
                Box::new(move || {
                    drop(guard);
                    0
                }),
            )
        }
        "logsink-writer" | "logsink-writer-none" => {
            let compression = if sink == "logsink-writer" {
                logsink::Compression::Gzip { level: 6 }
            } else {
                logsink::Compression::None
            };
            let (writer, guard) = logsink::LogSink::builder()
                .directory(dir)
                .max_file_size(ROTATE_BYTES)
                .compression(compression)
                .build_writer()
                .unwrap();
            let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
            (
                dispatch,
                Box::new(move || {
                    let stats = guard.shutdown_blocking().unwrap();
                    stats.events_dropped
                }),
            )
        }
        _ => {
            let compression = match sink {
                "logsink-gzip6" => logsink::Compression::Gzip { level: 6 },
                #[cfg(feature = "zstd")]
                "logsink-zstd1" => logsink::Compression::Zstd { level: 1 },
                _ => logsink::Compression::None,
            };
            let (layer, guard) = logsink::LogSink::builder()
                .directory(dir)
                .max_file_size(ROTATE_BYTES)
                .compression(compression)
                .build()
                .unwrap();
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
            (
                dispatch,
                Box::new(move || {
                    let stats = guard.shutdown_blocking().unwrap();
                    stats.events_dropped
                }),
            )
        }
    }
}

/// The [`VISIT`] floor: each event's field values copied into a buffer that is cleared and
/// reused, in the least work that keeps them (strings and numbers as they are, only `Debug`
/// values such as formatted messages formatted); nothing leaves the thread.
struct VisitOnly;

struct ValuesInto<'a>(&'a mut Vec<u8>);

impl tracing::field::Visit for ValuesInto<'_> {
    fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
        self.0.extend_from_slice(value.as_bytes());
    }
    fn record_i64(&mut self, _: &tracing::field::Field, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn record_u64(&mut self, _: &tracing::field::Field, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn record_f64(&mut self, _: &tracing::field::Field, value: f64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn record_bool(&mut self, _: &tracing::field::Field, value: bool) {
        self.0.push(value as u8);
    }
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::io::Write;
        let _ = write!(self.0, "{value:?}");
    }
}

thread_local! {
    static VALUES: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for VisitOnly {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        VALUES.with(|buf| {
            let mut buf = buf.borrow_mut();
            event.record(&mut ValuesInto(&mut buf));
            std::hint::black_box(buf.len());
            buf.clear();
        });
    }
}

fn run_threads<F>(threads: usize, dispatch: &Dispatch, body: F) -> Vec<Vec<u64>>
where
    F: Fn(usize, &Dispatch) -> Vec<u64> + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let barrier = Arc::new(Barrier::new(threads));
    let threads: Vec<_> = (0..threads)
        .map(|t| {
            let (body, barrier, dispatch) = (body.clone(), barrier.clone(), dispatch.clone());
            std::thread::spawn(move || {
                barrier.wait();
                body(t, &dispatch)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The median over the rounds of `key` in the runs of `sink` in `mode`.
fn med(results: &Results, mode: &str, sink: &str, key: &str) -> f64 {
    let mut v: Vec<f64> = results[&(mode.to_owned(), sink.to_owned())]
        .iter()
        .map(|r| r[key])
        .collect();
    median(&mut v)
}

/// `key` of `num` divided by that of `den`, taken within each round (the two runs were minutes
/// apart at most, so a slow spell of this shared machine hits both): the median over the
/// rounds, the lowest and the highest.
fn ratio(results: &Results, mode: &str, num: &str, den: &str, key: &str) -> (f64, f64, f64) {
    let (a, b) = (
        &results[&(mode.to_owned(), num.to_owned())],
        &results[&(mode.to_owned(), den.to_owned())],
    );
    let mut v: Vec<f64> = a.iter().zip(b).map(|(x, y)| x[key] / y[key]).collect();
    let mid = median(&mut v);
    (mid, v[0], v[v.len() - 1])
}

/// A ratio as `2.00×`, or below 1 as `1/2.0`.
fn times(r: f64) -> String {
    if r >= 1.0 {
        format!("{r:.2}×")
    } else {
        format!("1/{:.1}", 1.0 / r)
    }
}

/// A ratio from [`ratio`] with its range: `2.00× (1.90–2.10)`.
fn with_range((mid, lo, hi): (f64, f64, f64)) -> String {
    if mid >= 1.0 {
        format!("{mid:.2}× ({lo:.2}–{hi:.2})")
    } else {
        format!("1/{:.1} (1/{:.1}–1/{:.1})", 1.0 / mid, 1.0 / lo, 1.0 / hi)
    }
}

/// The CPUs this process may use, and the CPU's model name.
fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    (cpus, cpu)
}

const BASE: &str = "tracing-appender";

/// How much longer than planned the latency runs of `sink` took (median), when that is more
/// than a little: the sink did not keep up with the offered rate.
fn behind(results: &Results, sink: &str) -> Option<f64> {
    let late = med(results, "latency", sink, "late");
    (late > 1.05).then_some(late)
}

/// The full tables for one thread count.
fn report(results: &Results, rounds: u64, threads: usize) {
    let get = |mode: &str, sink: &str, key: &str| med(results, mode, sink, key);
    let (cpus, cpu) = machine();
    println!("\nlogsink vs tracing-appender: {threads} threads, medians of {rounds} rounds, {cpus} CPUs ({cpu})\n");
    println!(
        "| sink | events/s | p50 | p99 | p99.9 | max | peak RSS (tput) | disk (tput) | dropped |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for sink in SINKS {
        println!(
            "| {sink} | {:.0} | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} µs | {:.1} MiB | {:.1} MiB | {:.0} |",
            get("throughput", sink, "events_per_s"),
            get("latency", sink, "p50_ns"),
            get("latency", sink, "p99_ns"),
            get("latency", sink, "p999_ns"),
            get("latency", sink, "max_ns") / 1000.0,
            get("throughput", sink, "peak_rss_mib"),
            get("throughput", sink, "disk_mib"),
            get("throughput", sink, "dropped") + get("latency", sink, "dropped"),
        );
    }
    for sink in SINKS {
        if let Some(late) = behind(results, sink) {
            println!(
                "\n{sink} fell behind the latency runs' {} events/s: they took {late:.2}× as long \
                 as planned, so its latency includes waiting for room in its queue.",
                env_or("BENCH_RATE", 25_000) * threads as u64
            );
        }
    }
    println!(
        "\nWho formats: tracing-appender and logsink-writer(-none) (fmt::layer().json() into \
         SinkWriter; gzip 6, or none as tracing-appender) format each event on the calling \
         thread; the logsink layer rows only copy the values there and format on the writer \
         thread."
    );
    println!("\nfloors, timed the same way:\n");
    for (floor, what) in [
        (NOOP, "registry + a layer that does nothing"),
        (
            VISIT,
            "registry + a layer that only copies the field values",
        ),
    ] {
        println!(
            "- {floor} ({what}): p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns",
            get("latency", floor, "p50_ns"),
            get("latency", floor, "p99_ns"),
            get("latency", floor, "p999_ns"),
        );
    }
    let base = BASE;
    let ratio = |mode: &str, num: &str, den: &str, key: &str| {
        with_range(ratio(results, mode, num, den, key))
    };
    println!("\nratios against {base}, per round, median (lowest–highest):\n");
    println!("| sink | throughput | p50 | p99 | p99.9 | p50 against {NOOP} |");
    println!("|---|---:|---:|---:|---:|---:|");
    // The floor's own ratios come last: how much of each latency target is left for any sink.
    for (sink, label) in SINKS[1..]
        .iter()
        .map(|s| (*s, *s))
        .chain([(VISIT, "visit-only (floor)")])
    {
        let throughput = if sink == VISIT {
            "–".to_owned()
        } else {
            ratio("throughput", sink, base, "events_per_s")
        };
        println!(
            "| {label} | {throughput} | {} | {} | {} | {} |",
            ratio("latency", sink, base, "p50_ns"),
            ratio("latency", sink, base, "p99_ns"),
            ratio("latency", sink, base, "p999_ns"),
            ratio("latency", sink, NOOP, "p50_ns"),
        );
    }
}

/// The scaling table: for each thread count and sink, events/s (against the fewest threads and
/// against tracing-appender) and caller latency, with the no-op floor timed under the same
/// load.
fn scaling(results: &BTreeMap<usize, Results>, rounds: u64) {
    let (cpus, cpu) = machine();
    let (&fewest, first) = results.iter().next().expect("a thread count");
    println!(
        "\nscaling: medians of {rounds} rounds, ratios per round (median); {cpus} CPUs ({cpu})"
    );
    println!(
        "with more logging threads than the {cpus} CPUs, the rows measure contention for the \
         CPUs (threads preempted mid-call, the writer sharing them), not scaling\n"
    );
    println!(
        "| threads | sink | events/s | vs {fewest} thread(s) | vs {BASE} | p50 | p99.9 | p99.9 vs {BASE} |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut fell_behind = false;
    for (&threads, r) in results {
        for sink in SINKS {
            // Marks latency measured while the sink fell behind the offered rate.
            let mark = if behind(r, sink).is_some() {
                fell_behind = true;
                " †"
            } else {
                ""
            };
            let own = |key: &str| med(r, "latency", sink, key);
            // Per round: this count's run against the fewest threads' run of the same round.
            let mut scale: Vec<f64> = r[&("throughput".to_owned(), sink.to_owned())]
                .iter()
                .zip(&first[&("throughput".to_owned(), sink.to_owned())])
                .map(|(x, y)| x["events_per_s"] / y["events_per_s"])
                .collect();
            let (vs_base, vs_base_tail) = if sink == BASE {
                ("–".to_owned(), "–".to_owned())
            } else {
                (
                    times(ratio(r, "throughput", sink, BASE, "events_per_s").0),
                    times(ratio(r, "latency", sink, BASE, "p999_ns").0),
                )
            };
            println!(
                "| {threads} | {sink} | {:.0} | {} | {vs_base} | {:.0} ns{mark} | {:.0} ns{mark} | {vs_base_tail} |",
                med(r, "throughput", sink, "events_per_s"),
                times(median(&mut scale)),
                own("p50_ns"),
                own("p999_ns"),
            );
        }
        println!(
            "| {threads} | {NOOP} (floor) | – | – | – | {:.0} ns | {:.0} ns | – |",
            med(r, "latency", NOOP, "p50_ns"),
            med(r, "latency", NOOP, "p999_ns"),
        );
    }
    if fell_behind {
        println!(
            "\n† the sink fell behind the latency run's offered rate ({} events/s per thread): \
             the run took over 5% longer than planned, and its latency includes waiting for room \
             in its queue",
            env_or("BENCH_RATE", 25_000)
        );
    }
}
