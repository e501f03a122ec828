//! Prometheus metrics, served at `GET /metrics` (OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an /init.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InitLabels {
    /// The engine (`unknown` when /init failed before choosing one).
    pub engine: &'static str,
    /// `precompiled`, `cached`, `compiled`, `shared` or `failed`.
    pub path: &'static str,
}

/// Labels of a /run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The engine.
    pub engine: &'static str,
    /// `success`, `application_error`, `timeout`, `action_error`,
    /// `rejected` (no slot), `internal` or `bad_request`.
    pub outcome: &'static str,
}

/// Labels of a call of an action by an action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The data path: `embedded`, `local` or `networked`.
    pub path: &'static str,
}

/// Every metric of the executor.
pub struct Metrics {
    registry: Registry,
    /// /init requests by engine and load path (`path="cached"`: compile
    /// cache hits).
    pub inits: Family<InitLabels, Counter>,
    /// Server-side /init latency.
    pub init_seconds: Family<InitLabels, Histogram>,
    /// Activations by engine and outcome.
    pub activations: Family<RunLabels, Counter>,
    /// Server-side /run latency, from the request to the answer.
    pub run_seconds: Family<RunLabels, Histogram>,
    /// Activations being run now.
    pub in_flight: Gauge,
    /// 1 when native code from unsigned zips is loaded.
    pub trust_unsigned: Gauge,
    /// MiB of the memory budget reserved now (0 without a budget).
    pub budget_used_mib: Gauge,
    /// Calls of actions by actions, by data path.
    pub calls: Family<CallLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        // 10 us .. ~336 s (beyond the longest activation), doubling.
        fn latency() -> Histogram {
            Histogram::new(exponential_buckets(1e-5, 2.0, 26))
        }
        let mut registry = Registry::with_prefix("ow");
        let inits = Family::<InitLabels, Counter>::default();
        let init_seconds =
            Family::<InitLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let activations = Family::<RunLabels, Counter>::default();
        let run_seconds =
            Family::<RunLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let in_flight = Gauge::default();
        let trust_unsigned = Gauge::default();
        let budget_used_mib = Gauge::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls of actions by actions (ow_host_v1 `call`), by data path",
            calls.clone(),
        );
        registry.register(
            "memory_budget_used_mib",
            "MiB of the memory budget reserved by running activations and /inits",
            budget_used_mib.clone(),
        );
        registry.register(
            "trust_unsigned_artifacts",
            "1 when --trust-unsigned-artifacts is on: uploads' native code is loaded unsigned",
            trust_unsigned.clone(),
        );
        registry.register(
            "inits",
            "/init requests by engine and load path",
            inits.clone(),
        );
        registry.register(
            "init_duration_seconds",
            "Server-side /init latency",
            init_seconds.clone(),
        );
        registry.register(
            "activations",
            "Activations by engine and outcome",
            activations.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Server-side /run latency",
            run_seconds.clone(),
        );
        registry.register(
            "activations_in_flight",
            "Activations running now",
            in_flight.clone(),
        );
        Self {
            registry,
            inits,
            init_seconds,
            activations,
            run_seconds,
            in_flight,
            trust_unsigned,
            budget_used_mib,
            calls,
        }
    }
}

impl Metrics {
    /// Count an /init.
    pub fn init(&self, labels: InitLabels, seconds: f64) {
        self.inits.get_or_create(&labels).inc();
        self.init_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Count a /run.
    pub fn run(&self, labels: RunLabels, seconds: f64) {
        self.activations.get_or_create(&labels).inc();
        self.run_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Count a call of an action by an action over `path`.
    pub fn call(&self, path: &'static str) {
        self.calls.get_or_create(&CallLabels { path }).inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies_are_exposed_by_label() {
        let m = Metrics::default();
        m.init(
            InitLabels {
                engine: "wasmtime",
                path: "cached",
            },
            0.001,
        );
        m.run(
            RunLabels {
                engine: "wamr",
                outcome: "timeout",
            },
            0.5,
        );
        m.in_flight.inc();
        let text = m.encode();
        assert!(
            text.contains(r#"ow_inits_total{engine="wasmtime",path="cached"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ow_activations_total{engine="wamr",outcome="timeout"} 1"#),
            "{text}"
        );
        assert!(text.contains("ow_activations_in_flight 1"), "{text}");
        assert!(text.contains("ow_run_duration_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
