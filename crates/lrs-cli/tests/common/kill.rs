//! Killing a child process in the middle of a write, and knowing that it was.
//!
//! [`kill_mid_write`] polls a probe of the files on disk (every ~100 µs); when the probe says a
//! write is in progress it freezes the process with SIGSTOP, waits until every thread is
//! stopped, and asks the probe again. The process is frozen, so that answer is exactly the
//! state the process dies in: if a write is still in progress, SIGKILL (the kill lands in the
//! write, by construction); if not, SIGCONT and keep polling. A kill therefore never lands
//! outside a write, however fast the machine's disk is; a write that finishes between two
//! polls only costs a retry.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// What became of a process driven by [`kill_mid_write`].
#[derive(Debug)]
pub enum Outcome {
    /// SIGKILLed while frozen mid-write; the probe's description of the state it died in.
    Killed(String),
    /// Exited on its own before a write was caught.
    Exited(ExitStatus),
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child,
    // so it cannot name another process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Whether every thread of `pid` is stopped (`T` in `/proc/<pid>/task/*/stat`; exited
/// threads count too), or the process is gone.
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // `pid (comm) S ...`: the state follows the last `)`.
        match stat.rsplit_once(')') {
            Some((_, rest)) => matches!(
                rest.trim_start().chars().next(),
                Some('T' | 't' | 'Z' | 'X') | None
            ),
            None => true,
        }
    })
}

/// Freezes `child` (SIGSTOP) and waits until all its threads have stopped: a thread inside
/// a system call (a write, an fsync) finishes it first.
fn freeze(child: &Child) {
    signal(child, libc::SIGSTOP);
    let start = Instant::now();
    while !all_stopped(child.id()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process {} did not stop",
            child.id()
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Runs `child` until `probe` reports a write in progress while the process is frozen, then
/// SIGKILLs it (`Child::kill` sends SIGKILL on Unix) and reaps it; or until it exits. `delay`
/// is slept between the probe first firing and the freeze, to land at different points of a
/// write. The child is always reaped when this returns, so the disk state is final.
pub fn kill_mid_write(
    child: &mut Child,
    delay: Duration,
    mut probe: impl FnMut() -> Option<String>,
) -> Outcome {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Outcome::Exited(status);
        }
        if probe().is_some() {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            freeze(child);
            if let Some(state) = probe() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                return Outcome::Killed(state);
            }
            signal(child, libc::SIGCONT);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Names in `dir` (empty if it does not exist), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Names in `dir` starting with one of `prefixes` that are not in `before`.
pub fn new_temps(dir: &Path, prefixes: &[&str], before: &[String]) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)) && !before.contains(n))
        .collect()
}
