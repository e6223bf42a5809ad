//! The caller side: what runs on the thread that emits an event.
//!
//! The layer's hooks ([`layer`]) copy the event's values into a record (encoded as
//! [`crate::handoff::fields`] defines), with the span part cached for the thread's current span
//! ([`current`]) from the span fields rendered when spans are created or recorded ([`span`]),
//! and a raw time stamp ([`clock`]), and hand the record to the writer through
//! [`crate::handoff`].

pub(crate) mod clock;
pub(crate) mod current;
pub(crate) mod layer;
#[cfg(feature = "opentelemetry")]
pub(crate) mod otel;
pub(crate) mod span;
