//! The distributed tier: Redis, shared by every executor configured with
//! the same server.
//!
//! Each operation is one Redis command or one Lua script (Redis runs a
//! script atomically), so every operation on a key is atomic and
//! linearizable across executors. A write is acknowledged to the guest
//! only after Redis acknowledged it. Every call is bounded by the operation
//! timeout: an unreachable or stalled server gives `-3`, never a hang.
//!
//! Locks are leases: `SET lock token NX PX lease`, renewed every third of
//! the lease while the activation holds them, released with a
//! compare-and-delete when it unlocks or ends; a lock of an executor that
//! died expires with its lease.

use crate::{get_reply, range_reply};
use ow_common::state::{StateError, StateOp, StateReply, StateResult};
use redis::aio::MultiplexedConnection;
use redis::caching::CacheConfig;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind};
use redis::{Cmd, FromRedisValue, cmd};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` (Redis's own URL syntax).
    pub url: String,
    /// The longest one operation may take before it answers `-3`.
    pub op_timeout: Duration,
    /// A lock's lease: how long it outlives an executor that died holding it.
    pub lock_lease: Duration,
    /// Keep values this executor read in its memory (at most this many),
    /// invalidated by Redis (client-side caching, RESP3 tracking); `0` for
    /// none.
    pub local_cache_entries: usize,
}

impl RedisOptions {
    /// Defaults: 2 s per operation, 10 s leases.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            op_timeout: Duration::from_secs(2),
            lock_lease: Duration::from_secs(10),
            local_cache_entries: 0,
        }
    }
}

pub(crate) struct RedisTier {
    client: redis::Client,
    /// The live connection of each runtime that calls (the HTTP workers,
    /// the engines' pools, the state runtime), if any; replaced when it
    /// breaks. A caller and its connection's driver share a thread, so a
    /// round trip wakes no other thread.
    links: Mutex<HashMap<Option<tokio::runtime::Id>, Link>>,
    /// One reconnection at a time.
    reconnecting: tokio::sync::Mutex<()>,
    options: RedisOptions,
    /// Runs the connection's driver and the lease renewals, whatever
    /// runtime the callers use (actix workers, engine pools).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Tells this process's lock tokens from every other's.
    owner: String,
    tokens: AtomicU64,
    scripts: Scripts,
}

/// A connection and whether it still stands.
struct Link {
    conn: MultiplexedConnection,
    alive: Arc<AtomicBool>,
}

struct Scripts {
    append: &'static str,
    get_range: &'static str,
    add: &'static str,
    renew: &'static str,
    release: &'static str,
    acquire: &'static str,
    unlock: &'static str,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // The size check and the append, atomically.
            append: "local n = redis.call('STRLEN', KEYS[1]) \
                 if n + string.len(ARGV[1]) > tonumber(ARGV[2]) then return -2 end \
                 return redis.call('APPEND', KEYS[1], ARGV[1])",
            // GETRANGE cannot tell an absent key from an empty one.
            get_range: "if redis.call('EXISTS', KEYS[1]) == 0 then return false end \
                 if ARGV[3] == '0' then return '' end \
                 return redis.call('GETRANGE', KEYS[1], ARGV[1], ARGV[2])",
            // A 64-bit little-endian counter in two 32-bit halves: Lua 5.1's
            // numbers are doubles, exact only to 2^53.
            add: "local v = redis.call('GET', KEYS[1]) \
                 local lo, hi = 0, 0 \
                 if v then lo, hi = struct.unpack('<I4I4', string.sub(v .. string.rep('\\0', 8), 1, 8)) end \
                 lo = lo + tonumber(ARGV[1]) \
                 local carry = math.floor(lo / 4294967296) \
                 lo = lo - carry * 4294967296 \
                 hi = (hi + tonumber(ARGV[2]) + carry) % 4294967296 \
                 redis.call('SET', KEYS[1], struct.pack('<I4I4', lo, hi)) \
                 return {lo, hi}",
            // Every lock of a session at once: KEYS the locks, ARGV their
            // tokens then the lease.
            renew: "local lease = ARGV[#ARGV] \
                 for i = 1, #KEYS do \
                 if redis.call('GET', KEYS[i]) == ARGV[i] then redis.call('PEXPIRE', KEYS[i], lease) end \
                 end return 0",
            release: "for i = 1, #KEYS do \
                 if redis.call('GET', KEYS[i]) == ARGV[i] then redis.call('DEL', KEYS[i]) end \
                 end return 0",
            // Take the lock for token ARGV[1], or confirm it is ours already.
            acquire: "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end \
                 if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0",
            unlock: "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
        }
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `EVAL script` over `keys`, arguments to follow. The whole script each
/// time (Redis keeps it compiled by its digest): never a `NOSCRIPT` after a
/// Redis restart, and it pipelines.
fn eval(script: &str, keys: &[&str]) -> Cmd {
    let mut command = cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

/// The caller's runtime, if any.
fn runtime_id() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
}

/// Any Redis failure is, to the guest, an unavailable backend.
fn unavailable(e: redis::RedisError) -> StateError {
    tracing::debug!(error = %e, "redis state operation failed");
    StateError::Unavailable
}

impl RedisTier {
    pub(crate) async fn connect(options: RedisOptions) -> Result<Self, String> {
        let mut client = redis::Client::open(options.url.as_str())
            .map_err(|e| format!("invalid Redis URL {}: {e}", options.url))?;
        if options.local_cache_entries > 0 {
            // Client-side caching needs RESP3: Redis sends invalidations as
            // push messages on the connection that read the key.
            let info = client.get_connection_info().clone();
            let redis = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            client = redis::Client::open(info.set_redis_settings(redis))
                .map_err(|e| format!("invalid Redis URL {}: {e}", options.url))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ow-state")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the state runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let owner = format!(
            "{}.{}",
            std::process::id(),
            std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8)
        );
        let tier = Self {
            client,
            links: Mutex::default(),
            reconnecting: tokio::sync::Mutex::new(()),
            options,
            runtime: Some(runtime),
            handle,
            owner,
            tokens: AtomicU64::new(0),
            scripts: Scripts::new(),
        };
        // Refuse to start without a server, rather than answer -3 to all.
        let mut conn = tier.connection().await.map_err(|_| {
            format!(
                "cannot connect to Redis at {} within {:?}",
                tier.options.url, tier.options.op_timeout
            )
        })?;
        let pong: redis::RedisResult<String> = cmd("PING").query_async(&mut conn).await;
        pong.map_err(|e| format!("Redis at {} does not answer: {e}", tier.options.url))?;
        Ok(tier)
    }

    /// The live connection, connecting first when there is none (or it
    /// broke). A new connection starts with an empty local cache: a cache
    /// is only ever as old as the connection whose invalidations keep it.
    async fn connection(&self) -> Result<MultiplexedConnection, StateError> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let Ok(_one) =
            tokio::time::timeout(self.options.op_timeout, self.reconnecting.lock()).await
        else {
            return Err(StateError::Unavailable);
        };
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let alive = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&alive);
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.op_timeout))
            .set_response_timeout(Some(self.options.op_timeout));
        if let Some(entries) = NonZeroUsize::new(self.options.local_cache_entries) {
            config = config
                .set_cache_config(CacheConfig::new().set_size(entries))
                // The library's notice that the connection closed (RESP3
                // only): no invalidation can reach its cache any more.
                .set_push_sender(move |info: PushInfo| {
                    if info.kind == PushKind::Disconnection {
                        flag.store(false, Ordering::SeqCst);
                    }
                    Ok::<(), ()>(())
                });
        }
        let client = self.client.clone();
        // The connection's driver task lives on the caller's runtime (the
        // state runtime for callers outside any).
        let connect = async move {
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        };
        let connect = match (tokio::runtime::Handle::try_current(), self.link_key()) {
            (Ok(current), Some(_)) => current.spawn(connect),
            _ => self.handle.spawn(connect),
        };
        let conn = match tokio::time::timeout(self.options.op_timeout, connect).await {
            Ok(Ok(Ok(conn))) => conn,
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "cannot connect to Redis");
                return Err(StateError::Unavailable);
            }
            _ => {
                tracing::warn!("cannot connect to Redis in time");
                return Err(StateError::Unavailable);
            }
        };
        lock(&self.links).insert(
            self.link_key(),
            Link {
                conn: conn.clone(),
                alive,
            },
        );
        Ok(conn)
    }

    /// Whose connection the caller uses: its runtime's, or with a local
    /// cache the one shared connection (a cache is only consistent with
    /// the writes fenced on its own connection, so there is one).
    fn link_key(&self) -> Option<tokio::runtime::Id> {
        match self.options.local_cache_entries {
            0 => runtime_id(),
            _ => None,
        }
    }

    fn live(&self) -> Option<MultiplexedConnection> {
        lock(&self.links)
            .get(&self.link_key())
            .filter(|l| l.alive.load(Ordering::SeqCst))
            .map(|l| l.conn.clone())
    }

    /// Drop the caller's connection after a failure: its next call
    /// reconnects, with a cache of its own.
    fn broken(&self) {
        if let Some(link) = lock(&self.links).remove(&self.link_key()) {
            link.alive.store(false, Ordering::SeqCst);
        }
    }

    /// `fut` under the operation timeout.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(self.options.op_timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.broken();
                }
                Err(unavailable(e))
            }
            Err(_) => {
                tracing::debug!("redis state operation timed out");
                self.broken();
                Err(StateError::Unavailable)
            }
        }
    }

    /// A command that changes `key`s: on a connection with a local cache,
    /// pipelined with a `PING` whose answer comes after the invalidation
    /// Redis sends this very connection once the command ran, so when the
    /// write returns, no read of this connection can see the old value.
    async fn write<T: FromRedisValue>(&self, command: Cmd) -> Result<T, StateError> {
        let mut conn = self.connection().await?;
        if self.options.local_cache_entries == 0 {
            return self.bounded(command.query_async(&mut conn)).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(command).cmd("PING").ignore();
        let (value,): (T,) = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(value)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let mut conn = self.connection().await?;
        self.bounded(cmd("GET").arg(key).query_async(&mut conn))
            .await
    }

    pub(crate) async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        self.write(cmd("SET").arg(key).arg(value).clone()).await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let n: i64 = self.write(cmd("DEL").arg(key).clone()).await?;
        Ok(n > 0)
    }

    /// A data operation on `key` (already scoped); locks are the session's.
    pub(crate) async fn answer(&self, key: &str, op: StateOp, max: usize) -> StateResult {
        let mut conn = self.connection().await?;
        let s = &self.scripts;
        match op {
            StateOp::Get { cap, .. } => match self.get(key).await? {
                Some(v) => Ok(get_reply(&v, cap as usize)),
                None => Err(StateError::Absent),
            },
            StateOp::Set { value, .. } => {
                self.set(key, value).await?;
                Ok(StateReply::value(0))
            }
            StateOp::Append { value, .. } => {
                match self
                    .write::<i64>(eval(s.append, &[key]).arg(value).arg(max).clone())
                    .await?
                {
                    -2 => Err(StateError::TooLarge),
                    n => Ok(StateReply::value(n)),
                }
            }
            StateOp::Delete { .. } => match self.delete(key).await? {
                true => Ok(StateReply::value(0)),
                false => Err(StateError::Absent),
            },
            StateOp::GetRange { offset, len, .. } => {
                // Redis offsets are signed: past i64::MAX there is nothing.
                let start = offset.min(i64::MAX as u64);
                let end = start.saturating_add(u64::from(len).saturating_sub(1));
                let end = end.min(i64::MAX as u64);
                let range = eval(s.get_range, &[key])
                    .arg(start)
                    .arg(end)
                    .arg(len)
                    .clone();
                let bytes: Option<Vec<u8>> = self.bounded(range.query_async(&mut conn)).await?;
                // The bytes are already the range: take them whole.
                bytes
                    .map(|b| range_reply(&b, 0, len))
                    .ok_or(StateError::Absent)
            }
            StateOp::SetRange { offset, value, .. } => {
                // The session checked offset + len against the limit.
                let set = cmd("SETRANGE").arg(key).arg(offset).arg(value).clone();
                self.write::<i64>(set).await?;
                Ok(StateReply::value(0))
            }
            StateOp::Add { delta, .. } => {
                let delta = delta as u64;
                let add = eval(s.add, &[key])
                    .arg(delta & 0xffff_ffff)
                    .arg(delta >> 32)
                    .clone();
                let (lo, hi): (u64, u64) = self.write(add).await?;
                let new = ((hi << 32) | (lo & 0xffff_ffff)) as i64;
                Ok(StateReply::value(new))
            }
            StateOp::Lock { .. } | StateOp::Unlock { .. } => Err(StateError::Unavailable),
        }
    }

    fn token(&self) -> String {
        format!(
            "{}.{}",
            self.owner,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn lease_ms(&self) -> u64 {
        (self.options.lock_lease.as_millis() as u64).max(1)
    }
}

/// The Redis locks one activation holds, by lock key, with their tokens.
/// Renewed while held; released when unlocked or when this is dropped.
pub(crate) struct Held {
    tier: Arc<RedisTier>,
    tokens: Arc<Mutex<HashMap<String, String>>>,
    /// Tokens of lock attempts that may have reached Redis without their
    /// answer reaching us (the wait was cut at the deadline, or the call
    /// timed out): reused by the next attempt on that key, released with
    /// the held ones (compare-and-delete: harmless if never taken).
    pending: Mutex<HashMap<String, String>>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Held {
    pub(crate) fn new(tier: &Arc<RedisTier>) -> Self {
        Self {
            tier: Arc::clone(tier),
            tokens: Arc::default(),
            pending: Mutex::default(),
            renewer: Mutex::new(None),
        }
    }

    /// Wait for the lock (the session bounds the wait by the deadline):
    /// `SET NX` until it succeeds, backing off from 1 ms to 20 ms.
    pub(crate) async fn lock(&self, key: String, _: &ow_common::Deadline) -> StateResult {
        if lock(&self.tokens).contains_key(&key) {
            return Ok(StateReply::value(0));
        }
        let tier = &self.tier;
        // Recorded before the first attempt: if this future is dropped with
        // an attempt in flight, the session still releases what it may hold.
        let token = lock(&self.pending)
            .entry(key.clone())
            .or_insert_with(|| tier.token())
            .clone();
        let mut pause = Duration::from_millis(1);
        loop {
            let mut conn = tier.connection().await?;
            // Idempotent for one token: an attempt whose answer was lost
            // is taken again, not waited for.
            let take = eval(tier.scripts.acquire, &[&key])
                .arg(&token)
                .arg(tier.lease_ms())
                .clone();
            let taken: i64 = tier.bounded(take.query_async(&mut conn)).await?;
            if taken == 1 {
                lock(&self.pending).remove(&key);
                lock(&self.tokens).insert(key, token);
                self.renew_while_held();
                return Ok(StateReply::value(0));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    pub(crate) async fn unlock(&self, key: &str) -> StateResult {
        let token = lock(&self.tokens).get(key).cloned();
        let Some(token) = token else {
            return Err(StateError::Absent);
        };
        let tier = &self.tier;
        let mut conn = tier.connection().await?;
        let unlock = eval(tier.scripts.unlock, &[key]).arg(token).clone();
        // Forgotten only once Redis answered: a failed unlock leaves the
        // lock with the session, which releases it when it ends.
        let answer = tier.bounded(unlock.query_async::<i64>(&mut conn)).await?;
        lock(&self.tokens).remove(key);
        match answer {
            // The lease ran out (Redis unreachable for a whole lease) and
            // the lock is someone else's now, or nobody's.
            0 => Err(StateError::Absent),
            _ => Ok(StateReply::value(0)),
        }
    }

    /// Start the renewals, once.
    fn renew_while_held(&self) {
        let mut renewer = lock(&self.renewer);
        if renewer.is_some() {
            return;
        }
        let tokens: Weak<Mutex<HashMap<String, String>>> = Arc::downgrade(&self.tokens);
        let tier = Arc::clone(&self.tier);
        let every = tier.options.lock_lease / 3;
        *renewer = Some(self.tier.handle.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(tokens) = tokens.upgrade() else {
                    return;
                };
                let held: Vec<(String, String)> = lock(&tokens)
                    .iter()
                    .map(|(k, t)| (k.clone(), t.clone()))
                    .collect();
                drop(tokens);
                if held.is_empty() {
                    continue;
                }
                // One script call (EVALSHA, loaded again after a Redis
                // restart), not a pipeline of them.
                let keys: Vec<&str> = held.iter().map(|(k, _)| k.as_str()).collect();
                let mut call = eval(tier.scripts.renew, &keys);
                for (_, token) in &held {
                    call.arg(token);
                }
                call.arg(tier.lease_ms());
                let renewed = match tier.connection().await {
                    Ok(mut conn) => tier.bounded(call.query_async::<()>(&mut conn)).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = renewed {
                    tracing::warn!(error = %e, locks = held.len(), "cannot renew state locks");
                }
            }
        }));
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(renewer) = lock(&self.renewer).take() {
            renewer.abort();
        }
        let mut held = std::mem::take(&mut *lock(&self.tokens));
        held.extend(std::mem::take(&mut *lock(&self.pending)));
        if held.is_empty() {
            return;
        }
        let tier = Arc::clone(&self.tier);
        self.tier.handle.spawn(async move {
            // A map iterates its keys and values in the same order.
            let keys: Vec<&str> = held.keys().map(String::as_str).collect();
            let mut call = eval(tier.scripts.release, &keys);
            for token in held.values() {
                call.arg(token);
            }
            let released = match tier.connection().await {
                Ok(mut conn) => tier.bounded(call.query_async::<()>(&mut conn)).await,
                Err(e) => Err(e),
            };
            if let Err(e) = released {
                // Their leases end them.
                tracing::warn!(error = %e, locks = held.len(), "cannot release state locks");
            }
        });
    }
}
