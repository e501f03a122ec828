//! The containers of this executor (one in standard mode, one per id in
//! multi-action mode) and the /init tickets that keep concurrent /init,
//! /destroy and cleanup from undoing each other.
//!
//! Every /init that starts gets a [`Ticket`] with a generation number no
//! other /init has. Only the /init holding the current ticket of an id may
//! complete it or clean it up, so:
//! - a /destroy during an /init removes the container and wins: the /init's
//!   completion finds its ticket gone and changes nothing;
//! - an /init started after such a /destroy is never overwritten or removed
//!   by the first one finishing or failing;
//! - a failed or abandoned /init removes only its own `Initializing` entry,
//!   never a `Ready` container or another /init's entry.

use ow_common::PreparedAction;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// A ready container: its action, the action's own time limit, its engine.
#[derive(Clone)]
pub struct Ready {
    /// The prepared action.
    pub action: Arc<dyn PreparedAction>,
    /// The action's time limit.
    pub max_duration: Duration,
    /// The engine's name.
    pub engine: &'static str,
    /// The most memory one activation may hold, reserved from the budget.
    pub memory_bytes: u64,
    /// The action's name (/init's `name`), by which other actions call it.
    pub name: Option<String>,
    /// The actions it may embed (its /init env's `OW_EMBED`).
    pub embed: Arc<[String]>,
    /// The namespace of its activations, fixed by the first one (/run's
    /// `namespace`, or the first caller's): only actions of that namespace
    /// may call it.
    pub namespace: Arc<OnceLock<String>>,
}

impl Ready {
    /// Whether an activation of `namespace` may run it (and, the first
    /// time, make it that namespace's).
    pub fn serves(&self, namespace: &str) -> bool {
        self.namespace.get_or_init(|| namespace.to_owned()) == namespace
    }
}

enum Entry {
    /// An /init with this generation is preparing it.
    Initializing(u64),
    Ready(Ready),
}

/// Proof that an /init owns an id while it prepares the action.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    id: String,
    generation: u64,
}

/// Why an /init may not start.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The id is initialised, or being initialised.
    AlreadyInitialized,
}

/// What became of an /init's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// The container is ready.
    Ready,
    /// The container was destroyed meanwhile: the result was dropped.
    Destroyed,
}

/// The containers by id.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    generations: AtomicU64,
}

