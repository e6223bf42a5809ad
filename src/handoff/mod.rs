//! The hand-off between callers and the writer: what crosses the channel ([`record`]) and the
//! channel itself with its buffer pool ([`queue`]).

pub(crate) mod queue;
pub(crate) mod record;
