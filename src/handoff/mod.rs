//! The hand-off between callers and the writer: what crosses the channel ([`record`]), the
//! callers' end that sends it under the overflow policy ([`sender`]), and the channel itself
//! with the writer's end and the buffer pool ([`queue`]).

pub(crate) mod fields;
pub(crate) mod queue;
pub(crate) mod record;
pub(crate) mod sender;
