//! Keeping bookkeeping tables bounded.
//!
//! The login cache and the failure throttle grow with the number of users
//! and addresses they see. When one is full it first drops what has expired,
//! then the oldest tenth, so a flood of new keys costs one sort per tenth of
//! the table rather than one scan per key.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Makes room for one more entry in `map`, which holds at most `capacity`:
/// drops entries for which `expired` holds, then, if still full, the tenth
/// with the oldest `age`.
pub(crate) fn make_room<K, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) where
    K: Eq + Hash + Clone,
{
    if map.len() < capacity {
        return;
    }
    map.retain(|_, value| !expired(value));
    if map.len() < capacity {
        return;
    }
    let mut by_age: Vec<(Instant, K)> = map.iter().map(|(k, v)| (age(v), k.clone())).collect();
    by_age.sort_unstable_by_key(|(instant, _)| *instant);
    let excess = map.len() + 1 - capacity.max(1);
    let count = excess.max(capacity / 10).max(1);
    for (_, key) in by_age.into_iter().take(count) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_first_then_oldest_tenth() {
        let start = Instant::now();
        let mut map: HashMap<u32, Instant> = (0..100)
            .map(|i| (i, start + Duration::from_secs(u64::from(i))))
            .collect();
        make_room(&mut map, 200, |_| true, |t| *t);
        assert_eq!(map.len(), 100, "not full: nothing dropped");

        make_room(
            &mut map,
            100,
            |t| *t < start + Duration::from_secs(5),
            |t| *t,
        );
        assert_eq!(map.len(), 95, "expired entries dropped");

        make_room(&mut map, 95, |_| false, |t| *t);
        assert_eq!(map.len(), 86, "the oldest tenth dropped");
        assert!(!map.contains_key(&13) && map.contains_key(&14));

        let mut tiny: HashMap<u32, Instant> = HashMap::from([(1, start)]);
        make_room(&mut tiny, 0, |_| false, |t| *t);
        assert!(tiny.is_empty());
    }
}
