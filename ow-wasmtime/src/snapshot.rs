//! Proto-function snapshots (docs/abi.md): Wizer's technique through
//! `wasmtime-wizer`, instantiated with this engine and the activations'
//! own linker (WASI with the init-time environment; the `ow_host_v1`
//! functions answer `-3`, there is no activation yet).

use crate::{ActivationState, WasmtimeRuntime, logpipe::LogPipe};
use ow_common::abi::{EXPORT_INITIALIZE, EXPORT_ZYGOTE};
use ow_common::{Error, NoHost, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Instance, Module, Store, Trap, UpdateDeadline, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

/// The instance a snapshot is read from.
struct Snapshotted<'a> {
    store: &'a mut Store<ActivationState>,
    instance: Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: wasmparser::ValType) -> SnapshotVal {
        // Wizer asks only for the globals its instrumentation exported, of
        // the value types it lists.
        match self
            .instance
            .get_global(&mut *self.store, name)
            .map(|g| g.get(&mut *self.store))
        {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            _ => SnapshotVal::I32(0),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => contents(&[]),
        }
    }
}

impl WasmtimeRuntime {
    /// See [`ow_common::WasmRuntime::snapshot`].
    pub(crate) async fn make_snapshot(
        &self,
        wasm: &[u8],
        env: &[(String, String)],
        time_limit: Duration,
    ) -> Result<Vec<u8>> {
        let mut wizer = Wizer::new();
        wizer.init_func(EXPORT_ZYGOTE);
        let (cx, instrumented) = wizer
            .instrument(wasm)
            .map_err(|e| Error::InvalidModule(format!("cannot snapshot the module: {e:#}")))?;
        let module = Module::new(&self.engine, &instrumented)
            .map_err(|e| Error::InvalidModule(format!("{e:#}")))?;
        // The zygote's output goes nowhere: it belongs to no activation.
        let sink = LogPipe::new(0);
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdout(sink.clone())
            .stderr(sink)
            .args(&["zygote"])
            .envs(env);
        let mut store = ActivationState::store(
            &self.engine,
            wasi.build_p1(),
            &self.limits,
            Arc::new(NoHost),
        );
        // The zygote runs to the action's time limit, checked at every
        // epoch tick (the ticker runs while it is busy).
        let _busy = self.ticker.busy();
        let until = Instant::now().checked_add(time_limit);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match until {
            Some(until) if Instant::now() >= until => Err(Trap::Interrupt.into()),
            _ => Ok(UpdateDeadline::Continue(1)),
        });
        let zygote_failed = |e: wasmtime::Error| {
            let detail = match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => format!(
                    "it ran past the time limit of {} ms",
                    time_limit.as_millis()
                ),
                // The trap, not the whole backtrace.
                Some(trap) => trap.to_string(),
                None => e.root_cause().to_string(),
            };
            Error::Trap(format!("the zygote ({EXPORT_ZYGOTE}) failed: {detail}"))
        };
        // The epoch callback stops a computing zygote; this, one waiting in
        // a host call (a WASI sleep).
        let run = async {
            let instance = self.linker.instantiate_async(&mut store, &module).await?;
            for name in [EXPORT_INITIALIZE, EXPORT_ZYGOTE] {
                if let Ok(func) = instance.get_typed_func::<(), ()>(&mut store, name) {
                    func.call_async(&mut store, ()).await?;
                }
            }
            wasmtime::Result::Ok(instance)
        };
        let instance = match tokio::time::timeout(time_limit, run).await {
            Ok(done) => done.map_err(zygote_failed)?,
            Err(_) => return Err(zygote_failed(Trap::Interrupt.into())),
        };
        let mut state = Snapshotted {
            store: &mut store,
            instance,
        };
        wizer
            .snapshot(&cx, &mut state)
            .await
            .map_err(|e| Error::InvalidModule(format!("cannot snapshot the module: {e:#}")))
    }
}
