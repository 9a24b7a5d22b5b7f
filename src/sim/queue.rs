//! Event queues ordered by (time, sequence number). Ties in time are broken by the sequence
//! number, which increases with every push, so simultaneous events come out first-in first-out
//! and every run is deterministic. Simulated times are never negative or NaN, so the bit
//! pattern of a time, read as an unsigned integer, orders like the time itself: the key
//! (time bits << 64 | seq << 24 | id) is one 16-byte `u128`, compared without branches, and
//! carries the event's 24-bit id (a worker or a slot, the engine's business) with it. The
//! sequence number is unique, so the id never decides the order.
//!
//! Three queues, measured side by side in `benches/queue.rs`:
//! - [`TournamentQueue`], the engine's queue: a winner tree with one leaf per id (a worker, or a
//!   message/timer slot), real removal, and branch-free minima along the path of each update.
//! - [`EventQueue`]: `std::collections::BinaryHeap` with lazy invalidation (a cancelled event
//!   stays queued and is skipped when popped) and replace-top via `peek_mut`. It was the engine's
//!   queue until 2026-12-07.
//! - [`IndexedQueue`]: the `priority-queue` crate, which supports real removal by key.
//!
//! The winner tree is the fastest at every size measured, 1.6× the binary heap with 20 pending
//! events and 3.1× with 100,000 (figures in the README), once its minima are conditional moves:
//! LLVM compiled `u128::min` in its loop to a branch, which the random keys mispredict, and the
//! tree was then slower than the heap. (A hand-written 4-ary heap, tried earlier, was faster than
//! the binary heap only above ~50,000 pending events and was dropped.)

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Bits of an event id; the sequence number has the other 40 bits of the key's low word.
const ID_BITS: u32 = 24;

/// Largest id an event can carry (2^24 − 1).
pub const MAX_ID: u32 = (1 << ID_BITS) - 1;

/// Sequence numbers stay below this (2^40, about 1.1 × 10^12 scheduled events): see
/// [`EventQueue::exhausted`].
pub const MAX_SEQ: u64 = 1 << (64 - ID_BITS);

/// One scheduled event: when it fires, its sequence number, and its id, whose meaning belongs
/// to the engine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// Simulated time at which the event fires.
    pub time: f64,
    /// Push order; breaks ties in `time`.
    pub seq: u64,
    /// Id given at push (at most [`MAX_ID`]).
    pub id: u32,
}

#[inline]
fn key(time: f64, seq: u64, id: u32) -> u128 {
    debug_assert!(time >= 0.0 && time.is_sign_positive(), "event time {time}");
    debug_assert!(seq < MAX_SEQ && id <= MAX_ID, "event seq {seq}, id {id}");
    ((time.to_bits() as u128) << 64) | ((seq << ID_BITS) | id as u64) as u128
}

#[inline]
fn unpack(key: u128) -> Entry {
    let low = key as u64;
    Entry { time: f64::from_bits((key >> 64) as u64), seq: low >> ID_BITS, id: low as u32 & MAX_ID }
}

/// `BinaryHeap` element: reversed key order, so the max-heap pops the earliest event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeapItem(u128);

impl Ord for HeapItem {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}

impl PartialOrd for HeapItem {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `std::collections::BinaryHeap` on (time bits, seq, id) keys, with lazy invalidation; the
/// benchmark's reference (see the module docs).
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<HeapItem>,
    next_seq: u64,
}

