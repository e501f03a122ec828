//! A WASI stdout/stderr that captures an activation's output in memory, up to
//! a limit, and drops the rest instead of failing the guest.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest once it is full; an
//! action that logs too much should keep running with its logs cut, as
//! OpenWhisk does, so we keep our own.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Cloneable handle; all clones share one buffer.
#[derive(Clone)]
pub(crate) struct LogPipe {
    inner: Arc<Mutex<LogBuffer>>,
}

#[derive(Default)]
struct LogBuffer {
    data: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl LogPipe {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogBuffer {
                limit,
                ..LogBuffer::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        // A poisoned buffer still holds valid bytes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.lock();
        let room = buf.limit.saturating_sub(buf.data.len());
        if bytes.len() > room {
            buf.truncated = true;
        }
        buf.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The captured bytes and whether any were dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut buf = self.lock();
        (std::mem::take(&mut buf.data), buf.truncated)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_limit_and_flags_the_rest() {
        let pipe = LogPipe::new(8);
        pipe.push(b"hello ");
        pipe.push(b"world");
        assert_eq!(pipe.take(), (b"hello wo".to_vec(), true));
        let pipe = LogPipe::new(8);
        pipe.clone().push(b"12345678");
        assert_eq!(pipe.take(), (b"12345678".to_vec(), false));
    }
}
