//! Event queues ordered by (time, sequence number). Ties in time are broken by the sequence
//! number, which increases with every push, so simultaneous events come out first-in first-out
//! and every run is deterministic.
//!
//! [`EventQueue`] is the engine's queue: `std`'s binary heap with lazy invalidation (a cancelled
//! event stays in the heap and is skipped when popped) and a replace-top operation for the common
//! "pop the earliest event, push its successor" step. [`IndexedQueue`] wraps the
//! `priority-queue` crate, which supports real removal by key; it is kept for the side-by-side
//! benchmark in `benches/queue.rs`, which is how the engine's queue was chosen.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

/// One scheduled event: when it fires, its sequence number, and two payload words whose meaning
/// belongs to the engine (target and tag).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// Simulated time at which the event fires.
    pub time: f64,
    /// Push order; breaks ties in `time`.
    pub seq: u64,
    /// First payload word (a worker or a slot index).
    pub target: u32,
    /// Second payload word (kind and generation).
    pub tag: u32,
}

impl Eq for Entry {}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest (time, seq) first.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .time
            .total_cmp(&self.time)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A min-queue of [`Entry`] by (time, seq) on `std::collections::BinaryHeap`.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

impl EventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules an event; returns its sequence number.
    #[inline]
    pub fn push(&mut self, time: f64, target: u32, tag: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry {
            time,
            seq,
            target,
            tag,
        });
        seq
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop()
    }

    /// The earliest event, without removing it.
    #[inline]
    pub fn peek(&self) -> Option<&Entry> {
        self.heap.peek()
    }

    /// Replaces the earliest event by a new one in a single sift-down (pop + push in one).
    /// Returns false (and does nothing) when the queue is empty.
    #[inline]
    pub fn replace_top(&mut self, time: f64, target: u32, tag: u32) -> bool {
        let seq = self.next_seq;
        match self.heap.peek_mut() {
            None => false,
            Some(mut top) => {
                self.next_seq += 1;
                *top = Entry {
                    time,
                    seq,
                    target,
                    tag,
                };
                drop(top);
                true
            }
        }
    }

    /// Pops the earliest event if `keep` says it is stale; used to drain cancelled events cheaply.
    #[inline]
    pub fn pop_if(&mut self, stale: impl Fn(&Entry) -> bool) -> bool {
        match self.heap.peek_mut() {
            Some(top) if stale(&top) => {
                PeekMut::pop(top);
                true
            }
            _ => false,
        }
    }

    /// Number of queued events, including cancelled ones not yet popped.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every queued event (the sequence counter keeps counting).
    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

/// A min-queue keyed by worker on the `priority-queue` crate: at most one pending event per key,
/// cancellation by real removal. Used by the queue benchmark.
#[derive(Debug, Default)]
pub struct IndexedQueue {
    pq: priority_queue::PriorityQueue<u32, Reverse<(OrdTime, u64)>>,
    next_seq: u64,
}

/// `f64` ordered by `total_cmp`, for use as a priority.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrdTime(pub f64);

impl Eq for OrdTime {}

impl Ord for OrdTime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PartialOrd for OrdTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl IndexedQueue {
    /// An empty queue with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        IndexedQueue {
            pq: priority_queue::PriorityQueue::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules (or reschedules) the event of `key`.
    #[inline]
    pub fn push(&mut self, time: f64, key: u32) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pq.push(key, Reverse((OrdTime(time), seq)));
    }

    /// Removes and returns the earliest (key, time).
    #[inline]
    pub fn pop(&mut self) -> Option<(u32, f64)> {
        self.pq.pop().map(|(k, Reverse((t, _)))| (k, t.0))
    }

    /// Cancels the pending event of `key`, if any.
    #[inline]
    pub fn remove(&mut self, key: u32) -> bool {
        self.pq.remove(&key).is_some()
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.pq.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pq.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_fifo_and_replace_top_keeps_order() {
        let mut q = EventQueue::default();
        q.push(2.0, 0, 0);
        q.push(1.0, 1, 0);
        q.push(1.0, 2, 0);
        q.push(1.0, 3, 0);
        assert_eq!(q.pop().unwrap().target, 1);
        assert!(q.replace_top(1.0, 4, 0)); // replaces worker 2's event; 4 now queued after 3
        let order: Vec<u32> = std::iter::from_fn(|| q.pop()).map(|e| e.target).collect();
        assert_eq!(order, vec![3, 4, 0]);
    }

    #[test]
    fn indexed_queue_orders_and_removes() {
        let mut q = IndexedQueue::default();
        q.push(3.0, 0);
        q.push(1.0, 1);
        q.push(2.0, 2);
        assert!(q.remove(1));
        assert_eq!(q.pop(), Some((2, 2.0)));
        assert_eq!(q.pop(), Some((0, 3.0)));
        assert!(q.is_empty());
    }
}