impl Registry {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Consistent between statements: poisoning is harmless.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start an /init of `id`.
    ///
    /// # Errors
    /// [`Refusal::AlreadyInitialized`] when `id` is ready or initialising.
    pub fn begin_init(&self, id: &str) -> Result<Ticket, Refusal> {
        let mut entries = self.entries();
        if entries.contains_key(id) {
            return Err(Refusal::AlreadyInitialized);
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        entries.insert(id.to_owned(), Entry::Initializing(generation));
        Ok(Ticket {
            id: id.to_owned(),
            generation,
        })
    }

    /// Finish the /init of `ticket` with its action, unless the id was
    /// destroyed (or re-initialised) meanwhile.
    pub fn complete(&self, ticket: &Ticket, ready: Ready) -> Completion {
        let mut entries = self.entries();
        match entries.get_mut(&ticket.id) {
            Some(entry @ Entry::Initializing(_)) if owns(entry, ticket) => {
                *entry = Entry::Ready(ready);
                Completion::Ready
            }
            _ => Completion::Destroyed,
        }
    }

    /// Give up the /init of `ticket` (it failed or was abandoned): the id
    /// may be initialised again. Nothing else is touched.
    pub fn abandon(&self, ticket: &Ticket) {
        let mut entries = self.entries();
        if entries.get(&ticket.id).is_some_and(|e| owns(e, ticket)) {
            entries.remove(&ticket.id);
        }
    }

    /// Remove `id`, ready or initialising; false when there was nothing.
    pub fn destroy(&self, id: &str) -> bool {
        self.entries().remove(id).is_some()
    }

    /// The ready container an activation of `namespace` calls `name`: the
    /// container `name`, else one whose action is named `name`.
    pub fn find(&self, name: &str, namespace: &str) -> Option<Ready> {
        if name.is_empty() {
            return None;
        }
        let entries = self.entries();
        let ready = |e: &Entry| match e {
            Entry::Ready(ready) => Some(ready.clone()),
            Entry::Initializing(_) => None,
        };
        entries
            .get(name)
            .and_then(ready)
            .or_else(|| {
                entries
                    .values()
                    .filter_map(ready)
                    .find(|r| r.name.as_deref() == Some(name))
            })
            .filter(|r| r.serves(namespace))
    }

    /// The ready container `id`, if any.
    pub fn ready(&self, id: &str) -> Option<Ready> {
        match self.entries().get(id) {
            Some(Entry::Ready(ready)) => Some(ready.clone()),
            _ => None,
        }
    }
}

fn owns(entry: &Entry, ticket: &Ticket) -> bool {
    matches!(entry, Entry::Initializing(g) if *g == ticket.generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ow_common::{ActionAbi, Activation, ActivationContext, ActivationOutput, BoxFuture};

    struct Named(&'static str);

    impl PreparedAction for Named {
        fn abi(&self) -> ActionAbi {
            ActionAbi::Sdk
        }
        fn run(self: Arc<Self>, _: Activation) -> BoxFuture<'static, ActivationOutput> {
            let result = serde_json::json!({ "name": self.0 })
                .to_string()
                .into_bytes();
            Box::pin(async move {
                ActivationOutput {
                    result: Ok(result),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    logs_truncated: false,
                }
            })
        }
    }

    fn ready(name: &'static str) -> Ready {
        Ready {
            action: Arc::new(Named(name)),
            max_duration: Duration::from_secs(1),
            engine: "test",
            memory_bytes: 1 << 20,
            name: Some(format!("{name}-action")),
            embed: Arc::new([]),
            namespace: Arc::default(),
        }
    }

    fn name_of(registry: &Registry, id: &str) -> Option<serde_json::Value> {
        let ready = registry.ready(id)?;
        let activation = Activation::new(ActivationContext::default(), Duration::from_secs(1));
        let tokio = tokio::runtime::Builder::new_current_thread().build().ok()?;
        let result = tokio.block_on(ready.action.run(activation)).result.ok()?;
        serde_json::from_slice(&result).ok()
    }

    #[test]
    fn a_second_init_is_refused_while_the_first_runs_and_after_it() {
        let registry = Registry::default();
        let ticket = registry.begin_init("c").unwrap();
        assert_eq!(registry.begin_init("c"), Err(Refusal::AlreadyInitialized));
        assert!(registry.ready("c").is_none());
        assert_eq!(registry.complete(&ticket, ready("a")), Completion::Ready);
        assert_eq!(registry.begin_init("c"), Err(Refusal::AlreadyInitialized));
        assert_eq!(name_of(&registry, "c").unwrap()["name"], "a");
    }

    #[test]
    fn destroy_during_init_wins_over_the_init_completing() {
        let registry = Registry::default();
        let first = registry.begin_init("c").unwrap();
        assert!(registry.destroy("c"));
        assert_eq!(registry.complete(&first, ready("a")), Completion::Destroyed);
        assert!(registry.ready("c").is_none());
        // And the id can be initialised afresh.
        let again = registry.begin_init("c").unwrap();
        assert_eq!(registry.complete(&again, ready("b")), Completion::Ready);
        assert_eq!(name_of(&registry, "c").unwrap()["name"], "b");
    }

    #[test]
    fn an_init_after_a_destroy_is_not_overwritten_by_the_first_completing() {
        let registry = Registry::default();
        let first = registry.begin_init("c").unwrap();
        assert!(registry.destroy("c"));
        let second = registry.begin_init("c").unwrap();
        assert_eq!(
            registry.complete(&first, ready("first")),
            Completion::Destroyed
        );
        assert!(
            registry.ready("c").is_none(),
            "the second /init is still running"
        );
        assert_eq!(
            registry.complete(&second, ready("second")),
            Completion::Ready
        );
        assert_eq!(name_of(&registry, "c").unwrap()["name"], "second");
    }

    #[test]
    fn a_failed_init_removes_only_its_own_entry() {
        let registry = Registry::default();
        // Failing after a destroy and a new /init: the new one stays.
        let first = registry.begin_init("c").unwrap();
        registry.destroy("c");
        let second = registry.begin_init("c").unwrap();
        registry.abandon(&first);
        assert_eq!(registry.begin_init("c"), Err(Refusal::AlreadyInitialized));
        // Failing after the new one completed: the ready container stays.
        assert_eq!(
            registry.complete(&second, ready("second")),
            Completion::Ready
        );
        registry.abandon(&first);
        assert_eq!(name_of(&registry, "c").unwrap()["name"], "second");
        // Its own entry is removed, so the id may be retried.
        let third = registry.begin_init("d").unwrap();
        registry.abandon(&third);
        assert!(registry.begin_init("d").is_ok());
    }

    #[test]
    fn containers_are_found_by_id_or_action_name_within_one_namespace() {
        let registry = Registry::default();
        for id in ["a", "b"] {
            let ticket = registry.begin_init(id).unwrap();
            assert_eq!(registry.complete(&ticket, ready(id)), Completion::Ready);
        }
        assert!(registry.find("", "ns").is_none());
        assert!(registry.find("c", "ns").is_none());
        // The first activation makes it its namespace's.
        assert!(registry.find("a", "ns").is_some());
        assert!(registry.find("a", "other").is_none());
        assert!(registry.find("a-action", "ns").is_some());
        assert!(registry.find("b-action", "other").is_some());
        assert!(registry.find("b", "ns").is_none());
    }
}
