//! [`ScopedSink`]: a sink that is the default subscriber for one future (or closure), then is
//! flushed and closed whatever that code did — returned, failed, panicked or was cancelled.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

use crate::{Builder, Error, SinkGuard, Stats, StatsHandle};

impl Builder {
    /// Builds the sink like [`build`](Builder::build) and installs its layer in a fresh
    /// [`tracing_subscriber::registry()`], for use as the default subscriber of one future or
    /// closure: see [`ScopedSink`].
    ///
    /// # Errors
    /// As [`build`](Builder::build).
    pub fn build_scoped(self) -> Result<ScopedSink, Error> {
        let (layer, guard) = self.build()?;
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        Ok(ScopedSink::new(dispatch, guard))
    }
}

/// A sink that logs for the duration of one piece of code and is then flushed and closed: the
/// async-context-manager way to use `logsink`.
///
/// [`run`](ScopedSink::run) polls a future with the sink as the default subscriber, then shuts
/// the sink down and returns the future's output together with the final [`Stats`].
/// [`run_blocking`](ScopedSink::run_blocking) does the same for a closure, without a runtime.
/// In every case the files are flushed and closed before the caller continues:
///
/// - the code returns (`Ok`, `Err`, or anything else): `run` awaits
///   [`SinkGuard::shutdown`], `run_blocking` calls [`SinkGuard::shutdown_blocking`];
/// - the code panics: the panic is caught, the sink is shut down, and the panic is resumed
///   (so the caller sees the original panic, with every event logged before it on disk);
/// - the future returned by `run` is dropped before it completes (cancelled, e.g. by
///   `tokio::time::timeout` or `select!`): the inner future is dropped — still with the sink as
///   its default subscriber, so events its destructors log are written — and then the guard's
///   `Drop` does a blocking shutdown.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("logs");
/// let (result, stats) = logsink::LogSink::builder()
///     .directory(&dir)
///     .build_scoped()?
///     .run(async {
///         tracing::info!(port = 8080, "serving");
///         Ok::<_, std::io::Error>(42)
///     })
///     .await;
/// assert_eq!(result?, 42);
/// assert_eq!(stats?.events_written, 1); // and dir/app.log is closed
/// # Ok(()) }
/// ```
///
/// The sink is the default subscriber only while its own future is polled (or its closure
/// runs). Tasks and threads started from inside do not inherit it; carry it along with
/// [`WithSubscriber::with_current_subscriber`](tracing::instrument::WithSubscriber::with_current_subscriber)
/// (`tokio::spawn(task.with_current_subscriber())`) or [`ScopedSink::dispatch`]. Events they
/// log after the sink was shut down are not written (they are counted as dropped, after the
/// returned stats were taken).
///
/// Create spans for the code inside the scope too: `scoped.run(fut.instrument(info_span!(..)))`
/// creates the span *before* `run`, under the caller's default subscriber, so the sink never
/// sees it. Write `scoped.run(async { fut.instrument(info_span!(..)).await })` instead.
///
/// To compose the sink with other layers, build the subscriber yourself and hand both halves
/// to [`ScopedSink::new`]:
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let (layer, guard) = logsink::LogSink::builder().directory(tmp.path()).build()?;
/// let subscriber = tracing_subscriber::registry()
///     .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO));
/// let scoped = logsink::ScopedSink::new(subscriber.into(), guard);
/// let ((), stats) = scoped.run_blocking(|| tracing::debug!("filtered out"));
/// assert_eq!(stats?.events_written, 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a scoped sink does nothing until `run` or `run_blocking` is called; dropping it shuts the sink down"]
pub struct ScopedSink {
    dispatch: Dispatch,
    guard: SinkGuard,
}

impl ScopedSink {
    /// A scoped sink from a subscriber of your own (which should contain the sink's layer) and
    /// the sink's guard. [`Builder::build_scoped`] does this with a plain registry.
    pub fn new(dispatch: Dispatch, guard: SinkGuard) -> Self {
        ScopedSink { dispatch, guard }
    }

    /// The subscriber the code runs under, e.g. to clone it for threads started from inside.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// A snapshot of the sink's counters: see [`SinkGuard::stats`].
    pub fn stats(&self) -> Stats {
        self.guard.stats()
    }

