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
pub struct SharedModules<T: ?Sized> {
    map: Mutex<HashMap<ContentKey, Weak<T>>>,
}

impl<T: ?Sized> Default for SharedModules<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> SharedModules<T> {
    /// The live module under `key`, else the one `make` builds (outside the
    /// lock: compiling takes long), which is then offered to later callers.
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
        if let Some(live) = self.lock().get(&key).and_then(Weak::upgrade) {
            return Ok(live);
        }
        let made = make()?;
        let mut map = self.lock();
        // Another caller may have made it meanwhile: keep one.
        if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(live);
        }
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, weak| weak.strong_count() > 0);
        }
        map.insert(key, Arc::downgrade(&made));
        Ok(made)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentKey, Weak<T>>> {
        // Always consistent between statements: poisoning is harmless.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
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
}
