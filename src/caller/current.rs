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
//! for futures that enter their span on every poll) and refilled whenever the layer saw a span
//! field recorded since (see `SinkLayer::record_generation`).
//!
//! Each cached part holds the whole `spans` list of its span, so caching it for every entered
//! span would take memory in the square of the depth when every level logs. The bytes a thread
//! keeps (cached parts and spare buffers together) are held to [`TAIL_BUDGET`]: past it, the
//! outermost spans' parts are dropped first (they are rendered again if needed), and the part
//! just stored is always kept, so a thread holds at most the budget plus one span part.

use std::cell::RefCell;

/// The most bytes of cached span parts and spare buffers one thread keeps beyond the part of
/// the span it last rendered: far more than shallow spans need, so that they never lose their
/// cache to it.
const TAIL_BUDGET: usize = 64 * 1024;

thread_local! {
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack { entries: Vec::new(), spare: Vec::new(), held: 0 })
    };
}

struct Stack {
    entries: Vec<Entry>,
    /// Byte buffers of popped entries, kept so that entering allocates nothing.
    spare: Vec<Vec<u8>>,
    /// The capacity of every `tail` in `entries` and every buffer in `spare`, in bytes.
    held: usize,
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
            if stack.held > TAIL_BUDGET {
                // Over the budget (deep spans): free it rather than keep it for reuse.
                stack.held -= entry.tail.capacity();
            } else {
                stack.spare.push(entry.tail);
            }
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
        let stack = &mut *stack;
        let Some(at) = stack
            .entries
            .iter()
            .rposition(|e| e.layer == layer && !e.duplicate)
        else {
            return;
        };
        let e = &mut stack.entries[at];
        if e.span != span {
            return;
        }
        stack.held -= e.tail.capacity();
        e.tail.clear();
        e.tail.extend_from_slice(tail);
        e.generation = generation;
        stack.held += e.tail.capacity();
        if stack.held > TAIL_BUDGET {
            stack.shed(at);
        }
    });
}

impl Stack {
    /// Frees spare buffers, then the cached parts of the outermost entries, until the bytes
    /// held fit [`TAIL_BUDGET`] again; the part of entry `keep` stays.
    #[cold]
    fn shed(&mut self, keep: usize) {
        while self.held > TAIL_BUDGET {
            let Some(buf) = self.spare.pop() else { break };
            self.held -= buf.capacity();
        }
        for (i, e) in self.entries.iter_mut().enumerate() {
            if self.held <= TAIL_BUDGET {
                break;
            }
            if i != keep && e.tail.capacity() > 0 {
                self.held -= e.tail.capacity();
                e.tail = Vec::new();
                e.generation = u64::MAX;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes this thread's stack holds in cached parts and spare buffers.
    fn held() -> usize {
        STACK.with(|stack| {
            let stack = stack.borrow();
            let counted = stack
                .entries
                .iter()
                .map(|e| e.tail.capacity())
                .sum::<usize>()
                + stack.spare.iter().map(Vec::capacity).sum::<usize>();
            assert_eq!(counted, stack.held, "the running count matches the buffers");
            counted
        })
    }

    /// A span part as long as one whose `spans` list holds `depth` spans.
    fn part(depth: u64) -> Vec<u8> {
        vec![b'x'; depth as usize * 40]
    }

    /// The current span's part, if it is cached.
    fn cached() -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match append(1, 0, &mut out) {
            Current::Appended => Some(out),
            _ => None,
        }
    }

    /// An event at every level of 3,000 nested spans: each level's part is as long as its
    /// depth, so keeping them all would hold bytes in the square of the depth; the stack holds the budget plus the deepest part, and the part just stored is served.
    #[test]
    fn parts_of_deep_spans_are_held_to_the_budget() {
        const DEPTH: u64 = 3_000;
        for span in 1..=DEPTH {
            enter(1, span);
            assert!(matches!(append(1, 0, &mut Vec::new()), Current::Render(s) if s == span));
            store(1, span, 0, &part(span));
            assert_eq!(cached(), Some(part(span)), "depth {span}");
            assert!(held() <= TAIL_BUDGET + part(span).capacity());
        }
        for span in (1..=DEPTH).rev() {
            exit(1, span);
            assert!(held() <= TAIL_BUDGET + part(DEPTH).capacity());
        }
        assert!(held() <= TAIL_BUDGET, "spare buffers: {} bytes", held());
    }

    /// Shallow spans keep every part: after leaving an inner span, the outer one's part is
    /// served again without rendering, and buffers are reused.
    #[test]
    fn parts_of_shallow_spans_are_all_kept() {
        for span in 1..=3 {
            enter(1, span);
            store(1, span, 0, &part(span));
        }
        for span in (1..=3).rev() {
            assert_eq!(cached(), Some(part(span)));
            exit(1, span);
        }
        let kept = held();
        assert!(kept >= part(1).len() + part(2).len() + part(3).len());
        for span in 4..=6 {
            enter(1, span);
            store(1, span, 0, &part(span - 3));
        }
        assert_eq!(held(), kept, "the spare buffers were reused");
    }
}
