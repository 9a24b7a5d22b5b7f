//! Event queues ordered by (time, sequence number). Ties in time are broken by the sequence
//! number, which increases with every push, so simultaneous events come out first-in first-out
//! and every run is deterministic. Simulated times are never negative or NaN, so the bit
//! pattern of a time, read as an unsigned integer, orders like the time itself: the key
//! (time bits << 64 | seq) is one `u128`, compared without branches.
//!
//! Three queues with the same operations, measured side by side in `benches/queue.rs`:
//! - [`EventQueue`], the engine's queue: a hand-written 4-ary min-heap on `u128` keys (keys and
//!   payloads in separate arrays, so the four children of a node share one cache line). The
//!   engine uses lazy invalidation (a cancelled event stays queued and is skipped when popped) and
//!   replace-top for the common "pop the earliest event, push its successor" step.
//! - [`BinaryEventQueue`]: `std::collections::BinaryHeap` with the same key and replace-top via
//!   `peek_mut`.
//! - [`IndexedQueue`]: the `priority-queue` crate, which supports real removal by key.
//!
//! The README reports the figures; the 4-ary heap was the fastest, so the engine uses it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

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

#[inline]
fn key(time: f64, seq: u64) -> u128 {
    debug_assert!(time >= 0.0 && time.is_sign_positive(), "event time {time}");
    ((time.to_bits() as u128) << 64) | seq as u128
}

#[inline]
fn unpack(key: u128, payload: u64) -> Entry {
    Entry {
        time: f64::from_bits((key >> 64) as u64),
        seq: key as u64,
        target: (payload >> 32) as u32,
        tag: payload as u32,
    }
}

/// Children per node of [`EventQueue`].
const ARITY: usize = 4;

/// The engine's queue: a 4-ary min-heap by (time, seq). See the module docs.
#[derive(Debug, Default)]
pub struct EventQueue {
    keys: Vec<u128>,
    payloads: Vec<u64>,
    next_seq: u64,
}

impl EventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue { keys: Vec::with_capacity(capacity), payloads: Vec::with_capacity(capacity), next_seq: 0 }
    }

    #[inline]
    fn next_key(&mut self, time: f64) -> u128 {
        let seq = self.next_seq;
        self.next_seq += 1;
        key(time, seq)
    }

    /// Schedules an event at `time` (>= 0); returns its sequence number.
    #[inline]
    pub fn push(&mut self, time: f64, target: u32, tag: u32) -> u64 {
        let k = self.next_key(time);
        self.keys.push(k);
        self.payloads.push(((target as u64) << 32) | tag as u64);
        self.sift_up(self.keys.len() - 1);
        k as u64
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        let top = self.peek()?;
        let (k, p) = (self.keys.pop().expect("non-empty"), self.payloads.pop().expect("non-empty"));
        if !self.keys.is_empty() {
            self.sift_down(k, p);
        }
        Some(top)
    }

    /// The earliest event, without removing it.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        Some(unpack(*self.keys.first()?, self.payloads[0]))
    }

    /// Replaces the earliest event by a new one in a single sift-down (pop + push in one).
    /// Returns false (and does nothing) when the queue is empty.
    #[inline]
    pub fn replace_top(&mut self, time: f64, target: u32, tag: u32) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        let k = self.next_key(time);
        self.sift_down(k, ((target as u64) << 32) | tag as u64);
        true
    }

    /// Number of queued events, including cancelled ones not yet popped.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Drops every queued event (the sequence counter keeps counting).
    pub fn clear(&mut self) {
        self.keys.clear();
        self.payloads.clear();
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize) {
        let (k, p) = (self.keys[i], self.payloads[i]);
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.keys[parent] <= k {
                break;
            }
            self.keys[i] = self.keys[parent];
            self.payloads[i] = self.payloads[parent];
            i = parent;
        }
        self.keys[i] = k;
        self.payloads[i] = p;
    }

    /// Places (k, p) at the root and moves it down to its place.
    #[inline]
    fn sift_down(&mut self, k: u128, p: u64) {
        let n = self.keys.len();
        let mut i = 0;
        loop {
            let first = ARITY * i + 1;
            if first >= n {
                break;
            }
            let (mut m, mut mk) = (first, self.keys[first]);
            for j in first + 1..(first + ARITY).min(n) {
                let kj = self.keys[j];
                if kj < mk {
                    m = j;
                    mk = kj;
                }
            }
            if mk >= k {
                break;
            }
            self.keys[i] = mk;
            self.payloads[i] = self.payloads[m];
            i = m;
        }
        self.keys[i] = k;
        self.payloads[i] = p;
    }
}

/// `BinaryHeap` element: reversed key order, so the max-heap pops the earliest event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeapItem {
    key: u128,
    payload: u64,
}

impl Ord for HeapItem {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

impl PartialOrd for HeapItem {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The same queue on `std::collections::BinaryHeap`, for the benchmark.
#[derive(Debug, Default)]
pub struct BinaryEventQueue {
    heap: BinaryHeap<HeapItem>,
    next_seq: u64,
}

impl BinaryEventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        BinaryEventQueue { heap: BinaryHeap::with_capacity(capacity), next_seq: 0 }
    }

    /// Schedules an event.
    #[inline]
    pub fn push(&mut self, time: f64, target: u32, tag: u32) {
        let k = key(time, self.next_seq);
        self.next_seq += 1;
        self.heap.push(HeapItem { key: k, payload: ((target as u64) << 32) | tag as u64 });
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|h| unpack(h.key, h.payload))
    }

    /// The earliest event.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|h| unpack(h.key, h.payload))
    }

    /// Replaces the earliest event via `peek_mut` (one sift-down).
    #[inline]
    pub fn replace_top(&mut self, time: f64, target: u32, tag: u32) -> bool {
        let k = key(time, self.next_seq);
        match self.heap.peek_mut() {
            None => false,
            Some(mut top) => {
                self.next_seq += 1;
                *top = HeapItem { key: k, payload: ((target as u64) << 32) | tag as u64 };
                true
            }
        }
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
        IndexedQueue { pq: priority_queue::PriorityQueue::with_capacity(capacity), next_seq: 0 }
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
    fn four_ary_heap_pops_in_order_like_the_binary_heap() {
        use rand::Rng;
        let mut rng = crate::rng::Seeds::new(5).stream(crate::rng::Purpose::ComputeTime, 0, 0);
        let (mut a, mut b) = (EventQueue::default(), BinaryEventQueue::default());
        for i in 0..2000u32 {
            // coarse times, so that many ties exercise the sequence-number order
            let t = (rng.random_range(0..50u32)) as f64;
            match rng.random_range(0..3) {
                0 if !a.is_empty() => {
                    assert_eq!(a.pop(), b.pop());
                }
                1 => {
                    assert_eq!(a.replace_top(t, i, 7), b.replace_top(t, i, 7));
                }
                _ => {
                    a.push(t, i, 1);
                    b.push(t, i, 1);
                }
            }
            assert_eq!(a.peek(), b.peek());
        }
        while let Some(e) = a.pop() {
            assert_eq!(Some(e), b.pop());
        }
        assert_eq!(b.pop(), None);
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
