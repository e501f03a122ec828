#![doc = include_str!("../README.md")]

mod embedded;
mod redis_tier;

pub use redis_tier::RedisOptions;

use ow_common::Deadline;
use ow_common::state::{StateError, StateOp, StateReply, StateResult, counter};
use std::sync::Arc;

/// How long before the deadline a lock wait gives up, at most (a tenth of
/// the time limit when that is less).
const LOCK_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The state of every action of one executor: one tier, chosen at start-up.
#[derive(Clone)]
pub struct State {
    tier: Tier,
    max_value_bytes: usize,
}

#[derive(Clone)]
enum Tier {
    Embedded(Arc<embedded::Embedded>),
    Redis(Arc<redis_tier::RedisTier>),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("tier", &self.tier_name())
            .field("max_value_bytes", &self.max_value_bytes)
            .finish()
    }
}

impl State {
    /// The embedded tier: one store in this process, nothing to set up.
    pub fn embedded(max_value_bytes: usize) -> Self {
        Self {
            tier: Tier::Embedded(Arc::new(embedded::Embedded::default())),
            max_value_bytes,
        }
    }

    /// The distributed tier on the Redis at `options.url`, shared by every
    /// executor that uses it. Connects at once.
    ///
    /// # Errors
    /// A URL Redis's client refuses, or a server that does not answer.
    pub async fn redis(options: RedisOptions, max_value_bytes: usize) -> Result<Self, String> {
        Ok(Self {
            tier: Tier::Redis(Arc::new(redis_tier::RedisTier::connect(options).await?)),
            max_value_bytes,
        })
    }

    /// `embedded` or `redis`.
    pub fn tier_name(&self) -> &'static str {
        match self.tier {
            Tier::Embedded(_) => "embedded",
            Tier::Redis(_) => "redis",
        }
    }

    /// The largest value a key may hold.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The state as one activation of `namespace` sees it: its locks are
    /// its own, waits end at its `deadline`, and every lock it still holds
    /// is released when the session is dropped.
    pub fn session(&self, namespace: &str, deadline: Deadline) -> Session {
        let locks = match &self.tier {
            Tier::Embedded(e) => Locks::Embedded(embedded::Held::new(e)),
            Tier::Redis(r) => Locks::Redis(redis_tier::Held::new(r)),
        };
        Session {
            state: self.clone(),
            namespace: namespace.to_owned(),
            deadline,
            locks,
        }
    }

    /// Read a whole value (the operator's upload endpoint).
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the backend cannot be reached.
    pub async fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = scoped(namespace, key);
        match &self.tier {
            Tier::Embedded(e) => Ok(e.get(&key, usize::MAX).map(|(_, v)| v)),
            Tier::Redis(r) => r.get(&key).await,
        }
    }

    /// Replace a whole value (the operator's upload endpoint).
    ///
    /// # Errors
    /// [`StateError::TooLarge`] over the limit; [`StateError::Unavailable`].
    pub async fn write(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), StateError> {
        if value.len() > self.max_value_bytes {
            return Err(StateError::TooLarge);
        }
        let key = scoped(namespace, key);
        match &self.tier {
            Tier::Embedded(e) => {
                e.set(key, value);
                Ok(())
            }
            Tier::Redis(r) => r.set(&key, value).await,
        }
    }

    /// Remove a key; whether it was there (the operator's upload endpoint).
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the backend cannot be reached.
    pub async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StateError> {
        let key = scoped(namespace, key);
        match &self.tier {
            Tier::Embedded(e) => Ok(e.delete(&key)),
            Tier::Redis(r) => r.delete(&key).await,
        }
    }
}

/// The backend's key for `key` of `namespace`. The namespace's length
/// comes first, so no namespace and key pair can spell another's.
fn scoped(namespace: &str, key: &str) -> String {
    format!("ow:s:{}:{namespace}:{key}", namespace.len())
}

/// The lock's key beside the value's.
fn lock_key(namespace: &str, key: &str) -> String {
    format!("ow:l:{}:{namespace}:{key}", namespace.len())
}

/// One activation's view of the state.
pub struct Session {
    state: State,
    namespace: String,
    deadline: Deadline,
    locks: Locks,
}

enum Locks {
    Embedded(embedded::Held),
    Redis(redis_tier::Held),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.namespace)
            .field("tier", &self.state.tier_name())
            .finish()
    }
}

impl Session {
    /// The largest value a key may hold.
    pub fn max_value_bytes(&self) -> usize {
        self.state.max_value_bytes
    }

    /// Answer one operation of the guest. Returns by the deadline: a lock
    /// wait with [`StateError::LockTimeout`], anything else with
    /// [`StateError::Unavailable`] (the activation is ending anyway).
    pub async fn call(&self, op: StateOp) -> StateResult {
        if !matches!(op, StateOp::Lock { .. }) {
            return tokio::select! {
                biased;
                reply = self.answer(op) => reply,
                () = self.deadline.expired() => Err(StateError::Unavailable),
            };
        }
        // A lock wait gives up a little before the deadline, so that the
        // guest sees `-4` and can still answer.
        let margin = (self.deadline.limit() / 10).min(LOCK_MARGIN);
        let wait = self.deadline.remaining().saturating_sub(margin);
        tokio::select! {
            biased;
            reply = self.answer(op) => reply,
            () = self.deadline.expired() => Err(StateError::LockTimeout),
            () = tokio::time::sleep(wait) => Err(StateError::LockTimeout),
        }
    }

