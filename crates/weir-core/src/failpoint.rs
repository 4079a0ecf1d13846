//! Fault injection for the crash tests: with `WEIR_FAILPOINT=name[,name...]` the process aborts (ending as a `kill -9`
//! would end it: no destructor, no cleanup) when it reaches a named point, so a test can crash a write at exactly the
//! step it wants to prove safe. Unset, a point costs one environment lookup.

/// Aborts the process when `name` is listed in `WEIR_FAILPOINT`.
pub fn hit(name: &str) {
    if let Ok(points) = std::env::var("WEIR_FAILPOINT") {
        if points.split(',').any(|p| p.trim() == name) {
            eprintln!("WEIR_FAILPOINT: stopping at `{name}`");
            std::process::abort();
        }
    }
}
