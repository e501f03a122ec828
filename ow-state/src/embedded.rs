//! The embedded tier: values in this process's memory, shared by every
//! activation of the executor; locks are async mutexes whose guards the
//! holding activation's session keeps.

use crate::{added, get_reply, range_reply};
use ow_common::state::{StateError, StateOp, StateReply, StateResult};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::OwnedMutexGuard;

/// Values are spread over this many maps, each behind its own mutex, so
/// that activations working on different keys rarely wait for each other.
const SHARDS: usize = 32;

#[derive(Default)]
pub(crate) struct Embedded {
    hasher: std::hash::RandomState,
    shards: [Mutex<HashMap<String, Vec<u8>>>; SHARDS],
    /// Lock keys to their mutex; an entry lives while someone holds or
    /// waits for it.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A poisoned mutex only means a panic elsewhere; the map is still whole
/// (every update below is a single call on it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Embedded {
    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        lock(&self.shards[i])
    }

    pub(crate) fn get(&self, key: &str, cap: usize) -> Option<(usize, Vec<u8>)> {
        let shard = self.shard(key);
        let value = shard.get(key)?;
        Some((value.len(), value[..value.len().min(cap)].to_vec()))
    }

    pub(crate) fn set(&self, key: String, value: Vec<u8>) {
        self.shard(&key).insert(key, value);
    }

    pub(crate) fn delete(&self, key: &str) -> bool {
        self.shard(key).remove(key).is_some()
    }

    /// A data operation on `key` (already scoped); locks are the session's.
    pub(crate) fn answer(&self, key: &str, op: StateOp, max: usize) -> StateResult {
        let mut shard = self.shard(key);
        match op {
            StateOp::Get { cap, .. } => shard
                .get(key)
                .map(|v| get_reply(v, cap as usize))
                .ok_or(StateError::Absent),
            StateOp::Set { value, .. } => {
                shard.insert(key.to_owned(), value);
                Ok(StateReply::value(0))
            }
            StateOp::Append { value, .. } => {
                let current = shard.get(key).map_or(0, Vec::len);
                if current + value.len() > max {
                    return Err(StateError::TooLarge);
                }
                let entry = shard.entry(key.to_owned()).or_default();
                entry.extend_from_slice(&value);
                Ok(StateReply::value(entry.len() as i64))
            }
            StateOp::Delete { .. } => match shard.remove(key) {
                Some(_) => Ok(StateReply::value(0)),
                None => Err(StateError::Absent),
            },
            StateOp::GetRange { offset, len, .. } => shard
                .get(key)
                .map(|v| range_reply(v, offset, len))
                .ok_or(StateError::Absent),
            // Nothing to write: nothing changes, as Redis's SETRANGE does
            // (no key is created, no gap is filled).
            StateOp::SetRange { value, .. } if value.is_empty() => Ok(StateReply::value(0)),
            StateOp::SetRange { offset, value, .. } => {
                // The caller checked offset + len against the limit.
                let start = offset as usize;
                let end = start + value.len();
                let entry = shard.entry(key.to_owned()).or_default();
                if entry.len() < end {
                    entry.resize(end, 0);
                }
                entry[start..end].copy_from_slice(&value);
                Ok(StateReply::value(0))
            }
            StateOp::Add { delta, .. } => {
                let entry = shard.entry(key.to_owned()).or_default();
                let (new, bytes) = added(entry, delta);
                *entry = bytes;
                Ok(StateReply::value(new))
            }
            StateOp::Lock { .. } | StateOp::Unlock { .. } => Err(StateError::Unavailable),
        }
    }

    /// Drop `key`'s lock entry when nobody holds or waits for it.
    fn forget(&self, key: &str) {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(key);
        }
    }
}

/// The embedded locks one activation holds: dropping it releases them.
pub(crate) struct Held {
    store: Arc<Embedded>,
    guards: Mutex<HashMap<String, OwnedMutexGuard<()>>>,
}

impl Held {
    pub(crate) fn new(store: &Arc<Embedded>) -> Self {
        Self {
            store: Arc::clone(store),
            guards: Mutex::default(),
        }
    }

    /// Wait for `key`'s lock (the session bounds the wait by the deadline).
    pub(crate) async fn lock(&self, key: String, _: &ow_common::Deadline) -> StateResult {
        if lock(&self.guards).contains_key(&key) {
            return Ok(StateReply::value(0));
        }
        // Declared before the mutex, so dropped after it when the wait is
        // given up: the entry is then forgotten if nobody else uses it.
        let waiting = Waiting {
            store: &self.store,
            key: &key,
        };
        let mutex = Arc::clone(lock(&self.store.locks).entry(key.clone()).or_default());
        let guard = mutex.lock_owned().await;
        drop(waiting);
        lock(&self.guards).insert(key, guard);
        Ok(StateReply::value(0))
    }

    pub(crate) fn unlock(&self, key: &str) -> StateResult {
        let guard = lock(&self.guards).remove(key);
        match guard {
            Some(guard) => {
                drop(guard);
                self.store.forget(key);
                Ok(StateReply::value(0))
            }
            None => Err(StateError::Absent),
        }
    }
}

/// Forgets a lock entry whose waiter gave up (its future was dropped at
/// the deadline) or got it (the guard keeps the mutex alive).
struct Waiting<'a> {
    store: &'a Embedded,
    key: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.store.forget(self.key);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let guards = std::mem::take(&mut *lock(&self.guards));
        for (key, guard) in guards {
            drop(guard);
            self.store.forget(&key);
        }
    }
}
