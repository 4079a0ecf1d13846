//! Link arguments of a Python extension module for the platform (on macOS: leave Python's symbols to the loader).

fn main() {
    pyo3_build_config::add_extension_module_link_args();
}