impl EventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue { heap: BinaryHeap::with_capacity(capacity), next_seq: 0 }
    }

    /// Schedules event `id` (at most [`MAX_ID`]) at `time` (>= 0); returns its sequence number.
    #[inline]
    pub fn push(&mut self, time: f64, id: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(HeapItem(key(time, seq, id)));
        seq
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|h| unpack(h.0))
    }

    /// The earliest event.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|h| unpack(h.0))
    }

    /// Replaces the earliest event by event `id` at `time` in a single sift-down (`peek_mut`:
    /// pop + push in one); returns its sequence number, or None (doing nothing) when the queue
    /// is empty.
    #[inline]
    pub fn replace_top(&mut self, time: f64, id: u32) -> Option<u64> {
        let seq = self.next_seq;
        let mut top = self.heap.peek_mut()?;
        self.next_seq += 1;
        *top = HeapItem(key(time, seq, id));
        Some(seq)
    }

    /// True once [`MAX_SEQ`] events have been scheduled: later sequence numbers no longer fit
    /// the key, so the order of what follows is not exact.
    pub fn exhausted(&self) -> bool {
        self.next_seq > MAX_SEQ
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

/// The key of an empty leaf: above every real key.
const EMPTY: u128 = u128::MAX;

/// The smaller of two keys, without a branch: which one wins is a coin flip for random event
/// times, so a branch mispredicts about half the time. LLVM turns a plain `min` (even
/// `select_unpredictable`) in the winner tree's loop back into a branch, which made the tree
/// 2.4× slower than with the conditional moves written out here (measured with
/// `-x86-cmov-converter=false`, `benches/queue.rs`).
#[inline(always)]
#[allow(unsafe_code)]
fn min_key(a: u128, b: u128) -> u128 {
    #[cfg(target_arch = "x86_64")]
    {
        let (mut low, mut high) = (a as u64, (a >> 64) as u64);
        // SAFETY: arithmetic on registers only: no memory, no stack, no side effects.
        unsafe {
            std::arch::asm!(
                "cmp {b_low}, {low}",    // borrow of b − a over the low words ...
                "mov {t}, {b_high}",
                "sbb {t}, {high}",       // ... and the high words: carry set iff b < a
                "cmovb {low}, {b_low}",
                "cmovb {high}, {b_high}",
                low = inout(reg) low,
                high = inout(reg) high,
                b_low = in(reg) b as u64,
                b_high = in(reg) (b >> 64) as u64,
                t = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        ((high as u128) << 64) | low as u128
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a.min(b)
    }
}

/// The engine's queue: at most one pending event per id, in a complete binary "winner tree". The
/// leaves hold each id's key (or [`EMPTY`]), every inner node the least key below it, the root
/// the earliest event. Scheduling or removing id i rewrites the path from leaf i to the root,
/// taking at each level the smaller of the new key and the sibling's: the addresses do not
/// depend on the keys, so the loads of a path overlap, and the minima need no branches (a binary
/// heap's sift-down picks each next address by a comparison). Removal is real, so cancelled
/// events cost nothing later. Same (time, seq, id) keys as [`EventQueue`], so the two pop the
/// same order.
#[derive(Clone, Debug)]
pub struct TournamentQueue {
    /// `tree[leaves + i]` is id i's key; `tree[v]` = min(`tree[2v]`, `tree[2v + 1]`); `tree[0]`
    /// is unused.
    tree: Vec<u128>,
    leaves: usize,
    next_seq: u64,
}

impl Default for TournamentQueue {
    fn default() -> Self {
        Self::with_capacity(2)
    }
}

impl TournamentQueue {
    /// An empty queue for ids below `capacity` (it grows for larger ids).
    pub fn with_capacity(capacity: usize) -> Self {
        let leaves = capacity.max(2).next_power_of_two();
        TournamentQueue { tree: vec![EMPTY; 2 * leaves], leaves, next_seq: 0 }
    }

    #[inline]
    fn write(&mut self, id: u32, key: u128) {
        let tree = &mut self.tree[..2 * self.leaves];
        let mut v = self.leaves + id as usize;
        tree[v] = key;
        let mut least = key;
        while v > 1 {
            least = min_key(least, tree[v ^ 1]);
            v >>= 1;
            tree[v] = least;
        }
    }

    #[cold]
    fn grow(&mut self, id: u32) {
        let leaves = (id as usize + 1).next_power_of_two();
        let mut tree = vec![EMPTY; 2 * leaves];
        tree[leaves..leaves + self.leaves].copy_from_slice(&self.tree[self.leaves..]);
        for v in (1..leaves).rev() {
            tree[v] = tree[2 * v].min(tree[2 * v + 1]);
        }
        (self.tree, self.leaves) = (tree, leaves);
    }

    /// Schedules event `id` (at most [`MAX_ID`]) at `time` (>= 0), replacing its pending event
    /// if it has one; returns the sequence number.
    #[inline]
    pub fn schedule(&mut self, time: f64, id: u32) -> u64 {
        if id as usize >= self.leaves {
            self.grow(id);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.write(id, key(time, seq, id));
        seq
    }

    /// Cancels the pending event of `id`; true if there was one.
    #[inline]
    pub fn remove(&mut self, id: u32) -> bool {
        let pending = self.tree.get(self.leaves + id as usize).is_some_and(|&k| k != EMPTY);
        if pending {
            self.write(id, EMPTY);
        }
        pending
    }

    /// The earliest event.
    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        let top = self.tree[1];
        (top != EMPTY).then(|| unpack(top))
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Entry> {
        let top = self.peek()?;
        self.write(top.id, EMPTY);
        Some(top)
    }

    /// True once [`MAX_SEQ`] events have been scheduled (as [`EventQueue::exhausted`]).
    pub fn exhausted(&self) -> bool {
        self.next_seq > MAX_SEQ
    }

    /// Number of pending events (counts the leaves: for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.tree[self.leaves..].iter().filter(|&&k| k != EMPTY).count()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.tree[1] == EMPTY
    }

    /// Cancels every pending event (the sequence counter keeps counting).
    pub fn clear(&mut self) {
        self.tree.fill(EMPTY);
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
    fn keys_keep_time_seq_and_id_apart_at_their_limits() {
        for (time, seq, id) in
            [(0.0, 0, 0), (f64::MAX, MAX_SEQ - 1, MAX_ID), (1.5, 12_345, MAX_ID), (0.0, MAX_SEQ - 1, 0)]
        {
            assert_eq!(unpack(key(time, seq, id)), Entry { time, seq, id });
        }
        // a later sequence number wins over any id, an earlier time over any sequence number
        assert!(key(1.0, 1, 0) > key(1.0, 0, MAX_ID));
        assert!(key(2.0, 0, 0) > key(1.0, MAX_SEQ - 1, MAX_ID));
        let mut q = EventQueue { next_seq: MAX_SEQ - 1, ..Default::default() };
        q.push(1.0, MAX_ID);
        assert!(!q.exhausted(), "the last sequence number that fits is in use");
        q.next_seq += 1; // one more push would not fit
        assert!(q.exhausted());
    }

    #[test]
    fn ties_are_fifo_and_replace_top_keeps_order() {
        let mut q = EventQueue::default();
        q.push(2.0, 0);
        q.push(1.0, 1);
        q.push(1.0, 2);
        q.push(1.0, 3);
        assert_eq!(q.pop().unwrap().id, 1);
        assert_eq!(q.replace_top(1.0, 4), Some(4)); // replaces 2's event; 4 now queued after 3
        let order: Vec<u32> = std::iter::from_fn(|| q.pop()).map(|e| e.id).collect();
        assert_eq!(order, vec![3, 4, 0]);
    }

    #[test]
    fn pops_in_time_then_push_order_like_a_sorted_list() {
        use rand::Rng;
        let mut rng = crate::rng::Seeds::new(5).stream(crate::rng::Purpose::ComputeTime, 0, 0);
        let mut q = EventQueue::default();
        let mut reference: Vec<(f64, u64, u32)> = Vec::new(); // (time, seq, target), kept sorted
        let pop_reference = |r: &mut Vec<(f64, u64, u32)>| (!r.is_empty()).then(|| r.remove(0));
        for i in 0..3000u32 {
            // coarse times, so that many ties exercise the sequence-number order
            let t = rng.random_range(0..50u32) as f64;
            match rng.random_range(0..3) {
                0 => assert_eq!(q.pop().map(|e| (e.time, e.seq, e.id)), pop_reference(&mut reference)),
                1 if !q.is_empty() => {
                    pop_reference(&mut reference);
                    let seq = q.replace_top(t, i).unwrap();
                    reference.push((t, seq, i));
                }
                _ => {
                    let seq = q.push(t, i);
                    reference.push((t, seq, i));
                }
            }
            reference.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            assert_eq!(q.peek().map(|e| (e.time, e.seq, e.id)), reference.first().copied());
        }
    }

    #[test]
    fn min_key_is_the_smaller_key() {
        let edges = [0, 1, u64::MAX as u128, 1 << 64, (1 << 64) + 1, EMPTY - 1, EMPTY];
        let mut rng = crate::rng::Seeds::new(6).stream(crate::rng::Purpose::ComputeTime, 0, 0);
        use rand::Rng;
        let random: Vec<u128> = (0..200).map(|_| rng.random::<u128>() >> rng.random_range(0..128)).collect();
        for &a in edges.iter().chain(&random) {
            for &b in edges.iter().chain(&random) {
                assert_eq!(min_key(a, b), a.min(b), "{a:#x} {b:#x}");
            }
        }
    }

    #[test]
    fn tournament_queue_pops_like_a_sorted_list_of_one_event_per_id() {
        use rand::Rng;
        let mut rng = crate::rng::Seeds::new(7).stream(crate::rng::Purpose::ComputeTime, 0, 0);
        let mut q = TournamentQueue::with_capacity(4); // ids up to 40: grows three times
        let mut reference: Vec<Option<(f64, u64)>> = vec![None; 41]; // pending (time, seq) per id
        let earliest = |r: &[Option<(f64, u64)>]| {
            (0..r.len())
                .filter_map(|id| r[id].map(|(t, s)| (t, s, id as u32)))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        };
        for _ in 0..5000 {
            let id = rng.random_range(0..41u32);
            match rng.random_range(0..4) {
                0 => {
                    let top = earliest(&reference);
                    assert_eq!(q.pop().map(|e| (e.time, e.seq, e.id)), top);
                    if let Some((_, _, id)) = top {
                        reference[id as usize] = None;
                    }
                }
                1 => assert_eq!(q.remove(id), reference[id as usize].take().is_some()),
                _ => {
                    let t = rng.random_range(0..50u32) as f64; // coarse, for many ties
                    reference[id as usize] = Some((t, q.schedule(t, id)));
                }
            }
            assert_eq!(q.peek().map(|e| (e.time, e.seq, e.id)), earliest(&reference));
            assert_eq!(q.len(), reference.iter().flatten().count());
        }
        q.clear();
        assert!(q.is_empty() && q.peek().is_none());
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
