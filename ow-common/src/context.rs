//! The facts of one activation.

use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything an engine needs to know about one `/run`.
///
/// Built by the executor from the request (see
/// [`crate::payload::RunRequest::into_context`]); engines read it and never
/// see the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationContext {
    /// The action's parameters (`value` of the request) as compact UTF-8
    /// JSON text on one line, as the ABI hands them to the module: forwarded,
    /// never parsed into a tree.
    pub params: Bytes,
    /// `namespace` of the request.
    pub namespace: Option<String>,
    /// Fully qualified action name, e.g. `/guest/pkg/act`.
    pub action_name: Option<String>,
    /// `action_version` of the request.
    pub action_version: Option<String>,
    /// `activation_id` of the request (32 hex digits in OpenWhisk).
    pub activation_id: Option<String>,
    /// `transaction_id` of the request.
    pub transaction_id: Option<String>,
    /// `api_key` of the request.
    pub api_key: Option<String>,
    /// The deadline the invoker gave, as epoch milliseconds, if it parsed.
    pub deadline_ms: Option<u64>,
    /// `__OW_API_HOST` from the executor's own process environment.
    pub api_host: Option<String>,
    /// The `__OW_*` variables of this activation: one for every top-level
    /// string field of the request except `value`, key upper-cased.
    pub ow_env: BTreeMap<String, String>,
}

impl Default for ActivationContext {
    /// No metadata, and `{}` for params (what a /run without `value` gets).
    fn default() -> Self {
        Self {
            params: Bytes::from_static(b"{}"),
            namespace: None,
            action_name: None,
            action_version: None,
            activation_id: None,
            transaction_id: None,
            api_key: None,
            deadline_ms: None,
            api_host: None,
            ow_env: BTreeMap::new(),
        }
    }
}

impl ActivationContext {
    /// A context with these params and nothing else, handy in tests and
    /// benchmarks.
    pub fn with_params(params: Value) -> Self {
        Self {
            params: Bytes::from(params.to_string()),
            ..Self::default()
        }
    }

    /// The activation's WASI environment: the init-time `env` first, then the
    /// activation's `__OW_*` variables over it, then `__OW_API_HOST`.
    ///
    /// Variables are sorted by name, so the environment is deterministic.
    pub fn environment(&self, init_env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut env = init_env.clone();
        for (k, v) in &self.ow_env {
            env.insert(k.clone(), v.clone());
        }
        if let Some(host) = &self.api_host {
            env.insert("__OW_API_HOST".to_owned(), host.clone());
        }
        env.into_iter().collect()
    }

    /// How long the activation may run: the time left until the deadline,
    /// capped by `max`.
    ///
    /// A deadline that is missing, already past or unparsable does not
    /// shorten the limit: the invoker enforces its own deadline, and a clock
    /// skew between invoker and executor must not kill every activation.
    pub fn time_limit(&self, max: Duration) -> Duration {
        let Some(deadline) = self.deadline_ms else {
            return max;
        };
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline);
        match deadline.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => left.min(max),
            _ => max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_env_overrides_init_env_and_api_host_comes_last() {
        let init: BTreeMap<_, _> = [
            ("SOME_VAR".to_owned(), "xyz".to_owned()),
            ("__OW_ACTIVATION_ID".to_owned(), "cold".to_owned()),
        ]
        .into();
        let ctx = ActivationContext {
            ow_env: [("__OW_ACTIVATION_ID".to_owned(), "warm".to_owned())].into(),
            api_host: Some("https://ow".to_owned()),
            ..Default::default()
        };
        let env = ctx.environment(&init);
        assert_eq!(
            env,
            vec![
                ("SOME_VAR".to_owned(), "xyz".to_owned()),
                ("__OW_ACTIVATION_ID".to_owned(), "warm".to_owned()),
                ("__OW_API_HOST".to_owned(), "https://ow".to_owned()),
            ]
        );
    }

    #[test]
    fn time_limit_uses_a_future_deadline_and_ignores_a_past_one() {
        let max = Duration::from_secs(60);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let soon = ActivationContext {
            deadline_ms: Some(now_ms + 5_000),
            ..Default::default()
        };
        let limit = soon.time_limit(max);
        assert!(
            limit <= Duration::from_secs(5) && limit > Duration::from_secs(3),
            "{limit:?}"
        );

        let past = ActivationContext {
            deadline_ms: Some(123),
            ..Default::default()
        };
        assert_eq!(past.time_limit(max), max);

        let far = ActivationContext {
            deadline_ms: Some(now_ms + 3_600_000),
            ..Default::default()
        };
        assert_eq!(far.time_limit(max), max);
    }
}
