//! Memory figures of a scenario: the shared memory it created in `/dev/shm` (the blocks the files occupy,
//! `st_blocks * 512`, so only touched pages count) and each process's peak resident set (`VmHWM`).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// This process's peak resident set in bytes (`VmHWM` in `/proc/self/status`), if the kernel reports it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Resets this process's peak resident set to its current one (`5` into `/proc/self/clear_refs`), so the next
/// [`peak_rss`] covers one scenario only; returns whether the kernel took it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes that the files of `/dev/shm` whose names start with `stem` followed by `.` occupy.
pub fn shm_bytes(stem: &str) -> io::Result<u64> {
    shm_bytes_in(Path::new("/dev/shm"), |n| n.strip_prefix(stem).is_some_and(|r| r.starts_with('.')))
}

/// How many files of `/dev/shm` have names starting with `stem` followed by `.`, and the bytes they occupy.
pub fn shm_objects(stem: &str) -> io::Result<(u64, u64)> {
    shm_usage_in(Path::new("/dev/shm"), |n| n.strip_prefix(stem).is_some_and(|r| r.starts_with('.')))
}

/// Bytes that the files of `dir` whose names pass `mine` occupy.
pub fn shm_bytes_in(dir: &Path, mine: impl Fn(&str) -> bool) -> io::Result<u64> {
    shm_usage_in(dir, mine).map(|(_, bytes)| bytes)
}

/// How many files of `dir` have names that pass `mine`, and the bytes they occupy.
fn shm_usage_in(dir: &Path, mine: impl Fn(&str) -> bool) -> io::Result<(u64, u64)> {
    let (mut count, mut total) = (0, 0);
    for e in std::fs::read_dir(dir)?.flatten() {
        if mine(&e.file_name().to_string_lossy()) {
            count += 1;
            total += e.metadata().map_or(0, |m| m.blocks() * 512);
        }
    }
    Ok((count, total))
}

/// Resident set (`VmRSS`) and open descriptors of process `pid`.
pub fn process(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((kib * 1024, fds))
}

/// Locks every current and future page of this process in memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`).
pub fn lock_all() -> io::Result<()> {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).map_err(io::Error::from)
}

/// One line on how the run held its memory: locked (`--mlock`) or faulted on first touch, and the host's
/// transparent-huge-page setting for shared memory (the bracketed word of
/// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`; `never` keeps tmpfs on 4 KiB pages).
pub fn mode(locked: bool) -> String {
    let lock = if locked { "mlockall (every page faulted in at map time)" } else { "pages faulted on first touch" };
    let huge = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
        .ok()
        .and_then(|s| s.split_whitespace().find(|w| w.starts_with('[')).map(|w| w.trim_matches(['[', ']']).to_string()))
        .unwrap_or_else(|| "unknown".into());
    format!("{lock}; shmem huge pages: {huge}")
}
