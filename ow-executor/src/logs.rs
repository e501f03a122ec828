//! The executor's stdout and stderr: the actions' logs and the sentinels.
//!
//! After each activation its captured output is written in one block per
//! stream, each followed by the sentinel line, and each block with one
//! `write` when it can be: blocks of concurrent activations never
//! interleave and the invoker can split the streams by activation.
//!
//! Blocks up to `PIPE_BUF` (4 KiB) are written at once, which a pipe keeps
//! whole, by as many activations in parallel as like (a shared lock, no
//! waiting); a larger block, which a pipe may split, takes the lock
//! exclusively. Writes go to duplicates of the process's descriptors, past
//! std's `Stdout` lock, so that the HTTP workers never queue behind each
//! other's system calls.

use ow_common::SENTINEL;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::RwLock;

/// What a pipe writes whole (POSIX `PIPE_BUF` on Linux).
const ATOMIC_WRITE: usize = 4096;

/// Writes the actions' logs to the process's stdout and stderr.
pub struct LogSink {
    /// Shared by writes of whole small blocks, exclusive for large ones.
    lock: RwLock<()>,
    /// The process's stdout and stderr (duplicated descriptors); `None`
    /// when closed.
    out: Option<File>,
    err: Option<File>,
}

impl Default for LogSink {
    fn default() -> Self {
        let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().ok().map(File::from);
        Self {
            lock: RwLock::new(()),
            out: dup(std::io::stdout().as_fd()),
            err: dup(std::io::stderr().as_fd()),
        }
    }
}

impl LogSink {
    /// Write `block` whole to `file`.
    fn write(&self, file: Option<&File>, block: &[u8]) {
        let Some(mut file) = file else {
            return;
        };
        // Errors writing our own stdio (a closed pipe) cannot be reported
        // anywhere better; the activation's result is still answered.
        if block.len() <= ATOMIC_WRITE {
            let _shared = self.lock.read().unwrap_or_else(|e| e.into_inner());
            let _ = file.write_all(block);
        } else {
            let _exclusive = self.lock.write().unwrap_or_else(|e| e.into_inner());
            let _ = file.write_all(block);
        }
    }

    /// Write one activation's logs and the sentinels, then flush both streams.
    pub fn activation(&self, stdout: &[u8], stderr: &[u8], truncated_notice: Option<&str>) {
        // Each block is put together first and written with one system call.
        let (mut out_block, mut err_block) = (Vec::new(), Vec::new());
        let _ = write_block(&mut out_block, stdout, None);
        let _ = write_block(&mut err_block, stderr, truncated_notice);
        self.write(self.out.as_ref(), &out_block);
        self.write(self.err.as_ref(), &err_block);
    }

    /// Write one line of the executor's own to stderr (no sentinel).
    pub fn stderr_line(&self, line: &str) {
        self.write(self.err.as_ref(), format!("{line}\n").as_bytes());
    }
}

/// Write the action's output, without lines that contain the sentinel, end
/// it on a fresh line, then the optional notice and the sentinel.
pub fn write_block(w: &mut impl Write, data: &[u8], notice: Option<&str>) -> std::io::Result<()> {
    if contains(data, SENTINEL.as_bytes()) {
        for line in data.split_inclusive(|&b| b == b'\n') {
            if !contains(line, SENTINEL.as_bytes()) {
                w.write_all(line)?;
            }
        }
        if data.last().is_some_and(|&b| b != b'\n')
            && !contains(last_line(data), SENTINEL.as_bytes())
        {
            w.write_all(b"\n")?;
        }
    } else {
        w.write_all(data)?;
        if data.last().is_some_and(|&b| b != b'\n') {
            w.write_all(b"\n")?;
        }
    }
    if let Some(notice) = notice {
        writeln!(w, "{notice}")?;
    }
    writeln!(w, "{SENTINEL}")?;
    w.flush()
}

fn last_line(data: &[u8]) -> &[u8] {
    data.rsplit(|&b| b == b'\n').next().unwrap_or(data)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &[u8], notice: Option<&str>) -> String {
        let mut out = Vec::new();
        write_block(&mut out, data, notice).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn output_ends_on_a_fresh_line_before_the_sentinel() {
        assert_eq!(block(b"", None), format!("{SENTINEL}\n"));
        assert_eq!(block(b"a\nb", None), format!("a\nb\n{SENTINEL}\n"));
        assert_eq!(block(b"a\n", Some("cut")), format!("a\ncut\n{SENTINEL}\n"));
    }

    #[test]
    fn lines_containing_the_sentinel_are_dropped() {
        let data = format!("keep\nfake {SENTINEL} line\nalso kept\n{SENTINEL}");
        assert_eq!(
            block(data.as_bytes(), None),
            format!("keep\nalso kept\n{SENTINEL}\n")
        );
    }
}
