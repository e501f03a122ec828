//! The engines compiled into this binary, all created at start-up.
//!
//! Every engine is created (its pools reserved, its threads started) before
//! the port is bound, so the first /init of a process pays for none of it.
//! The default engine (`--engine`) must start; another that cannot is
//! reported and tried again when an action asks for it.

use crate::cli::EngineKind;
use ow_common::{Limits, WasmRuntime};
use std::sync::{Arc, OnceLock};

/// Engine settings beyond the limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineOptions {
    /// wasmer's compiler.
    #[cfg(feature = "wasmer")]
    pub wasmer_compiler: Option<crate::cli::WasmerCompiler>,
}

/// One lazily created runtime per engine kind.
pub struct Engines {
    default: EngineKind,
    limits: Limits,
    options: EngineOptions,
    slots: Vec<(EngineKind, OnceLock<Arc<dyn WasmRuntime>>)>,
}

/// Why an engine could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The name matches no engine of this binary.
    #[error("unknown engine `{0}`; this executor has: {1}")]
    Unknown(String, String),
    /// The engine refused to start.
    #[error("the {0} engine cannot start: {1}")]
    Start(&'static str, ow_common::Error),
}

impl Engines {
    /// Create the registry and every engine.
    ///
    /// # Errors
    /// When the default engine cannot start.
    pub fn new(
        default: EngineKind,
        limits: Limits,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        let engines = Self {
            default,
            limits,
            options,
            slots: EngineKind::ALL
                .iter()
                .map(|&k| (k, OnceLock::new()))
                .collect(),
        };
        engines.get(default)?;
        for &kind in EngineKind::ALL {
            if let Err(e) = engines.get(kind) {
                tracing::warn!("{e}; it is tried again when an action asks for it");
            }
        }
        Ok(engines)
    }

    /// The operator's limits, the most any action gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The engine actions run on unless they ask for another.
    pub fn default_kind(&self) -> EngineKind {
        self.default
    }

    /// The runtime of `kind`, created if needed.
    ///
    /// # Errors
    /// When the engine cannot start.
    pub fn get(&self, kind: EngineKind) -> Result<Arc<dyn WasmRuntime>, EngineError> {
        let (_, slot) = self
            .slots
            .iter()
            .find(|(k, _)| *k == kind)
            .ok_or_else(|| EngineError::Unknown(kind.name().into(), EngineKind::names()))?;
        if let Some(rt) = slot.get() {
            return Ok(Arc::clone(rt));
        }
        let rt = create(kind, self.limits.clone(), self.options)
            .map_err(|e| EngineError::Start(kind.name(), e))?;
        // Two threads may race to create it; the first one wins, the other's is dropped.
        Ok(Arc::clone(slot.get_or_init(|| rt)))
    }

    /// The engines created so far, with their kinds.
    pub fn created(&self) -> Vec<(EngineKind, Arc<dyn WasmRuntime>)> {
        self.slots
            .iter()
            .filter_map(|(kind, slot)| slot.get().map(|rt| (*kind, Arc::clone(rt))))
            .collect()
    }

    /// The runtime named `name` (as in `--engine`), created if needed.
    ///
    /// # Errors
    /// When no engine has that name, or it cannot start.
    pub fn by_name(&self, name: &str) -> Result<Arc<dyn WasmRuntime>, EngineError> {
        let kind = EngineKind::from_name(name)
            .ok_or_else(|| EngineError::Unknown(name.to_owned(), EngineKind::names()))?;
        self.get(kind)
    }
}

fn create(
    kind: EngineKind,
    limits: Limits,
    #[allow(unused_variables)] options: EngineOptions,
) -> ow_common::Result<Arc<dyn WasmRuntime>> {
    Ok(match kind {
        #[cfg(feature = "wasmtime")]
        EngineKind::Wasmtime => Arc::new(ow_wasmtime::WasmtimeRuntime::new(limits)?),
        #[cfg(feature = "wasmer")]
        EngineKind::Wasmer => {
            let compiler = match options.wasmer_compiler {
                Some(crate::cli::WasmerCompiler::Singlepass) => ow_wasmer::Compiler::Singlepass,
                Some(crate::cli::WasmerCompiler::Cranelift) | None => {
                    ow_wasmer::Compiler::Cranelift
                }
            };
            Arc::new(ow_wasmer::WasmerRuntime::with_compiler(limits, compiler)?)
        }
        #[cfg(feature = "wamr")]
        EngineKind::Wamr => Arc::new(ow_wamr::WamrRuntime::new(limits)?),
    })
}
