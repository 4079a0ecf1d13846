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
