//! Fault injection for the crash tests: with `WEIR_FAILPOINT=name[,name...]` the process aborts (ending as a `kill -9`
//! would end it: no destructor, no cleanup) when it reaches a named point, so a test can crash a write at exactly the
//! step it wants to prove safe. Unset, a point costs one environment lookup.

/// Aborts the process when `name` is listed in `WEIR_FAILPOINT`.
pub fn hit(name: &str) {
    if is_set(name) {
        eprintln!("WEIR_FAILPOINT: stopping at `{name}`");
        std::process::abort();
    }
}

/// Whether `name` is listed in `WEIR_FAILPOINT` (for points that change a path rather than stop, such as forcing
/// the portable fallback of an atomic swap).
pub fn is_set(name: &str) -> bool {
    std::env::var("WEIR_FAILPOINT").is_ok_and(|points| points.split(',').any(|p| p.trim() == name))
}

/// Aborts the process at the `count`th pass (a batch, a checkpoint) when `name:N` is listed and `count` reached N:
/// a crash at a chosen step of a long-running loop.
pub fn hit_at(name: &str, count: u64) {
    if counted(name).is_some_and(|(n, _)| count >= n) {
        eprintln!("WEIR_FAILPOINT: stopping at `{name}` ({count})");
        std::process::abort();
    }
}

/// Sleeps once when `name:N:SECONDSs` is listed and `count` reached N: a stall (a long pause of the process, a slow
/// disk) at a chosen step, after which the process carries on as if nothing happened.
pub fn stall_at(name: &str, count: u64) {
    static STALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some((n, Some(pause))) = counted(name) {
        if count >= n && !STALLED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("WEIR_FAILPOINT: stalling at `{name}` ({count}) for {}s", pause.as_secs());
            std::thread::sleep(pause);
            eprintln!("WEIR_FAILPOINT: carrying on after the stall at `{name}`");
        }
    }
}

/// `name:N` or `name:N:SECONDSs` from `WEIR_FAILPOINT`.
fn counted(name: &str) -> Option<(u64, Option<std::time::Duration>)> {
    let points = std::env::var("WEIR_FAILPOINT").ok()?;
    points.split(',').find_map(|p| {
        let mut parts = p.trim().split(':');
        if parts.next()? != name {
            return None;
        }
        let n = parts.next()?.parse().ok()?;
        let pause = parts.next().and_then(|s| s.strip_suffix('s')?.parse().ok()).map(std::time::Duration::from_secs);
        Some((n, pause))
    })
}
