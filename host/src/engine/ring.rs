//! A track's ring buffer: lock-free, one writer, many readers.
//!
//! The writer never blocks and never waits for readers: it overwrites the
//! oldest slot. A reader keeps its own position and learns it was lapped when
//! the slot it wants already holds a newer item. Each slot is an atomically
//! swapped `Arc`, so a reader that got an item keeps it alive after the writer
//! moved on (zero-copy: items are shared, not copied).
//!
//! Ordering: the writer stores the slot, then publishes `write_pos` with
//! Release; a reader loads `write_pos` with Acquire before it loads the slot, so
//! every position below the `write_pos` it saw holds that position's item or a
//! newer one — never an older one. The keyframe index (`last_key`) is published
//! the same way.

use std::sync::Arc;

use super::sync::{AtomicU64, Ordering, SlotCell};

/// What the ring needs of an item: it stamps each item's position, and indexes
/// keyframes so a new reader can start at the newest one.
pub trait RingItem {
    fn ring_pos(&self) -> u64;
    fn set_ring_pos(&mut self, pos: u64);
    fn is_ring_key(&self) -> bool;
}

const NO_KEY: u64 = u64::MAX;

/// The result of reading one position.
#[derive(Debug)]
pub enum Read<T> {
    Item(Arc<T>),
    /// Nothing has been written at this position yet.
    NotYet,
    /// The position was overwritten; `oldest` is the oldest position still held.
    Lapped {
        oldest: u64,
    },
}

pub struct Ring<T> {
    slots: Box<[SlotCell<T>]>,
    mask: u64,
    /// The next position the writer will fill; positions below it are readable.
    write_pos: AtomicU64,
    /// Position of the newest keyframe, or NO_KEY.
    last_key: AtomicU64,
}

impl<T: RingItem> Ring<T> {
    /// A ring of `capacity` slots; `capacity` is rounded up to a power of two
    /// (at least 2).
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(2).next_power_of_two();
        Ring {
            slots: (0..cap).map(|_| SlotCell::empty()).collect(),
            mask: cap as u64 - 1,
            write_pos: AtomicU64::new(0),
            last_key: AtomicU64::new(NO_KEY),
        }
    }

    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// The next position to be written: readers have seen everything below it.
    pub fn write_pos(&self) -> u64 {
        self.write_pos.load(Ordering::Acquire)
    }

    /// The oldest position still held.
    pub fn oldest(&self) -> u64 {
        self.write_pos().saturating_sub(self.capacity())
    }

    /// Appends an item and returns it shared. Only one thread may push at a
    /// time: callers hold the track's writer lock (see `Stream`), which is why
    /// the position can be read and bumped without a read-modify-write.
    pub fn push(&self, mut item: T) -> Arc<T> {
        let pos = self.write_pos.load(Ordering::Relaxed);
        item.set_ring_pos(pos);
        let key = item.is_ring_key();
        let item = Arc::new(item);
        self.slots[(pos & self.mask) as usize].store(item.clone());
        if key {
            self.last_key.store(pos, Ordering::Release);
        }
        self.write_pos.store(pos + 1, Ordering::Release);
        item
    }

    /// Reads the item at `pos`.
    pub fn read(&self, pos: u64) -> Read<T> {
        let w = self.write_pos.load(Ordering::Acquire);
        if pos >= w {
            return Read::NotYet;
        }
        let oldest = w.saturating_sub(self.capacity());
        if pos < oldest {
            return Read::Lapped { oldest };
        }
        match self.slots[(pos & self.mask) as usize].load() {
            Some(item) if item.ring_pos() == pos => Read::Item(item),
            // The writer lapped us between our load of write_pos and the slot.
            Some(item) => {
                debug_assert!(item.ring_pos() > pos, "ring slot holds an older item");
                Read::Lapped {
                    oldest: item.ring_pos().saturating_sub(self.mask),
                }
            }
            None => unreachable_empty(),
        }
    }

    /// The newest keyframe still in the ring, if any.
    pub fn last_key(&self) -> Option<Arc<T>> {
        let pos = self.last_key.load(Ordering::Acquire);
        if pos == NO_KEY {
            return None;
        }
        match self.read(pos) {
            Read::Item(item) => Some(item),
            _ => None,
        }
    }

    /// The newest item, if any.
    pub fn last(&self) -> Option<Arc<T>> {
        let w = self.write_pos();
        if w == 0 {
            return None;
        }
        match self.read(w - 1) {
            Read::Item(item) => Some(item),
            _ => None,
        }
    }
}

// A slot below write_pos was always stored before write_pos was published.
#[cold]
fn unreachable_empty<T>() -> Read<T> {
    debug_assert!(false, "ring slot empty below write_pos");
    Read::NotYet
}