    /// A handle on the sink's counters that stays valid after `run` or `run_blocking` has
    /// consumed the scoped sink: see [`SinkGuard::stats_handle`]. Events logged after the
    /// scope ended (by threads or tasks that kept the [`dispatch`](ScopedSink::dispatch)) are
    /// counted as dropped, and show up here but not in the stats `run` returned.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let scoped = logsink::LogSink::builder().directory(tmp.path()).build_scoped()?;
    /// let handle = scoped.stats_handle();
    /// let dispatch = scoped.dispatch().clone();
    /// let ((), stats) = scoped.run_blocking(|| tracing::info!("inside"));
    /// assert_eq!(stats?.events_written, 1);
    ///
    /// tracing::dispatcher::with_default(&dispatch, || tracing::info!("too late"));
    /// let now = handle.get();
    /// assert_eq!((now.events_written, now.events_dropped), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        self.guard.stats_handle()
    }

    /// Polls `future` with the sink as the default subscriber, then shuts the sink down
    /// (asynchronously: [`SinkGuard::shutdown`]) and returns the future's output with the
    /// final statistics.
    ///
    /// If `future` panics, the sink is shut down first and the panic is then resumed. If the
    /// returned future is dropped before it completes, `future` is dropped (with the sink still
    /// its default subscriber) and the sink is shut down by the guard's blocking `Drop`.
    ///
    /// The returned future is `Send` when `future` is.
    ///
    /// # Errors
    /// The second element is the result of [`SinkGuard::shutdown`]: the last write error if
    /// some accepted events could not be written, or [`Error::WriterGone`].
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let scoped = logsink::LogSink::builder().directory(tmp.path()).build_scoped()?;
    /// let (served, stats) = scoped
    ///     .run(async {
    ///         for request in 0..3 {
    ///             tracing::info!(request, "served");
    ///             tokio::task::yield_now().await;
    ///         }
    ///         3
    ///     })
    ///     .await;
    /// assert_eq!(served, 3);
    /// assert_eq!(stats?.events_written, 3);
    /// # Ok(()) }
    /// ```
    pub async fn run<F>(self, future: F) -> (F::Output, Result<Stats, Error>)
    where
        F: Future,
    {
        let ScopedSink { dispatch, guard } = self;
        let (outcome, guard) = CatchUnwind {
            future: Some(Box::pin(future)),
            dispatch,
            guard: Some(guard),
        }
        .await;
        let stats = guard.shutdown().await;
        finish(outcome, stats)
    }

    /// Runs `f` with the sink as the default subscriber
    /// ([`tracing::dispatcher::with_default`]), then shuts the sink down
    /// ([`SinkGuard::shutdown_blocking`]) and returns `f`'s result with the final statistics.
    /// For code without an async runtime.
    ///
    /// If `f` panics, the sink is shut down first and the panic is then resumed.
    ///
    /// # Errors
    /// The second element is the result of [`SinkGuard::shutdown_blocking`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let (answer, stats) = logsink::LogSink::builder()
    ///     .directory(tmp.path())
    ///     .build_scoped()?
    ///     .run_blocking(|| {
    ///         tracing::warn!(disk = "/dev/sda", "almost full");
    ///         42
    ///     });
    /// assert_eq!(answer, 42);
    /// assert_eq!(stats?.events_written, 1);
    /// # Ok(()) }
    /// ```
    pub fn run_blocking<R>(self, f: impl FnOnce() -> R) -> (R, Result<Stats, Error>) {
        let ScopedSink { dispatch, guard } = self;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            tracing::dispatcher::with_default(&dispatch, f)
        }));
        drop(dispatch);
        let stats = guard.shutdown_blocking();
        finish(outcome, stats)
    }
}

/// Returns the output with the stats, or resumes the caught panic (the sink is closed by now;
/// a shutdown error that cannot be returned is reported on stderr, as `Drop` of the guard does).
fn finish<T>(
    outcome: Result<T, Box<dyn Any + Send>>,
    stats: Result<Stats, Error>,
) -> (T, Result<Stats, Error>) {
    match outcome {
        Ok(output) => (output, stats),
        Err(panic) => {
            if let Err(error) = stats {
                eprintln!("logsink: shutdown after a panic: {error}");
            }
            resume_unwind(panic)
        }
    }
}

/// Polls the inner future with `dispatch` as the default subscriber, catching a panic from any
/// poll. Resolves to the outcome and the guard, which the caller then shuts down.
///
/// Dropped before completion (cancellation), it drops the inner future under `dispatch` and
/// then the guard, whose `Drop` shuts the sink down (blocking): in that order, so that events
/// logged by the inner future's destructors are written.
struct CatchUnwind<F: Future> {
    /// `None` once it completed or panicked (it is dropped right then, under `dispatch`).
    future: Option<Pin<Box<F>>>,
    dispatch: Dispatch,
    /// `None` once handed back with the outcome.
    guard: Option<SinkGuard>,
}

type Outcome<T> = Result<T, Box<dyn Any + Send>>;

impl<F: Future> Future for CatchUnwind<F> {
    type Output = (Outcome<F::Output>, SinkGuard);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unpin: the inner future is boxed, so this struct may be moved.
        let this = self.get_mut();
        let future = this
            .future
            .as_mut()
            .expect("CatchUnwind polled after completion");
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let _default = tracing::dispatcher::set_default(&this.dispatch);
            future.as_mut().poll(cx)
        }));
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(panic) => Err(panic),
        };
        this.drop_future();
        let guard = this
            .guard
            .take()
            .expect("the guard is kept until completion");
        Poll::Ready((outcome, guard))
    }
}

impl<F: Future> CatchUnwind<F> {
    /// Drops the inner future with the sink as the default subscriber. A panic from its
    /// destructor is not propagated: the sink must still be shut down, and the first panic (or
    /// the output) is what the caller gets.
    fn drop_future(&mut self) {
        if let Some(future) = self.future.take() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                tracing::dispatcher::with_default(&self.dispatch, || drop(future))
            }));
        }
    }
}

impl<F: Future> Drop for CatchUnwind<F> {
    fn drop(&mut self) {
        self.drop_future();
        // Then the guard (if the run was cancelled): its `Drop` drains, flushes and closes.
        drop(self.guard.take());
    }
}
