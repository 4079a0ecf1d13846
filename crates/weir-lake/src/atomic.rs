//! The file-system moves that make lake writes crash-safe: new files are written under a hidden staging folder and
//! swapped in with one `rename`, so every reader sees either the old partition or the new one.
//!
//! On Linux, replacing an existing partition uses `renameat2(RENAME_EXCHANGE)`, which swaps two directories in one
//! atomic step; elsewhere we fall back to two renames (a crash between them leaves the old data beside, never lost).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Swaps `staged` into `target`. Afterwards `target` holds the staged content and the returned path (if any) holds the
/// previous content, to be deleted by the caller once the swap is durable.
pub fn replace_dir(staged: &Path, target: &Path) -> io::Result<Option<PathBuf>> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if !target.exists() {
        std::fs::rename(staged, target)?;
        sync_parent(target)?;
        return Ok(None);
    }
    if !weir_core::failpoint::is_set("lake_swap_without_exchange") && exchange(staged, target)? {
        sync_parent(target)?;
        return Ok(Some(staged.to_path_buf()));
    }
    // Portable fallback: move the old aside first, so the old data is never deleted before the new is in place;
    // a crash between the two renames leaves it at `aside_of(staged)`, which the next writer moves back.
    let aside = aside_of(staged);
    std::fs::rename(target, &aside)?;
    sync_parent(&aside)?;
    weir_core::failpoint::hit("lake_swap_between_renames");
    std::fs::rename(staged, target)?;
    sync_parent(target)?;
    Ok(Some(aside))
}

/// Where the fallback swap keeps the previous content of the folder that `staged` replaces.
pub fn aside_of(staged: &Path) -> PathBuf {
    let mut name = staged.as_os_str().to_os_string();
    name.push(ASIDE_SUFFIX);
    PathBuf::from(name)
}

/// The suffix of [`aside_of`] folders.
pub const ASIDE_SUFFIX: &str = ".weir-old";

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; renameat2 does not retain them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Not supported by this kernel or file system: use the fallback.
        Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Writes a small file whole or not at all: a temporary file beside it, synced, then renamed over it.
pub fn write_file(path: &Path, contents: &[u8]) -> weir_core::Result<()> {
    use std::io::Write;
    // Unique to this write, not only to the process: two tasks of one `weir serve` writing the same table's file
    // at once must not share (and rename away) each other's temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_parent(path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        weir_core::Error::io(format!("write {}", path.display()), e)
    })
}

/// Makes a rename durable by syncing the directory that holds the entry.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// An exclusive lock on a table folder for the time of one write, so two weir processes never interleave their
/// staging and swaps on the same table. Released on drop.
pub struct TableLock {
    _file: File,
}

impl TableLock {
    #[allow(unsafe_code)]
    pub fn acquire(table_dir: &Path) -> io::Result<TableLock> {
        std::fs::create_dir_all(table_dir)?;
        let file = File::options().create(true).truncate(false).write(true).open(table_dir.join(".weir-lock"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own for the lifetime of `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("table {} is being written by another weir process", table_dir.display()),
            ));
        }
        Ok(TableLock { _file: file })
    }

    /// Like [`TableLock::acquire`], retrying for up to `wait` while another process holds the lock.
    pub fn acquire_within(table_dir: &Path, wait: Option<std::time::Duration>) -> io::Result<TableLock> {
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        loop {
            match TableLock::acquire(table_dir) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && deadline.is_some_and(|d| std::time::Instant::now() < d) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_of_one_file_in_one_process_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_weir_schema.json");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        write_file(&path, format!("{t}-{i}").as_bytes()).unwrap_or_else(|e| panic!("{e}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a concurrent write failed");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");
    }

    #[test]
    fn replace_swaps_directories_and_keeps_old_until_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t/date=1");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("old.parquet"), b"old").unwrap();
        let staged = tmp.path().join("t/.staging/date=1");
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("new.parquet"), b"new").unwrap();

        let old = replace_dir(&staged, &target).unwrap().unwrap();
        assert!(target.join("new.parquet").exists());
        assert!(!target.join("old.parquet").exists());
        assert!(old.join("old.parquet").exists());
    }

    #[test]
    fn a_second_writer_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _a = TableLock::acquire(tmp.path()).unwrap();
        let err = TableLock::acquire(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("another weir process"));
    }
}
