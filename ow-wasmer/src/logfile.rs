//! In-memory stdout/stderr for wasix: keeps up to a limit, drops the rest,
//! never fails the guest (the twin of ow-wasmtime's `LogPipe`).

use ow_common::log::CappedLog;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmer_wasix::VirtualFile;
use wasmer_wasix::virtual_fs::{self, AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Cloneable handle; clones share one buffer.
#[derive(Debug, Clone)]
pub(crate) struct LogFile(Arc<Mutex<CappedLog>>);

impl LogFile {
    pub(crate) fn new(limit: usize) -> Self {
        Self(Arc::new(Mutex::new(CappedLog::new(limit))))
    }

    fn lock(&self) -> MutexGuard<'_, CappedLog> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The captured bytes and whether any were dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        self.lock().take()
    }
}

impl AsyncWrite for LogFile {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.lock().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LogFile {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Write-only: reading gives end of file.
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for LogFile {
    fn start_seek(self: Pin<&mut Self>, _position: SeekFrom) -> std::io::Result<()> {
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Poll::Ready(Ok(0))
    }
}

impl VirtualFile for LogFile {
    fn last_accessed(&self) -> u64 {
        0
    }

    fn last_modified(&self) -> u64 {
        0
    }

    fn created_time(&self) -> u64 {
        0
    }

    fn size(&self) -> u64 {
        0
    }

    fn set_len(&mut self, _new_size: u64) -> virtual_fs::Result<()> {
        Ok(())
    }

    fn unlink(&mut self) -> virtual_fs::Result<()> {
        Ok(())
    }

    fn poll_read_ready(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(0))
    }

    fn poll_write_ready(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(64 * 1024))
    }
}