    async fn answer(&self, op: StateOp) -> StateResult {
        let max = self.state.max_value_bytes;
        let ns = self.namespace.as_str();
        let over = |end: Option<u64>| end.is_none_or(|end| end > max as u64);
        match op {
            StateOp::Set { ref value, .. } | StateOp::Append { ref value, .. }
                if value.len() > max =>
            {
                Err(StateError::TooLarge)
            }
            StateOp::SetRange {
                offset, ref value, ..
            } if over(offset.checked_add(value.len() as u64)) => Err(StateError::TooLarge),
            StateOp::Lock { key } => match &self.locks {
                Locks::Embedded(held) => held.lock(lock_key(ns, &key), &self.deadline).await,
                Locks::Redis(held) => held.lock(lock_key(ns, &key), &self.deadline).await,
            },
            StateOp::Unlock { key } => match &self.locks {
                Locks::Embedded(held) => held.unlock(&lock_key(ns, &key)),
                Locks::Redis(held) => held.unlock(&lock_key(ns, &key)).await,
            },
            op => match &self.state.tier {
                Tier::Embedded(e) => e.answer(&scoped(ns, op.key()), op, max),
                Tier::Redis(r) => r.answer(&scoped(ns, op.key()), op, max).await,
            },
        }
    }
}

/// `min(len, cap)` bytes of `value` and its length: a `state_get` reply.
fn get_reply(value: &[u8], cap: usize) -> StateReply {
    StateReply {
        value: value.len() as i64,
        data: value[..value.len().min(cap)].to_vec(),
    }
}

/// The bytes of `value` from `offset`, at most `len`: a `state_get_range`
/// reply.
fn range_reply(value: &[u8], offset: u64, len: u32) -> StateReply {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(value.len());
    let end = start.saturating_add(len as usize).min(value.len());
    let data = value[start..end].to_vec();
    StateReply {
        value: data.len() as i64,
        data,
    }
}

/// `value` with `counter(value) + delta` stored in its place.
fn added(value: &[u8], delta: i64) -> (i64, Vec<u8>) {
    let new = counter(value).wrapping_add(delta);
    (new, new.to_le_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn deadline(ms: u64) -> Deadline {
        Deadline::new(Duration::from_millis(ms))
    }

    fn set(key: &str, value: &[u8]) -> StateOp {
        StateOp::Set {
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn get(key: &str) -> StateOp {
        StateOp::Get {
            key: key.into(),
            cap: 1024,
        }
    }

    #[tokio::test]
    async fn namespaces_are_apart_and_the_operator_sees_what_actions_wrote() {
        let state = State::embedded(1024);
        let alice = state.session("alice", deadline(5_000));
        let bob = state.session("bob", deadline(5_000));
        alice.call(set("k", b"v")).await.unwrap();
        assert_eq!(bob.call(get("k")).await, Err(StateError::Absent));
        assert_eq!(alice.call(get("k")).await.unwrap().data, b"v");
        assert_eq!(state.read("alice", "k").await.unwrap(), Some(b"v".to_vec()));
        state.write("bob", "k", b"w".to_vec()).await.unwrap();
        assert_eq!(bob.call(get("k")).await.unwrap().data, b"w");
        assert!(state.remove("alice", "k").await.unwrap());
        assert_eq!(
            state.write("bob", "big", vec![0; 1025]).await,
            Err(StateError::TooLarge)
        );
    }

    #[tokio::test]
    async fn a_lock_is_released_when_its_session_ends_and_a_wait_ends_before_the_deadline() {
        let state = State::embedded(1024);
        let lock = || StateOp::Lock { key: "L".into() };
        let holder = state.session("ns", deadline(5_000));
        holder.call(lock()).await.unwrap();
        // Another session waits, and gives up a tenth of its limit early.
        let waiter = state.session("ns", deadline(300));
        let started = std::time::Instant::now();
        assert_eq!(waiter.call(lock()).await, Err(StateError::LockTimeout));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(1000),
            "{waited:?}"
        );
        // Another namespace's lock of the same name is another lock.
        let other = state.session("other", deadline(1_000));
        assert_eq!(other.call(lock()).await.unwrap().value, 0);
        drop(holder);
        let next = state.session("ns", deadline(1_000));
        assert_eq!(next.call(lock()).await.unwrap().value, 0);
        assert_eq!(
            next.call(StateOp::Unlock { key: "L".into() })
                .await
                .unwrap()
                .value,
            0
        );
        assert_eq!(
            next.call(StateOp::Unlock { key: "L".into() }).await,
            Err(StateError::Absent)
        );
    }

    #[tokio::test]
    async fn concurrent_adds_lose_no_increment() {
        let state = State::embedded(1024);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let session = state.session("ns", deadline(5_000));
                tokio::spawn(async move {
                    for _ in 0..100 {
                        session
                            .call(StateOp::Add {
                                key: "n".into(),
                                delta: 1,
                            })
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let session = state.session("ns", deadline(1_000));
        let value = session
            .call(StateOp::Add {
                key: "n".into(),
                delta: 0,
            })
            .await
            .unwrap()
            .value;
        assert_eq!(value, 6_400);
    }
}
