//! The executor's stdout and stderr: the actions' logs and the sentinels.
//!
//! After each activation its captured output is written in one block per
//! stream, each followed by the sentinel line, under one lock, so blocks of
//! concurrent activations never interleave and the invoker can split the
//! streams by activation.

use ow_common::SENTINEL;
use std::io::Write;
use std::sync::Mutex;

/// Serialises writes to the process's stdout and stderr.
#[derive(Default)]
pub struct LogSink {
    lock: Mutex<()>,
}

impl LogSink {
    /// Write one activation's logs and the sentinels, then flush both streams.
    pub fn activation(&self, stdout: &[u8], stderr: &[u8], truncated_notice: Option<&str>) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        // Errors writing our own stdio (a closed pipe) cannot be reported
        // anywhere better; the activation's result is still answered.
        let _ = write_block(&mut out, stdout, None);
        let _ = write_block(&mut err, stderr, truncated_notice);
    }

    /// Write one line of the executor's own to stderr (no sentinel).
    pub fn stderr_line(&self, line: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}").and_then(|()| err.flush());
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
