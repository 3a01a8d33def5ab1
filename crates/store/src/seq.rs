use std::sync::atomic::{AtomicI64, Ordering};

use quiver_common::SeqId;

/// Issues `_seq` numbers: unique and strictly increasing on this node, the
/// high bits the wall-clock millisecond. Starting above the highest number
/// ever committed keeps the order across restarts, even if the clock went
/// back.
#[derive(Debug)]
pub struct SeqGenerator {
    last: AtomicI64,
}

impl SeqGenerator {
    pub fn starting_after(last_committed: i64) -> Self {
        Self {
            last: AtomicI64::new(last_committed),
        }
    }

    pub fn next(&self) -> SeqId {
        let floor = SeqId::floor_at(chrono::Utc::now().timestamp_millis()).0;
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(floor.max(last + 1))
            })
            .expect("the update closure always returns Some");
        SeqId(floor.max(previous + 1))
    }

    /// The highest number issued so far.
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_and_encodes_time() {
        let seqs = SeqGenerator::starting_after(0);
        let a = seqs.next();
        let b = seqs.next();
        assert!(b > a);
        let now = chrono::Utc::now().timestamp_millis();
        assert!((now - a.millis()).abs() < 10_000);
    }

    #[test]
    fn continues_above_a_future_high_water_mark() {
        let future = SeqId::floor_at(chrono::Utc::now().timestamp_millis() + 60_000).0;
        let seqs = SeqGenerator::starting_after(future);
        assert_eq!(seqs.next().0, future + 1);
    }

    #[test]
    fn unique_across_threads() {
        let seqs = std::sync::Arc::new(SeqGenerator::starting_after(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let seqs = seqs.clone();
                std::thread::spawn(move || (0..10_000).map(|_| seqs.next().0).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
