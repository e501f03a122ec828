//! The process's memory budget: every activation reserves the most memory it
//! may use (its linear-memory cap plus its two log buffers) and every /init a
//! multiple of its body, before it starts; what does not fit waits up to the
//! queue wait, then gets 429. The sum of well-behaved actions then stays
//! under the container's memory limit instead of getting the executor
//! OOM-killed.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const MIB: u64 = 1 << 20;

/// What an /init reserves per byte of its body: the body, its decoded
/// code, the unzipped module and the compiler's working set.
pub const INIT_BYTES_PER_BODY_BYTE: u64 = 8;

/// Memory kept out of the default budget for the executor itself (its
/// code, HTTP buffers, compiled modules), at most a quarter of the limit.
const RESERVED_FOR_THE_EXECUTOR: u64 = 64 * MIB;

/// The budget, in MiB permits.
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_mib: u32,
}

/// Why a reservation failed: the budget stayed in use for the whole wait.
#[derive(Debug, PartialEq, Eq)]
pub struct OverBudget {
    /// What was asked for, in MiB (at most the budget).
    pub needed_mib: u32,
    /// The whole budget, in MiB.
    pub budget_mib: u32,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        let total_mib = u32::try_from(bytes / MIB).unwrap_or(u32::MAX).max(1);
        Self {
            permits: Arc::new(Semaphore::new(total_mib as usize)),
            total_mib,
        }
    }

    /// MiB in use now.
    pub fn used_mib(&self) -> u32 {
        self.total_mib - self.permits.available_permits() as u32
    }

    /// Reserve `bytes` (rounded up to MiB; a reservation larger than the
    /// whole budget takes all of it, so it runs alone rather than never),
    /// waiting up to `wait` for them to be free.
    ///
    /// # Errors
    /// [`OverBudget`] when they did not become free in time.
    pub async fn reserve(
        &self,
        bytes: u64,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, OverBudget> {
        let needed_mib = u32::try_from(bytes.div_ceil(MIB))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_mib);
        let over = OverBudget {
            needed_mib,
            budget_mib: self.total_mib,
        };
        match tokio::time::timeout(
            wait,
            Arc::clone(&self.permits).acquire_many_owned(needed_mib),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(over),
        }
    }
}

/// The default budget: the memory limit of this process's cgroup, less
/// what the executor needs itself; none when there is no limit.
pub fn default_budget_bytes() -> Option<u64> {
    let limit = cgroup_memory_limit()?;
    let reserve = RESERVED_FOR_THE_EXECUTOR.min(limit / 4);
    Some(limit - reserve)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), if it has one.
pub fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_from(&cgroups, |path| std::fs::read_to_string(path).ok())
}

/// [`cgroup_memory_limit`] over `/proc/self/cgroup`'s text and a reader of
/// files (so that it can be tested).
fn limit_from(cgroups: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    // Values this large mean "no limit" (cgroup v1 writes about 2^63).
    const UNLIMITED: u64 = 1 << 60;
    let parse = |text: String| -> Option<u64> {
        let text = text.trim();
        if text == "max" {
            return None;
        }
        text.parse::<u64>().ok().filter(|&v| v < UNLIMITED)
    };
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        // Inside a container the cgroup namespace shows our own cgroup as
        // the mount's root; outside, it is the path below the mount.
        let candidates: &[String] = if controllers.is_empty() {
            &[
                format!("/sys/fs/cgroup{path}/memory.max"),
                "/sys/fs/cgroup/memory.max".to_owned(),
            ]
        } else if controllers.split(',').any(|c| c == "memory") {
            &[
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
            ]
        } else {
            continue;
        };
        for file in candidates {
            if let Some(text) = read(file) {
                return parse(text);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_limits_are_read_from_v2_and_v1_and_unlimited_is_none() {
        let v2 = "0::/user.slice/app\n";
        let read = |path: &str| match path {
            "/sys/fs/cgroup/user.slice/app/memory.max" => Some("268435456\n".to_owned()),
            _ => None,
        };
        assert_eq!(limit_from(v2, read), Some(256 * MIB));
        let v2_max = |path: &str| (path == "/sys/fs/cgroup/memory.max").then(|| "max\n".to_owned());
        assert_eq!(limit_from("0::/\n", v2_max), None);
        let v1 = "4:memory:/docker/abc\n1:cpu:/docker/abc\n";
        // In a container the own cgroup is the mount's root.
        let read_v1 = |path: &str| {
            (path == "/sys/fs/cgroup/memory/memory.limit_in_bytes").then(|| "536870912".to_owned())
        };
        assert_eq!(limit_from(v1, read_v1), Some(512 * MIB));
        let unlimited = |_: &str| Some("9223372036854771712".to_owned());
        assert_eq!(limit_from(v1, unlimited), None);
        assert_eq!(limit_from("garbage", |_| None), None);
    }

    #[tokio::test]
    async fn reservations_wait_for_room_then_are_refused() {
        let budget = MemoryBudget::new(100 * MIB);
        let a = budget.reserve(40 * MIB, Duration::ZERO).await.unwrap();
        let _b = budget.reserve(40 * MIB + 1, Duration::ZERO).await.unwrap();
        assert_eq!(budget.used_mib(), 81);
        let refused = budget.reserve(40 * MIB, Duration::from_millis(10)).await;
        assert_eq!(
            refused.unwrap_err(),
            OverBudget {
                needed_mib: 40,
                budget_mib: 100
            }
        );
        drop(a);
        assert!(budget.reserve(40 * MIB, Duration::ZERO).await.is_ok());
        // Larger than the whole budget: runs alone, not never.
        let budget = MemoryBudget::new(64 * MIB);
        let whole = budget.reserve(1 << 40, Duration::ZERO).await.unwrap();
        assert_eq!(whole.num_permits(), 64);
    }
}
