//! The log buffer every engine captures an activation's stdout and stderr in.

/// Keeps the first `limit` bytes written and drops the rest, remembering
/// that it did: an action that logs too much keeps running, and its logs are
/// cut with a notice, as OpenWhisk does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CappedLog {
    data: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl CappedLog {
    /// An empty buffer that keeps at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Append what fits of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.data.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The bytes kept and whether any were dropped; the buffer is left empty.
    pub fn take(&mut self) -> (Vec<u8>, bool) {
        (std::mem::take(&mut self.data), self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_limit_and_flags_the_rest() {
        let mut log = CappedLog::new(8);
        log.push(b"hello ");
        log.push(b"world");
        assert_eq!(log.take(), (b"hello wo".to_vec(), true));
        let mut log = CappedLog::new(8);
        log.push(b"12345678");
        assert_eq!(log.take(), (b"12345678".to_vec(), false));
    }
}
