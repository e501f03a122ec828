//! Compiled modules shared by content within a process: every action (and
//! container) with the same code uses one copy of its compiled form, which
//! lives as long as one of them does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A content address: BLAKE3 over the parts that determine a compiled form.
pub type ContentKey = [u8; 32];

/// The content address of `parts` (each length-prefixed, so that no two
/// different lists of parts share a key).
pub fn content_key(parts: &[&[u8]]) -> ContentKey {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

/// Weak references to live compiled modules (or whole prepared actions)
/// by [`ContentKey`].
///
/// Single-flight: while one caller makes the value of a key, others asking
/// for the same key wait for it instead of making it again (N identical
/// cold /inits compile once). A maker that fails lets the next waiter try.
pub struct SharedModules<T: ?Sized> {
    map: Mutex<HashMap<ContentKey, Weak<T>>>,
    /// One gate per key being made; holding it is the right to make.
    making: Mutex<HashMap<ContentKey, Arc<Mutex<()>>>>,
}

impl<T: ?Sized> Default for SharedModules<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            making: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> SharedModules<T> {
    /// The live module under `key`, else the one `make` builds (outside the
    /// map's lock: compiling takes long), which is then offered to later
    /// callers.
    ///
    /// # Errors
    /// `make`'s.
    pub fn get_or_make<E>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        self.get_or_make_arc(key, || make().map(Arc::new))
    }
}

impl<T: ?Sized> SharedModules<T> {
    /// [`SharedModules::get_or_make`] for values made behind an `Arc`
    /// (trait objects).
    ///
    /// # Errors
    /// `make`'s.
    pub fn get_or_make_arc<E>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(live) = self.live(&key) {
            return Ok(live);
        }
        let gate = Arc::clone(
            lock(&self.making)
                .entry(key)
                .or_insert_with(|| Arc::new(Mutex::new(()))),
        );
        let made = {
            // Waits while another caller makes this key.
            let _making = gate.lock().unwrap_or_else(|e| e.into_inner());
            match self.live(&key) {
                Some(live) => Ok(live),
                None => make().inspect(|made| {
                    let mut map = lock(&self.map);
                    if map.len() >= 64 && map.len().is_power_of_two() {
                        map.retain(|_, weak| weak.strong_count() > 0);
                    }
                    map.insert(key, Arc::downgrade(made));
                }),
            }
        };
        // The last one through removes the gate (the map holds one count).
        let mut making = lock(&self.making);
        if Arc::strong_count(&gate) == 2 {
            making.remove(&key);
        }
        made
    }

    fn live(&self, key: &ContentKey) -> Option<Arc<T>> {
        lock(&self.map).get(key).and_then(Weak::upgrade)
    }
}

fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    // Always consistent between statements: poisoning is harmless.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_while_any_user_lives() {
        let shared = SharedModules::<String>::default();
        let key = content_key(&[b"code", b"settings"]);
        assert_ne!(key, content_key(&[b"cod", b"esettings"]));
        let a = shared
            .get_or_make(key, || Ok::<_, ()>("compiled".to_owned()))
            .unwrap();
        let b = shared
            .get_or_make(key, || -> Result<String, ()> { panic!("compiled twice") })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        let c = shared
            .get_or_make(key, || Ok::<_, ()>("again".to_owned()))
            .unwrap();
        assert_eq!(*c, "again");
        assert!(
            shared
                .get_or_make(content_key(&[b"x"]), || Err("bad"))
                .is_err()
        );
    }

    #[test]
    fn concurrent_callers_of_one_key_make_it_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const CALLERS: usize = 8;
        let shared = SharedModules::<usize>::default();
        let key = content_key(&[b"module"]);
        let (entered, made) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (start, done) = (
            std::sync::Barrier::new(CALLERS),
            std::sync::Barrier::new(CALLERS),
        );
        std::thread::scope(|s| {
            for _ in 0..CALLERS {
                s.spawn(|| {
                    start.wait();
                    entered.fetch_add(1, Ordering::SeqCst);
                    let value = shared
                        .get_or_make(key, || {
                            // Keep making until every caller has asked: without
                            // single-flight each would make its own.
                            let give_up =
                                std::time::Instant::now() + std::time::Duration::from_secs(5);
                            while entered.load(Ordering::SeqCst) < CALLERS
                                && std::time::Instant::now() < give_up
                            {
                                std::thread::yield_now();
                            }
                            Ok::<_, ()>(made.fetch_add(1, Ordering::SeqCst))
                        })
                        .unwrap();
                    assert_eq!(*value, 0);
                    // Everyone keeps the value until all have it (weak map).
                    done.wait();
                });
            }
        });
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert!(lock(&shared.making).is_empty(), "gates are removed");
    }

    #[test]
    fn a_failed_maker_lets_the_next_caller_try() {
        let shared = SharedModules::<&str>::default();
        let key = content_key(&[b"flaky"]);
        assert!(shared.get_or_make(key, || Err("compile error")).is_err());
        assert_eq!(
            *shared.get_or_make(key, || Ok::<_, ()>("ok")).unwrap(),
            "ok"
        );
    }
}
