//! [`LoadSlots`]: a counting semaphore bounding how many task files load at once.
//!
//! A load holds a file's bytes and its parsed task until the cache admits it; under a storm of
//! cache misses (many clients, a cache smaller than the task set) unbounded concurrent loads
//! would put that memory on top of the cache budget once per request in flight.

use std::sync::{Condvar, Mutex};

/// At most `capacity` holders at a time; [`LoadSlots::acquire`] blocks until one is free.
#[derive(Debug)]
pub struct LoadSlots {
    free: Mutex<usize>,
    released: Condvar,
}

/// A held slot, given back on drop.
#[derive(Debug)]
pub struct LoadSlot<'a> {
    slots: &'a LoadSlots,
}

impl LoadSlots {
    /// `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            free: Mutex::new(capacity.max(1)),
            released: Condvar::new(),
        }
    }

    /// Waits for a free slot and takes it.
    pub fn acquire(&self) -> LoadSlot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        LoadSlot { slots: self }
    }
}

impl Drop for LoadSlot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.slots.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn never_more_holders_than_slots() {
        let slots = Arc::new(LoadSlots::new(2));
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, now, peak) = (slots.clone(), now.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _slot = slots.acquire();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
