//! A WASI stdout/stderr that captures an activation's output in memory, up to
//! a limit, and drops the rest instead of failing the guest.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest once it is full; an
//! action that logs too much should keep running with its logs cut, as
//! OpenWhisk does, so we keep our own.

use bytes::Bytes;
use ow_common::log::CappedLog;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Cloneable handle; all clones share one buffer.
#[derive(Clone)]
pub(crate) struct LogPipe {
    inner: Arc<Mutex<CappedLog>>,
}

impl LogPipe {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(CappedLog::new(limit))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CappedLog> {
        // A poisoned buffer still holds valid bytes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        self.lock().push(bytes);
    }

    /// The captured bytes and whether any were dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        self.lock().take()
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; what does not fit is dropped in `write`.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
