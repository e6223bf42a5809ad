//! Each thread's entered spans, as the layer sees them, with the span part of an event's line
//! cached per entered span.
//!
//! Looking the current span up in the registry costs two compare-and-swaps on the span's slot
//! (a reference taken and released) per event, and slots of different threads' spans share
//! cache lines. This stack, updated by the layer's `on_enter`/`on_exit`, answers "which span is
//! current" from a thread-local, and keeps the rendered `,"span":{..},"spans":[..]` bytes of
//! that span beside it, so that further events in the same span only copy them.
//!
//! It mirrors the registry's own stack: a span entered again while already on the stack is a
//! duplicate that does not become current; exiting removes the latest entry of that span. The
//! bytes are filled on the first event after entering (entering costs no lookup, which matters
//! for futures that enter their span on every poll) and refilled whenever a span field was
//! recorded anywhere since (see `layer::RECORD_GENERATION`).

use std::cell::RefCell;

thread_local! {
    static STACK: RefCell<Stack> = const { RefCell::new(Stack { entries: Vec::new(), spare: Vec::new() }) };
}

struct Stack {
    entries: Vec<Entry>,
    /// Byte buffers of popped entries, kept so that entering allocates nothing.
    spare: Vec<Vec<u8>>,
}

struct Entry {
    layer: u64,
    span: u64,
    duplicate: bool,
    /// The record generation `tail` was rendered at; `u64::MAX` while not rendered.
    generation: u64,
    tail: Vec<u8>,
}

/// Records that `layer` saw `span` entered on this thread.
pub(crate) fn enter(layer: u64, span: u64) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        let duplicate = stack
            .entries
            .iter()
            .any(|e| e.layer == layer && e.span == span);
        let mut tail = stack.spare.pop().unwrap_or_default();
        tail.clear();
        stack.entries.push(Entry {
            layer,
            span,
            duplicate,
            generation: u64::MAX,
            tail,
        });
    });
}

/// Records that `layer` saw `span` exited on this thread.
pub(crate) fn exit(layer: u64, span: u64) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        if let Some(i) = stack
            .entries
            .iter()
            .rposition(|e| e.layer == layer && e.span == span)
        {
            let entry = stack.entries.remove(i);
            stack.spare.push(entry.tail);
        }
    });
}

/// What the stack knows about `layer`'s current span on this thread.
pub(crate) enum Current {
    /// No span is entered.
    None,
    /// The span part of the line, rendered at the generation asked for, was appended.
    Appended,
    /// This span is current but its bytes are stale or not rendered yet: render them, then
    /// [`store`] them.
    Render(u64),
    /// The stack is unavailable (thread exiting, or re-entered): ask the registry.
    Unknown,
}

/// Appends the current span's cached bytes to `out` if they were rendered at `generation`.
pub(crate) fn append(layer: u64, generation: u64, out: &mut Vec<u8>) -> Current {
    STACK
        .try_with(|stack| {
            let Ok(stack) = stack.try_borrow() else {
                return Current::Unknown;
            };
            let top = stack
                .entries
                .iter()
                .rev()
                .find(|e| e.layer == layer && !e.duplicate);
            match top {
                None => Current::None,
                Some(e) if e.generation == generation => {
                    out.extend_from_slice(&e.tail);
                    Current::Appended
                }
                Some(e) => Current::Render(e.span),
            }
        })
        .unwrap_or(Current::Unknown)
}

/// Caches `tail` for `layer`'s current span `span`, rendered at `generation`.
pub(crate) fn store(layer: u64, span: u64, generation: u64, tail: &[u8]) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        if let Some(e) = stack
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.layer == layer && !e.duplicate)
        {
            if e.span == span {
                e.tail.clear();
                e.tail.extend_from_slice(tail);
                e.generation = generation;
            }
        }
    });
}