#[cfg(all(test, not(rill_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq)]
    struct It {
        pos: u64,
        key: bool,
        v: u64,
    }
    impl RingItem for It {
        fn ring_pos(&self) -> u64 {
            self.pos
        }
        fn set_ring_pos(&mut self, pos: u64) {
            self.pos = pos
        }
        fn is_ring_key(&self) -> bool {
            self.key
        }
    }
    fn it(v: u64, key: bool) -> It {
        It { pos: 0, key, v }
    }

    #[test]
    fn capacity_rounds_up() {
        assert_eq!(Ring::<It>::new(100).capacity(), 128);
        assert_eq!(Ring::<It>::new(0).capacity(), 2);
    }

    #[test]
    fn reads_what_was_written_and_not_beyond() {
        let r = Ring::new(4);
        assert!(matches!(r.read(0), Read::NotYet));
        r.push(it(10, true));
        r.push(it(11, false));
        match r.read(1) {
            Read::Item(x) => assert_eq!((x.v, x.pos), (11, 1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.read(2), Read::NotYet));
    }

    #[test]
    fn overwrite_laps_slow_reader() {
        let r = Ring::new(4);
        for v in 0..10 {
            r.push(it(v, false));
        }
        // Positions 6..10 are held; 0..6 were overwritten.
        assert!(matches!(r.read(5), Read::Lapped { oldest: 6 }));
        assert!(matches!(r.read(6), Read::Item(ref x) if x.v == 6));
        assert_eq!(r.oldest(), 6);
    }

    #[test]
    fn last_key_tracks_newest_keyframe_until_overwritten() {
        let r = Ring::new(4);
        assert!(r.last_key().is_none());
        r.push(it(0, true));
        r.push(it(1, false));
        r.push(it(2, true));
        assert_eq!(r.last_key().unwrap().v, 2);
        for v in 3..7 {
            r.push(it(v, false));
        }
        assert!(r.last_key().is_none(), "keyframe 2 was overwritten");
    }

    #[test]
    fn readers_keep_items_alive_after_overwrite() {
        let r = Ring::new(2);
        r.push(it(0, false));
        let held = match r.read(0) {
            Read::Item(x) => x,
            other => panic!("{other:?}"),
        };
        for v in 1..5 {
            r.push(it(v, false));
        }
        assert_eq!(held.v, 0);
    }

    proptest! {
        /// Against a model (a Vec of everything written): every read of every
        /// position gives that position's item when it is within the last
        /// `cap` writes, Lapped when older, NotYet when not written.
        #[test]
        fn matches_model(cap_pow in 1u32..6, ops in prop::collection::vec((any::<bool>(), 0u64..64), 0..300)) {
            let cap = 1usize << cap_pow;
            let r = Ring::new(cap);
            let mut written: Vec<bool> = Vec::new();
            for (is_write, probe) in ops {
                if is_write {
                    let key = probe % 5 == 0;
                    r.push(it(written.len() as u64, key));
                    written.push(key);
                } else {
                    let n = written.len() as u64;
                    let pos = probe.min(n + 2);
                    match r.read(pos) {
                        Read::Item(x) => {
                            prop_assert!(pos < n && pos + cap as u64 >= n);
                            prop_assert_eq!(x.v, pos);
                        }
                        Read::NotYet => prop_assert!(pos >= n),
                        Read::Lapped { oldest } => {
                            prop_assert!(pos + (cap as u64) < n);
                            prop_assert_eq!(oldest, n - cap as u64);
                        }
                    }
                    let want_key = written.iter().rposition(|k| *k).map(|p| p as u64)
                        .filter(|p| p + cap as u64 >= n);
                    prop_assert_eq!(r.last_key().map(|x| x.v), want_key);
                }
            }
        }
    }
}

#[cfg(all(test, rill_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    #[derive(Debug)]
    struct It {
        pos: u64,
        v: u64,
    }
    impl RingItem for It {
        fn ring_pos(&self) -> u64 {
            self.pos
        }
        fn set_ring_pos(&mut self, pos: u64) {
            self.pos = pos
        }
        fn is_ring_key(&self) -> bool {
            self.v % 2 == 0
        }
    }

    /// A reader racing the writer on a tiny ring only ever sees the item of the
    /// position it asked for (value == position), or a clean NotYet/Lapped.
    #[test]
    fn reader_never_sees_a_wrong_item() {
        loom::model(|| {
            let r = Arc::new(Ring::<It>::new(2));
            let w = r.clone();
            let writer = thread::spawn(move || {
                for v in 0..3 {
                    w.push(It { pos: 0, v });
                }
            });
            for pos in 0..3 {
                match r.read(pos) {
                    Read::Item(x) => assert_eq!(x.v, pos),
                    Read::NotYet | Read::Lapped { .. } => {}
                }
            }
            if let Some(k) = r.last_key() {
                assert_eq!(k.v % 2, 0);
                assert_eq!(k.v, k.pos);
            }
            writer.join().unwrap();
            assert_eq!(r.write_pos(), 3);
        });
    }

    /// Two readers and a writer: a reader that saw write_pos = n can read n-1.
    #[test]
    fn published_position_is_readable() {
        loom::model(|| {
            let r = Arc::new(Ring::<It>::new(4));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let r = r.clone();
                    thread::spawn(move || {
                        let w = r.write_pos();
                        if w > 0 {
                            match r.read(w - 1) {
                                Read::Item(x) => assert_eq!(x.v, w - 1),
                                other => panic!("published position unreadable: {other:?}"),
                            }
                        }
                    })
                })
                .collect();
            r.push(It { pos: 0, v: 0 });
            r.push(It { pos: 0, v: 1 });
            for h in readers {
                h.join().unwrap();
            }
        });
    }
}
