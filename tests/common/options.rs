//! tracing-subscriber's formatting options, set the same way on a sink and on tracing-subscriber's
//! own formatter, and the timestamps they write. Included with `#[path]` by the binaries that
//! compare options (beside `mod common`).
#![allow(dead_code)]

use logsink::UtcOffset;
use time::format_description::well_known::Rfc3339;
use tracing::Subscriber;
use tracing_subscriber::fmt::time::OffsetTime;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::common::{check_timestamp, SharedBuf};

/// The options, with tracing-subscriber's names; [`Opts::DEFAULT`] is its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opts {
    pub flatten_event: bool,
    pub current_span: bool,
    pub span_list: bool,
    pub target: bool,
    pub level: bool,
    pub thread_ids: bool,
    pub thread_names: bool,
    pub file: bool,
    pub line_number: bool,
    /// `false`: `without_time()`.
    pub time: bool,
    /// Timestamps in this offset: tracing-subscriber's `OffsetTime` with RFC 3339, the sink's
    /// `timestamp_offset`. `None`: the defaults of both.
    pub offset: Option<UtcOffset>,
}

impl Opts {
    pub const DEFAULT: Opts = Opts {
        flatten_event: false,
        current_span: true,
        span_list: true,
        target: true,
        level: true,
        thread_ids: false,
        thread_names: false,
        file: false,
        line_number: false,
        time: true,
        offset: None,
    };

    /// Every switch off, timestamps included.
    pub const ALL_OFF: Opts = Opts {
        flatten_event: false,
        current_span: false,
        span_list: false,
        target: false,
        level: false,
        thread_ids: false,
        thread_names: false,
        file: false,
        line_number: false,
        time: false,
        offset: None,
    };

    /// Every switch on, timestamps in `offset`.
    pub const fn all_on(offset: UtcOffset) -> Opts {
        Opts {
            flatten_event: true,
            current_span: true,
            span_list: true,
            target: true,
            level: true,
            thread_ids: true,
            thread_names: true,
            file: true,
            line_number: true,
            time: true,
            offset: Some(offset),
        }
    }

    /// `builder` with these options.
    pub fn apply(&self, builder: logsink::Builder) -> logsink::Builder {
        let mut builder = builder
            .flatten_event(self.flatten_event)
            .with_current_span(self.current_span)
            .with_span_list(self.span_list)
            .with_target(self.target)
            .with_level(self.level)
            .with_thread_ids(self.thread_ids)
            .with_thread_names(self.thread_names)
            .with_file(self.file)
            .with_line_number(self.line_number);
        if !self.time {
            builder = builder.without_time();
        }
        if let Some(offset) = self.offset {
            builder = builder.timestamp_offset(offset);
        }
        builder
    }

    /// tracing-subscriber's JSON formatter with these options, writing into `buf`.
    pub fn fmt_json<S>(&self, buf: SharedBuf) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(self.flatten_event)
            .with_current_span(self.current_span)
            .with_span_list(self.span_list)
            .with_target(self.target)
            .with_level(self.level)
            .with_thread_ids(self.thread_ids)
            .with_thread_names(self.thread_names)
            .with_file(self.file)
            .with_line_number(self.line_number)
            .with_writer(buf);
        match (self.time, self.offset) {
            (false, _) => Box::new(layer.without_time()),
            (true, Some(offset)) => Box::new(layer.with_timer(OffsetTime::new(offset, Rfc3339))),
            (true, None) => Box::new(layer),
        }
    }

    /// tracing-subscriber's default (full) text formatter without colours, with these options
    /// (those it has: the JSON ones do not exist there), writing into `buf`.
    pub fn fmt_text<S>(&self, buf: SharedBuf) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(self.target)
            .with_level(self.level)
            .with_thread_ids(self.thread_ids)
            .with_thread_names(self.thread_names)
            .with_file(self.file)
            .with_line_number(self.line_number)
            .with_writer(buf);
        match (self.time, self.offset) {
            (false, _) => Box::new(layer.without_time()),
            (true, Some(offset)) => Box::new(layer.with_timer(OffsetTime::new(offset, Rfc3339))),
            (true, None) => Box::new(layer),
        }
    }
}

/// Reads an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, a fraction of `digits` digits
/// (`None`: any number, none at all included, as the `time` crate writes them), then `Z` or
/// `+HH:MM`/`-HH:MM`. Returns the instant in microseconds since the Unix epoch (UTC) and the
/// offset as written.
pub fn split_timestamp(ts: &str, digits: Option<usize>) -> Result<(i64, String), String> {
    let head = ts
        .get(..19)
        .ok_or_else(|| format!("timestamp {ts:?} is too short"))?;
    let local = check_timestamp(&format!("{head}.000000Z"))?;
    let rest = &ts[19..];
    let (fraction, suffix) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("timestamp {ts:?} has no offset"))?;
            (&after[..end], &after[end..])
        }
        None => ("", rest),
    };
    if let Some(digits) = digits {
        if fraction.len() != digits {
            return Err(format!("timestamp {ts:?}: not {digits} fractional digits"));
        }
    }
    if fraction.len() > 9 {
        return Err(format!("timestamp {ts:?}: more than 9 fractional digits"));
    }
    let micros = format!("{fraction:0<6}")[..6].parse::<i64>().unwrap();
    let offset_micros = match suffix.as_bytes() {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let magnitude = (hours * 60 + minutes) * 60_000_000;
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => {
            return Err(format!(
                "timestamp {ts:?}: offset {suffix:?} is not Z or ±HH:MM"
            ))
        }
    };
    Ok((local + micros - offset_micros, suffix.to_owned()))
}
