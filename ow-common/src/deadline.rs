//! The one deadline of an activation.
//!
//! The executor owns it: [`run_to_deadline`] starts the activation, sleeps
//! until its time limit and then calls [`Deadline::expire`]. Engines hold no
//! timer of their own; they honour the expiry, each its own way:
//!
//! * wasmtime runs the guest as a future on the caller's task and stops
//!   polling it (the guest's fiber is unwound) once [`Deadline::expired`]
//!   completes;
//! * engines that block a thread ([`crate::blocking::Pool::run`]) are told
//!   at the expiry and again every few milliseconds until the guest is gone,
//!   and interrupt it (wasmer's interrupter, WAMR's `terminate`).

use crate::error::Error;
use crate::runtime::{Activation, ActivationOutput, PreparedAction};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// When one activation must stop; cheap to clone, shared by the executor
/// (which expires it) and the engine (which honours it).
#[derive(Debug, Clone)]
pub struct Deadline {
    token: CancellationToken,
    limit: Duration,
    /// When the limit started to run.
    started: std::time::Instant,
}

impl Deadline {
    /// A deadline `limit` from now, which nothing has expired yet. Only
    /// the owner's timer ([`run_to_deadline`]) expires it.
    pub fn new(limit: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            limit,
            started: std::time::Instant::now(),
        }
    }

    /// The time left until the limit (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// The activation's time limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Stop the activation: every engine ends it promptly.
    pub fn expire(&self) {
        self.token.cancel();
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the deadline passes.
    pub async fn expired(&self) {
        self.token.cancelled().await;
    }

    /// What an activation stopped at this deadline reports.
    pub fn error(&self) -> Error {
        Error::Timeout(self.limit.as_millis().min(u128::from(u64::MAX)) as u64)
    }
}

/// Run `activation` of `action` under its deadline: the deadline expires
/// `limit` after the start, and the engine then has `grace` to return.
///
/// Returns `None` when the engine did not return within the grace (a
/// backstop: every engine stops its guest at the deadline); the activation
/// is then dropped and whatever it still holds comes back when its engine
/// lets go of it.
pub async fn run_to_deadline(
    action: Arc<dyn PreparedAction>,
    activation: Activation,
    grace: Duration,
) -> Option<ActivationOutput> {
    let deadline = activation.deadline.clone();
    let run = action.run(activation);
    tokio::pin!(run);
    // A limit past what the clock holds never fires.
    let Some(at) = tokio::time::Instant::now().checked_add(deadline.limit()) else {
        return Some(run.await);
    };
    tokio::select! {
        biased;
        output = &mut run => return Some(output),
        () = tokio::time::sleep_until(at) => deadline.expire(),
    }
    tokio::time::timeout(grace, run).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expiry_is_seen_by_every_clone() {
        let deadline = Deadline::new(Duration::from_millis(250));
        let seen = deadline.clone();
        assert!(!seen.is_expired());
        let waiter = tokio::spawn(async move { seen.expired().await });
        deadline.expire();
        waiter.await.unwrap();
        assert!(deadline.is_expired());
        assert_eq!(deadline.error(), Error::Timeout(250));
    }
}
