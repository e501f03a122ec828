//! A bounded pool of threads for engines whose calls block (wasmer, WAMR),
//! behind the same async [`crate::PreparedAction::run`] as wasmtime's
//! coroutines: the executor never learns which engine blocks.

use crate::deadline::Deadline;
use crate::error::Error;
use std::time::Duration;

/// Threads that run blocking guest calls, at most `threads` at once.
pub struct Pool {
    handle: tokio::runtime::Handle,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // May be dropped inside an async context, where a blocking shutdown panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Native stack for a thread that runs guest code with these limits: the
/// wasm stack limit (at least 4 MiB) plus 4 MiB for the engine's and
/// WASI's own frames.
pub fn thread_stack_bytes(limits: &crate::Limits) -> usize {
    limits.max_stack_bytes.max(4 << 20) + (4 << 20)
}

impl Pool {
    /// A pool of at most `threads` threads named `name`, each with
    /// `stack_bytes` of native stack. Its runtime's one worker starts now;
    /// the blocking threads start with the first activations (the
    /// executor's start-up warm-up runs one) and stay while they are used,
    /// a minute after the last.
    ///
    /// # Errors
    /// [`Error::Resources`] when the threads cannot be created.
    pub fn new(name: &str, threads: usize, stack_bytes: usize) -> crate::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads.max(1))
            .thread_name(name)
            .thread_stack_size(stack_bytes)
            .thread_keep_alive(Duration::from_secs(60))
            .enable_all()
            .build()
            .map_err(|e| Error::Resources(format!("cannot start the {name} threads: {e}")))?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// The pool's runtime, for host calls made from a blocking guest
    /// (`handle().block_on(host.method(...))`).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Run `job` on one of the pool's threads and wait for it without
    /// blocking the caller. When `deadline` expires first, `stop(true)` is
    /// called, then `stop(false)` every `again` until the job returns: the
    /// engine interrupts its guest there (a guest may miss one interruption,
    /// between two calls or inside a system call).
    ///
    /// # Errors
    /// [`Error::Trap`] when the job panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: &Deadline,
        job: impl FnOnce() -> T + Send + 'static,
        again: Duration,
        stop: impl Fn(bool),
    ) -> crate::Result<T> {
        let mut job = self.handle.spawn_blocking(job);
        let joined = tokio::select! {
            biased;
            joined = &mut job => joined,
            () = deadline.expired() => {
                stop(true);
                let mut ticks = tokio::time::interval(again);
                ticks.reset();
                loop {
                    tokio::select! {
                        biased;
                        joined = &mut job => break joined,
                        _ = ticks.tick() => stop(false),
                    }
                }
            }
        };
        // A panicking engine call (its message went to the panic hook) is
        // a bug in the engine or in us; the activation still gets an answer.
        joined.map_err(|_| Error::Trap("the engine failed unexpectedly".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_job_past_its_deadline_is_told_to_stop_until_it_does() {
        let pool = Pool::new("test-pool", 2, 1 << 20).unwrap();
        let deadline = Deadline::new(Duration::from_millis(10));
        let stopped = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let job_stopped = Arc::clone(&stopped);
        let expire = deadline.clone();
        let (told, seen) = (Arc::clone(&calls), Arc::clone(&calls));
        let run = pool.run(
            &deadline,
            move || {
                // Ignores the first two requests, as a guest between calls would.
                while !job_stopped.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                seen.load(Ordering::SeqCst)
            },
            Duration::from_millis(1),
            move |first| {
                let n = told.fetch_add(1, Ordering::SeqCst);
                assert_eq!(first, n == 0);
                if n == 2 {
                    stopped.store(true, Ordering::SeqCst);
                }
            },
        );
        expire.expire();
        assert!(run.await.unwrap() >= 3);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_panic() {
        let pool = Pool::new("test-pool", 1, 1 << 20).unwrap();
        let deadline = Deadline::new(Duration::from_secs(5));
        let out = pool
            .run(
                &deadline,
                || panic!("boom"),
                Duration::from_millis(5),
                |_| {},
            )
            .await;
        assert!(matches!(out, Err(Error::Trap(_))));
    }
}
