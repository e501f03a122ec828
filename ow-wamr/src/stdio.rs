//! Per-activation stdio for WAMR, which writes WASI output straight to file
//! descriptors: stdin is a memfd holding the params; stdout and stderr are
//! pipes drained by a helper thread that keeps up to the log limit and drops
//! the rest (the guest never blocks on a full pipe). When the executor's
//! deadline expires, [`Watch::expire`] terminates the live instance and
//! interrupts the activation's thread, which may be asleep in a system call
//! (see [`crate::ffi::wake`]).

use ow_common::log::CappedLog;
use ow_common::{Error, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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

impl Watch {
    /// The deadline expired: stop the guest (`first` time), and wake its
    /// thread from a system call (WAMR sleeps in `clock_nanosleep` slices
    /// of a second); called again every few milliseconds until the
    /// activation ends. The lock is held across both calls, so the instance
    /// cannot be deinstantiated, nor its thread move on to another
    /// activation, meanwhile. An instance not live yet sees `timed_out`
    /// when it becomes live and fails its instantiation.
    pub(crate) fn expire(&self, first: bool) {
        self.timed_out.store(true, Ordering::SeqCst);
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inst) = *live {
            if first {
                crate::ffi::terminate(inst);
            }
            crate::ffi::wake(self.thread);
        }
    }
}

type Drained = [CappedLog; 2];

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
    /// Create the descriptors and start the helper.
    pub(crate) fn start(stdin: &[u8], log_limit: usize) -> Result<Self> {
        let stdin = memfd_with(stdin)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let watch = Arc::new(Watch {
            live: Mutex::new(None),
            timed_out: AtomicBool::new(false),
            // SAFETY: no preconditions; this is the activation's thread.
            thread: unsafe { libc::pthread_self() },
        });
        let helper = std::thread::Builder::new()
            .name("wamr-stdio".into())
            .spawn(move || drain([out_r, err_r], log_limit))
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
        let [mut out, mut err] = self.helper.join().unwrap_or_default();
        let ((out, out_cut), (err, err_cut)) = (out.take(), err.take());
        (
            out,
            err,
            out_cut || err_cut,
            self.watch.timed_out.load(Ordering::SeqCst),
        )
    }
}

fn drain(fds: [OwnedFd; 2], cap: usize) -> Drained {
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
        // SAFETY: `pfds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
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
    out
}
