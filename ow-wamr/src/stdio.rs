//! Per-activation stdio for WAMR, which writes WASI output straight to file
//! descriptors: stdin is a memfd holding the params; stdout and stderr are
//! pipes drained by a helper thread that keeps up to the log limit and drops
//! the rest (the guest never blocks on a full pipe). The helper's poll
//! timeout is also the activation's deadline: it then terminates the live
//! instance through [`Watch`] and interrupts the activation's thread, which
//! may be asleep in a system call (see [`crate::ffi::wake`]).

use ow_common::log::CappedLog;
use ow_common::{Error, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The live instance of an activation, for the deadline to terminate.
pub(crate) struct Watch {
    /// The instance's address while it can be terminated; cleared (under
    /// the lock) before it is deinstantiated. Also held while the
    /// instance's exception text is read, which `terminate` writes.
    pub(crate) live: Mutex<Option<usize>>,
    /// Set once the deadline passed.
    pub(crate) timed_out: AtomicBool,
    /// The thread that runs the activation.
    thread: libc::pthread_t,
}

/// How often the helper interrupts the activation's thread again after the
/// deadline, until the instance is gone.
const WAKE_AGAIN: Duration = Duration::from_millis(50);

type Drained = ([CappedLog; 2], bool);

pub(crate) struct ActivationIo {
    stdin: File,
    out_w: OwnedFd,
    err_w: OwnedFd,
    watch: Arc<Watch>,
    helper: JoinHandle<Drained>,
}

fn resources(what: &str) -> Error {
    Error::Resources(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(resources("cannot create a pipe"));
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn memfd_with(data: &[u8]) -> Result<File> {
    // SAFETY: a valid NUL-terminated name and flags.
    let fd = unsafe {
        libc::memfd_create(
            c"ow-stdin".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(resources("cannot create the stdin memfd"));
    }
    // SAFETY: memfd_create returned a fresh descriptor we own.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
        .map_err(|e| Error::Resources(format!("cannot fill stdin: {e}")))?;
    // WAMR gives a regular file descriptor full rights: without seals the
    // guest could write to its stdin or `fd_allocate` it to any size, in
    // host memory outside its memory cap.
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(resources("cannot seal the stdin memfd"));
    }
    Ok(file)
}

impl ActivationIo {
    /// Create the descriptors and start the helper with this deadline.
    pub(crate) fn start(stdin: &[u8], log_limit: usize, limit: Duration) -> Result<Self> {
        let stdin = memfd_with(stdin)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let watch = Arc::new(Watch {
            live: Mutex::new(None),
            timed_out: AtomicBool::new(false),
            // SAFETY: no preconditions; this is the activation's thread.
            thread: unsafe { libc::pthread_self() },
        });
        // None: a limit past what the clock holds, which never fires.
        let deadline = Instant::now().checked_add(limit);
        let helper_watch = Arc::clone(&watch);
        let helper = std::thread::Builder::new()
            .name("wamr-stdio".into())
            .spawn(move || drain_and_watch([out_r, err_r], log_limit, deadline, &helper_watch))
            .map_err(|e| Error::Resources(format!("cannot start the stdio thread: {e}")))?;
        Ok(Self {
            stdin,
            out_w,
            err_w,
            watch,
            helper,
        })
    }

    /// (stdin, stdout, stderr) for the guest.
    pub(crate) fn guest_fds(&self) -> [RawFd; 3] {
        [
            self.stdin.as_raw_fd(),
            self.out_w.as_raw_fd(),
            self.err_w.as_raw_fd(),
        ]
    }

    pub(crate) fn watch(&self) -> Arc<Watch> {
        Arc::clone(&self.watch)
    }

    /// Close our ends (call after the instance is gone: WAMR never closes
    /// stdio), wait for the helper, return (stdout, stderr, truncated, timed out).
    pub(crate) fn finish(self) -> (Vec<u8>, Vec<u8>, bool, bool) {
        drop((self.stdin, self.out_w, self.err_w));
        let ([mut out, mut err], timed_out) = self
            .helper
            .join()
            .unwrap_or_else(|_| (Default::default(), false));
        let ((out, out_cut), (err, err_cut)) = (out.take(), err.take());
        (
            out,
            err,
            out_cut || err_cut,
            timed_out || self.watch.timed_out.load(Ordering::SeqCst),
        )
    }
}

fn drain_and_watch(
    fds: [OwnedFd; 2],
    cap: usize,
    deadline: Option<Instant>,
    watch: &Watch,
) -> Drained {
    let mut out = [CappedLog::new(cap), CappedLog::new(cap)];
    let mut open = [true; 2];
    let mut buf = vec![0u8; 64 * 1024];
    while open[0] || open[1] {
        let live: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
        let mut pfds: Vec<libc::pollfd> = live
            .iter()
            .map(|&i| libc::pollfd {
                fd: fds[i].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timed_out = watch.timed_out.load(Ordering::SeqCst);
        let timeout_ms = match deadline {
            Some(deadline) if !timed_out => deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            _ if timed_out => WAKE_AGAIN.as_millis() as i32,
            _ => -1,
        };
        // SAFETY: `pfds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if n == 0 {
            // The deadline: stop the guest, and wake its thread from a
            // system call (WAMR sleeps in `clock_nanosleep` slices of a
            // second), again every WAKE_AGAIN until the instance is gone. The lock is held across both calls, so the instance
            // cannot be deinstantiated, nor its thread move on to another
            // activation, meanwhile.
            let first = !watch.timed_out.swap(true, Ordering::SeqCst);
            let live = watch.live.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(inst) = *live {
                if first {
                    crate::ffi::terminate(inst);
                }
                crate::ffi::wake(watch.thread);
            }
            continue;
        }
        if n < 0 {
            continue; // EINTR
        }
        for (k, pfd) in pfds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            // SAFETY: reading into our own buffer from a descriptor we own.
            let r = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r == 0 {
                open[live[k]] = false;
                continue;
            }
            if r < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    open[live[k]] = false;
                }
                continue;
            }
            out[live[k]].push(&buf[..r as usize]);
        }
    }
    (out, watch.timed_out.load(Ordering::SeqCst))
}
