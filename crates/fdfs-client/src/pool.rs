//! Idle-connection pool keyed by server address (`use_connection_pool`).
//!
//! Only connections whose last exchange succeeded are put back; taking one
//! drops every idle entry older than `connection_pool_max_idle_time` and any
//! entry the health probe rejects. The pool is generic over the pooled item
//! so the expiry rules can be tested without sockets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Idle<T> {
    item: T,
    /// When the item was returned; it expires `max_idle` after this.
    since: Instant,
}

/// Idle items per address, most recently returned last.
pub struct Pool<T> {
    /// `connection_pool_max_idle_time`: older idle entries are dropped.
    max_idle: Duration,
    idle: Mutex<HashMap<String, Vec<Idle<T>>>>,
}

impl<T> Pool<T> {
    pub fn new(max_idle: Duration) -> Self {
        Pool {
            max_idle,
            idle: Mutex::new(HashMap::new()),
        }
    }

    pub fn max_idle(&self) -> Duration {
        self.max_idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle<T>>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation is a single push/pop), so poisoning is ignored.
        fdfs_util::sync::lock(&self.idle)
    }

    /// Takes the most recently returned item for `key` that is younger than
    /// `max_idle` at `now` and passes `healthy`. Expired and unhealthy items
    /// met on the way are dropped.
    pub fn take(&self, key: &str, now: Instant, healthy: impl Fn(&T) -> bool) -> Option<T> {
        let mut map = self.lock();
        let list = map.get_mut(key)?;
        // Expired entries are the oldest: drop them wholesale first.
        list.retain(|e| now.saturating_duration_since(e.since) < self.max_idle);
        let mut found = None;
        while let Some(e) = list.pop() {
            if healthy(&e.item) {
                found = Some(e.item);
                break;
            }
        }
        if list.is_empty() {
            map.remove(key);
        }
        found
    }

    /// Returns an item for reuse.
    pub fn put(&self, key: &str, item: T, now: Instant) {
        if self.max_idle.is_zero() {
            return;
        }
        self.lock()
            .entry(key.to_string())
            .or_default()
            .push(Idle { item, since: now });
    }

    /// Number of idle items held for `key` (expired ones included until the
    /// next `take`).
    pub fn idle_count(&self, key: &str) -> usize {
        self.lock().get(key).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_most_recent_healthy_item() {
        let pool = Pool::new(Duration::from_secs(60));
        let t0 = Instant::now();
        pool.put("a:1", 1, t0);
        pool.put("a:1", 2, t0);
        pool.put("b:1", 3, t0);
        assert_eq!(pool.take("a:1", t0, |_| true), Some(2));
        assert_eq!(pool.take("a:1", t0, |_| true), Some(1));
        assert_eq!(pool.take("a:1", t0, |_| true), None);
        assert_eq!(pool.take("b:1", t0, |_| true), Some(3));
    }

    #[test]
    fn drops_items_idle_longer_than_max_idle() {
        let pool = Pool::new(Duration::from_secs(10));
        let t0 = Instant::now();
        pool.put("a", 1, t0);
        pool.put("a", 2, t0 + Duration::from_secs(5));
        // At t0+10 s the first item is exactly max_idle old: expired.
        assert_eq!(
            pool.take("a", t0 + Duration::from_secs(10), |_| true),
            Some(2)
        );
        assert_eq!(pool.idle_count("a"), 0);
        pool.put("a", 3, t0);
        assert_eq!(pool.take("a", t0 + Duration::from_secs(11), |_| true), None);
        assert_eq!(pool.idle_count("a"), 0);
    }

    #[test]
    fn unhealthy_items_are_discarded() {
        let pool = Pool::new(Duration::from_secs(10));
        let t0 = Instant::now();
        pool.put("a", 1, t0);
        pool.put("a", 2, t0);
        assert_eq!(pool.take("a", t0, |v| *v == 1), Some(1));
        assert_eq!(pool.idle_count("a"), 0);
    }

    #[test]
    fn zero_max_idle_disables_reuse() {
        let pool = Pool::new(Duration::ZERO);
        let t0 = Instant::now();
        pool.put("a", 1, t0);
        assert_eq!(pool.take("a", t0, |_| true), None);
    }
}
